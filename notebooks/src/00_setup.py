# %% [markdown]
# # 00 · Setup: your machine, your model, your subject
#
# **Goal:** check what this machine can do, choose the model and the subject photos the
# whole course will use, and see why DreamBooth names a subject with a rare word like `sks`.
#
# **You will learn**
# - which of the three course profiles suits your hardware, and what each one changes;
# - what a good subject folder looks like (and what the kit checks in it);
# - how Stable Diffusion's tokenizer splits an identifier such as `sks`, and why a rare token matters.
#
# **Hardware and time**
#
# | profile | hardware | time |
# |---|---|---|
# | `gpu` | any CUDA GPU (Colab or Kaggle T4 is enough) | about 5 min (estimated), most of it downloading Stable Diffusion v1-4 (4 GB) once |
# | `cpu` | a laptop CPU | under 1 min |
# | `smoke` | anything (used by the tests) | seconds |
#
# The profile comes from `PROFILE` below, else the environment variable `COURSE_PROFILE`;
# without either the kit picks `gpu` when it sees a CUDA GPU and `cpu` otherwise. What you
# choose here is saved in your course home, and every later notebook uses it.
#
# **Every notebook also runs on its own.** Colab and Kaggle start each notebook on a fresh
# machine. Your choices, photos and runs live in your *course home* (on Colab a folder on
# your Google Drive), and each notebook's first cells find them there, or use the profile's
# defaults where this notebook has not been run.
#
# **What you will see** (the kit's own result on `cpu`): the subject as training sees it.
#
# ![notebook 00 on cpu: the subject's photos](https://raw.githubusercontent.com/dreambooth-course/dreambooth-course-kit/main/docs/images/results/00_setup.png)

# %% install

# %%
import os

from transformers import CLIPTokenizer

from helpers import (claims, cleanup, default_settings, diagnose, ensure_photos, figures, get_profile, home,
    load_images, open_home, paths, prepare_subject)

SEED = 0  # nothing here is random, but every notebook of the course states its seed

# %% [markdown]
# ## Configuration
# Change these and re-run the notebook. `None` keeps the default of your profile.

# %%
PROFILE = None  # "gpu", "cpu" or "smoke"; None reads COURSE_PROFILE / looks for a GPU
OBJECT_SUBJECT = None  # "dog", "cat_toy", "synthetic_ball", a ToyWorld subject, or "upload"
FACE_SUBJECT = None  # a face for notebooks 02 and 04; "upload" for your own photos
BASE_MODEL = None  # a Hub id such as "stable-diffusion-v1-5/stable-diffusion-v1-5", or a local folder

# %% [markdown]
# ## 1. Your course home
# One folder holds everything the course makes for you: these choices, your photos, class
# images, training runs, figures and downloaded models. On Colab it is on your Google Drive
# (Colab asks you to allow that), so a disconnect loses nothing; on Kaggle it is in
# `/kaggle/working`; on your own machine it is `runs/` in the kit. `COURSE_HOME` moves it.
# A full-size run takes a few GB, so the cell also lists what could be deleted.

# %%
home_dir = open_home()
print(f"course home: {home_dir.name}/, {home.free_bytes(home_dir) / 2**30:.0f} GiB free")
print(cleanup.describe_candidates(cleanup.cleanup_candidates(home_dir), home_dir))

# %% [markdown]
# ## 2. What can this machine do?
# `doctor` lists library versions, the device, which precisions it supports and whether
# bitsandbytes' 8-bit Adam runs here. The same report is `python -m helpers doctor` in a terminal.

# %%
print(diagnose())

# %% [markdown]
# ## 3. Choose the profile and the base model
# A profile holds everything that depends on hardware: the model, the image size, batch
# sizes, and how the study's learning rates and step counts map onto a smaller model.
# In `gpu` they are the study's own values; in `cpu` and `smoke` they are scaled, and the
# notebooks say so wherever a number differs from the study.

# %%
profile = get_profile(PROFILE)
os.environ["COURSE_PROFILE"] = profile.name  # this notebook, then every later one (saved in step 7)
settings = default_settings(profile.name)
if BASE_MODEL:
    settings.pretrained_model_name_or_path = BASE_MODEL
print(f"profile: {profile.name}: {profile.description}")
print(f"base model: {settings.pretrained_model_name_or_path}, {profile.resolution} px")
print(f"study LR 2e-6 -> {profile.lr(2e-6):.1e} here; study 400 steps -> {profile.steps(400)} here")

# %% [markdown]
# ## 4. How the `gpu` profile differs from the study
# The study trained on two A100s with 40 GB each. The `gpu` profile keeps its model, image
# size, batch sizes, learning rates and steps, and changes what a single 16 GB T4 needs:
#
# | | the study | `gpu` profile | why |
# |---|---|---|---|
# | GPUs | 2x A100 40 GB | 1 GPU (a T4 is enough) | free Colab and Kaggle |
# | batch size | objects 4 (2 per GPU), faces 2 (1 per GPU) | objects 4, faces 2, on one GPU | the same images per step, so the same learning-rate scale |
# | precision | not stated | fp16 mixed precision | memory |
# | optimizer | AdamW | 8-bit AdamW (bitsandbytes) | memory |
# | gradient checkpointing | not mentioned | on (the kit's addition) | memory (slower steps, same result) |
# | class images (prior preservation) | not stated (the training script makes 100 by default, with the model's own sampler, PNDM) | 200, made with DPM-Solver++ in 25 steps (the kit's choice) | clean images in half the time |
# | image crop | the training script's default: a random crop | a centre crop | the subject stays in the picture |
# | checkpoints | not kept | every 200 steps, the newest kept | a disconnect loses at most 200 steps |
# | base model | Stable Diffusion v1-4 | the same (v1-5, the same architecture, also works) | |
# | object subject | cat toy, pig head, Mr. Potato Head | the cat toy (`diffusers/cat_toy_example`) | the one whose photos are public |
# | face subject | a TV character | your own photos | consent |
#
# The study named 8-bit Adam, fp16 training *or* gradient accumulation as ways to fit similar
# experiments on a 16 GB GPU; it does not say it trained with them, and it does not mention
# gradient checkpointing. Notebook 06 measures what each of them costs and saves.

# %% [markdown]
# ## 5. Choose the subject
# DreamBooth needs only a few photos of one subject (3 to 10): the same object or person,
# different poses, backgrounds and lighting. The kit knows a few sources: the study's cat toy
# and the DreamBooth dataset's dog from the Hub (on `gpu`), the miniature ToyWorld subjects (on
# `cpu`), and your own photos (`"upload"`, the face on `gpu`). For your own, the next cells ask
# for the photos: Colab's own upload button, or copy them into `subjects/upload/` of your
# course home; iPhone photos (HEIC) are converted to JPEG. For faces, use only photos of
# people who agreed to it.

# %%
if OBJECT_SUBJECT:
    settings.object_subject = prepare_subject(OBJECT_SUBJECT)
if FACE_SUBJECT:
    settings.face_subject = prepare_subject(FACE_SUBJECT)
for role, subject in [("object", settings.object_subject), ("face", settings.face_subject)]:
    print(f"{role:>6}: {subject.name!r}, class '{subject.class_noun}', prompt '{subject.instance_prompt}'")
    if subject.name == "upload" and home.interactive():
        ensure_photos(subject)  # asks for your photos if the folder is still empty

# %% [markdown]
# The kit opens every photo the way training will: turned upright (phones store the
# rotation separately, in EXIF), converted to RGB, scaled and centre-cropped to a square.
# A folder with unreadable files or tiny images is reported here, before any training.

# %%
photos = load_images(settings.object_subject.folder, profile.resolution)
grid = figures.image_grid(photos, 1, len(photos), title=f"{settings.object_subject.name}, {profile.resolution} px")
path = figures.save_image(grid, paths.runs_dir() / "figures", "00_subject", subject=settings.object_subject.name)
fig = figures.show_grid(photos, 1, len(photos), title=f"subject '{settings.object_subject.name}' as training sees it")

# %% [markdown]
# ## 6. The identifier: why `sks`?
# The instance prompt is "a photo of **sks** dog": the class noun (dog) lets the model reuse
# all it knows about dogs, and the identifier (sks) is the handle for *this* dog. The
# identifier should be a word the model has no strong opinion about; otherwise fine-tuning
# has to fight, and overwrite, what the word already means.
#
# Stable Diffusion reads prompts through CLIP's tokenizer, which splits text into pieces
# from a fixed list of 49,408. The list was built by merging the most frequent pairs
# first, so a piece's id hints at how common it was: small ids are everyday words, ids
# near 49,000 are rare. Let us look at a few candidates.

# %%
tokenizer = CLIPTokenizer.from_pretrained(paths.TOKENIZER_DIR)
for word in ["dog", "sks", "zwx", "ohwx", "xyz", "dreambooth", "qwertyuiop"]:
    pieces = tokenizer.tokenize(word)
    ids = tokenizer.convert_tokens_to_ids(pieces)
    print(f"{word:>12}: {len(pieces)} token(s) {pieces} ids {ids}")

# %% [markdown]
# `sks` is one token with an id near the end of the list: a rare piece, so a good handle.
# Words that split into several pieces spread the subject over tokens that also occur in
# other words. The study does not say which identifier it used; `sks` is the one in diffusers'
# own DreamBooth example, so the kit uses it too. (It is also the name of a rifle, which the
# model may have seen: exercise 2 finds another.)

# %% [markdown]
# ## 7. Save the choices
# Later notebooks read this file from your course home, so they use the same profile, model
# and subjects, even on a new machine.

# %%
saved = settings.save()
print(f"saved {saved.name} in the course home ({paths.runs_dir().name}/)")

# %% [markdown]
# ## What the course will show you
# Each later notebook tests one claim of the study. Whether your profile reproduces it is not
# a promise made in prose: the table below is read from the kit's committed measurements
# (`benchmarks/results/`, several training seeds per arm on `cpu`), and each notebook ends
# with the same line for its own claim. On `cpu` some claims hold, some show no clear
# difference and one comes out the other way; on `gpu` nothing is measured yet.

# %%
claims.show_table()

# %% [markdown]
# ## Takeaways
# - One code path, three profiles: `gpu` runs the study's settings on Stable Diffusion, `cpu`
#   runs them on a miniature model where some of the study's effects show and others do not
#   (the table above), and `smoke` proves the code runs.
# - A subject is a few varied photos; the kit checks them before training starts.
# - The identifier should be a single, rare token such as `sks`.
#
# ## Exercises
# Each one says what to change, what it costs, and what you should see; the solution is
# folded away until you want it.
#
# ### Exercise 1: your own name as the identifier
# **Change:** add your name and your pet's name to the list in step 6 and run that cell.
# **Cost:** seconds on every profile.
# **Expect on `cpu`** (the tokenizer is the same on every profile): common names are one
# piece, e.g. `maria` -> `['maria</w>']`; rarer ones split, e.g. `olufemi` -> `['olu', 'femi</w>']`.
# **On `gpu`, look for** the same: the tokenizer does not depend on the profile.
#
# <details><summary>Solution</summary>
#
# ```python
# for word in ["maria", "olufemi", "rex"]:
#     print(word, tokenizer.tokenize(word))
# ```
# A one-piece name is a valid handle, but an everyday name already means something to the
# model (`maria` is a person, `rex` a dog), and DreamBooth would have to overwrite that.
# </details>
#
# ### Exercise 2: another rare identifier
# **Change:** list the tokens with ids 45,000-45,011 and pick a whole word (ending in `</w>`)
# that means little, then use it as `identifier` in `00_setup`'s saved choices.
# **Cost:** seconds to list; a changed identifier makes every later run a new run.
# **Expect on `cpu`:** the list holds names and rare words, e.g. `rader</w>`, `umatic</w>`,
# `fillers</w>`; pieces without `</w>` (`allin`, `oku`) only start words.
# **On `gpu`, look for** the same list.
#
# <details><summary>Solution</summary>
#
# ```python
# print([tokenizer.convert_ids_to_tokens(i) for i in range(45000, 45012)])
# ```
# `umatic</w>` is a fair choice: one piece, near the end of the list, with no everyday meaning.
# </details>
#
# ### Exercise 3: a photo that is too small
# **Change:** copy the subject's folder, add a 50x50 image to the copy, and load the copy
# with `load_images(folder, profile.resolution)`.
# **Cost:** seconds.
# **Expect on `cpu`** (64 px): one warning naming the file, `tiny.png (50x50)`, smaller than
# 64 px and upscaled; the photos still load.
# **On `gpu`** (512 px) the warning lists every photo under 512 px, the small one included.
#
# <details><summary>Solution</summary>
#
# ```python
# import shutil
# from pathlib import Path
# from PIL import Image
# copy = Path(shutil.copytree(settings.object_subject.folder, Path(home_dir) / "subjects" / "thumbnail_test",
#                             dirs_exist_ok=True))
# Image.new("RGB", (50, 50), "red").save(copy / "tiny.png")
# _ = load_images(copy, profile.resolution)
# ```
# The kit warns rather than refuses: a small photo still teaches the subject, only less sharply.
# </details>
