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
# | `gpu` | any CUDA GPU (Colab or Kaggle T4 is enough) | about 5 min, most of it downloading Stable Diffusion v1-4 (4 GB) once |
# | `cpu` | a laptop CPU | under 1 min |
# | `smoke` | anything (used by the tests) | seconds |
#
# The profile comes from the environment variable `COURSE_PROFILE`; without it the kit
# picks `gpu` when it sees a CUDA GPU and `cpu` otherwise.

# %% [markdown]
# ## Setup
# On Colab or Kaggle the next cell downloads the kit and installs it beside the platform's
# own torch. On your own machine (after `make course` or `pip install -e .`) it does nothing.

# %%
import os
import subprocess
import sys

if (os.path.exists("/content") or os.path.exists("/kaggle/working")) and not os.path.exists("kit"):
    subprocess.run(["git", "clone", "-q", "https://github.com/dreambooth-course/dreambooth-course-kit", "kit"], check=True)
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "kit"], check=True)
if os.path.exists("kit/helpers"):
    sys.path.insert(0, os.path.abspath("kit"))

# %%
import matplotlib.pyplot as plt
from transformers import CLIPTokenizer

from helpers.course import default_settings, prepare_subject
from helpers.data import load_images, upload_widget
from helpers.doctor import diagnose
from helpers.figures import save_image, show_grid, image_grid
from helpers.paths import TOKENIZER_DIR, runs_dir
from helpers.profiles import get_profile

SEED = 0  # nothing here is random, but every notebook of the course states its seed

# %% [markdown]
# ## Configuration
# Change these and re-run the notebook. `None` keeps the default of your profile.

# %%
PROFILE = None  # "gpu", "cpu" or "smoke"; None reads COURSE_PROFILE / looks for a GPU
OBJECT_SUBJECT = None  # "dog", "cat_toy", "synthetic_ball", a ToyWorld subject, or "upload"
FACE_SUBJECT = None  # a face for notebooks 02 and 04; "upload" for your own photos
BASE_MODEL = None  # a Hub id such as "runwayml/stable-diffusion-v1-5", or a local folder

# %% [markdown]
# ## 1. What can this machine do?
# `doctor` lists library versions, the device, which precisions it supports and whether
# bitsandbytes' 8-bit Adam runs here. The same report is `python -m helpers doctor` in a terminal.

# %%
print(diagnose())

# %% [markdown]
# ## 2. Choose the profile and the base model
# A profile holds everything that depends on hardware: the model, the image size, batch
# sizes, and how the study's learning rates and step counts map onto a smaller model.
# In `gpu` they are the study's own values; in `cpu` and `smoke` they are scaled, and the
# notebooks say so wherever a number differs from the study.

# %%
profile = get_profile(PROFILE)
settings = default_settings(profile.name)
if BASE_MODEL:
    settings.pretrained_model_name_or_path = BASE_MODEL
print(f"profile: {profile.name}: {profile.description}")
print(f"base model: {settings.pretrained_model_name_or_path}, {profile.resolution} px")
print(f"study LR 2e-6 -> {profile.lr(2e-6):.1e} here; study 400 steps -> {profile.steps(400)} here")

# %% [markdown]
# ## 3. Choose the subject
# DreamBooth needs only a few photos of one subject (3 to 10): the same object or person,
# different poses, backgrounds and lighting. The kit knows a few sources: the DreamBooth
# dataset's dog and a cat toy from the Hub (on `gpu`), the miniature ToyWorld subjects (on
# `cpu`), and your own photos. To use your own, run the upload cell, pick the files, then
# set `OBJECT_SUBJECT = "upload"` (or `FACE_SUBJECT`) above. For faces, use only photos of
# people who agreed to it.

# %%
if os.environ.get("COURSE_INTERACTIVE", "1") == "1" and "ipykernel" in sys.modules:
    display(upload_widget(runs_dir() / "subjects" / "upload"))  # noqa: F821 (display is an IPython builtin)

# %%
if OBJECT_SUBJECT:
    settings.object_subject = prepare_subject(OBJECT_SUBJECT)
if FACE_SUBJECT:
    settings.face_subject = prepare_subject(FACE_SUBJECT)
for role, subject in [("object", settings.object_subject), ("face", settings.face_subject)]:
    print(f"{role:>6}: {subject.name!r}, class '{subject.class_noun}', prompt '{subject.instance_prompt}'")

# %% [markdown]
# The kit opens every photo the way training will: turned upright (phones store the
# rotation separately, in EXIF), converted to RGB, scaled and centre-cropped to a square.
# A folder with unreadable files or tiny images is reported here, before any training.

# %%
photos = load_images(settings.object_subject.folder, profile.resolution)
grid = image_grid(photos, 1, len(photos), title=f"{settings.object_subject.name}, {profile.resolution} px")
path = save_image(grid, runs_dir() / "figures", "00_subject", subject=settings.object_subject.name)
fig = show_grid(photos, 1, len(photos), title=f"subject '{settings.object_subject.name}' as training sees it")

# %% [markdown]
# ## 4. The identifier: why `sks`?
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
tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
for word in ["dog", "sks", "zwx", "ohwx", "xyz", "dreambooth", "qwertyuiop"]:
    pieces = tokenizer.tokenize(word)
    ids = tokenizer.convert_tokens_to_ids(pieces)
    print(f"{word:>12}: {len(pieces)} token(s) {pieces} ids {ids}")

# %% [markdown]
# `sks` is one token with an id near the end of the list: a rare piece, so a good handle.
# Words that split into several pieces spread the subject over tokens that also occur in
# other words. (Some people note that `sks` is also the name of a rifle, which the model may
# have seen; the study used it anyway, and so do we.)

# %% [markdown]
# ## 5. Save the choices
# Later notebooks read this file, so they use the same profile, model and subjects.

# %%
saved = settings.save()
print(f"saved {saved.relative_to(runs_dir().parent) if saved.is_relative_to(runs_dir().parent) else saved.name}")

# %% [markdown]
# ## Takeaways
# - One code path, three profiles: `gpu` reproduces the study, `cpu` shows the same effects
#   on a miniature model, `smoke` proves the code runs.
# - A subject is a few varied photos; the kit checks them before training starts.
# - The identifier should be a single, rare token such as `sks`.
#
# ## Exercises
# 1. Tokenize your own name and your pet's name. Would either make a good identifier?
# 2. Find a rare single-token word other than `sks` (hint: look at ids above 40,000 with `tokenizer.convert_ids_to_tokens`).
# 3. Put a tiny thumbnail (say 50x50) into a copy of the subject folder and load it. What does the kit say?
