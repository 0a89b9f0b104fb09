# %% [markdown]
# # 05 · Textual inversion, then DreamBooth
#
# **Goal:** first teach the model a new *word* for the face (textual inversion, the study's
# 2000 steps), then run a short DreamBooth from that model (500 steps at 1e-6), and put it
# beside plain DreamBooth and DreamBooth with the text encoder trained, in one figure.
#
# **You will learn**
# - what textual inversion trains (one row of one matrix) and how to check that nothing else moved;
# - why the study's authors thought starting DreamBooth from a learned word beats plain DreamBooth, and what the miniature model measures;
# - where this sits between plain DreamBooth and full text-encoder fine-tuning, and why it suits a 16 GB GPU.
#
# **Hardware and time**
#
# | profile | hardware | time |
# |---|---|---|
# | `gpu` | a CUDA GPU with 16 GB (Colab or Kaggle T4) | estimated: about 1 h on a T4: textual inversion 2000 steps, then DreamBooth 500 steps; notebook 04's two runs are compared when your course home has them (training them here adds about 2 h) |
# | `cpu` | a laptop CPU | about 3 min on a 2-core machine: textual inversion, then DreamBooth, on the miniature model; notebook 04's runs are compared when your course home has them (about 4 min more to train them here) |
# | `smoke` | anything (used by the tests) | about a minute |
#
# Runs are saved in your course home (on Colab, on your Drive); running the notebook again reuses
# finished runs, resumes an interrupted one, and redraws the figures.
#
# **The study's figure:** [textual inversion, then DreamBooth](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/h_textual_inversion_dreambooth.jpg), in the [study](https://huggingface.co/blog/dreambooth).
#
# **What you will build** (the kit's own result on `cpu`, from a full run of the course):
#
# ![notebook 05 on cpu: textual inversion, then DreamBooth, against the other two](https://raw.githubusercontent.com/dreambooth-course/dreambooth-course-kit/main/docs/images/results/05_textual_inversion_dreambooth.png)

# %% install

# %%
from dataclasses import replace

import matplotlib.pyplot as plt
import torch

from helpers import (arms, claims, figures, load_components, paths, release_weights, run_finished, sample,
    sample_runs, score_comparison, setup_notebook, study_config, textual_inversion)

SEED = 0  # training seed of every run; sampling seeds start here too

# %% [markdown]
# ## Configuration
# The study's numbers at full scale. In `gpu` they are used as they are; in `cpu` and
# `smoke` the profile scales steps down and DreamBooth's learning rates up (the miniature
# model needs larger steps). The textual-inversion rate is kept as it is in every profile:
# it moves one embedding vector, whose scale does not change with the model's size the way
# the UNet's does. The two comparison runs are exactly those of notebook 04, so they are
# reused when it has run.

# %%
PROFILE = None  # "gpu", "cpu" or "smoke"; None reads COURSE_PROFILE / looks for a GPU
PLACEHOLDER = arms.PLACEHOLDER  # "<sks>": the new word; it must not exist in the tokenizer yet
INITIALIZER = None  # the word the new one starts from; None: the subject's class noun (exercise 3)
TI_STEPS, TI_LR = arms.TI_STEPS, arms.TI_LR  # 2000, 5e-4: the study's length, the usual rate for an embedding
DB_AFTER_TI_STEPS, DB_AFTER_TI_LR = arms.DB_AFTER_TI_STEPS, arms.DB_AFTER_TI_LR  # 500, 1e-6: DreamBooth from the new word
STUDY_LR, STUDY_STEPS = arms.FACE_LR, arms.FACE_STEPS  # 2e-6, 1200: the face runs compared against (notebook 04)
TRAIN_COMPARISON_RUNS = None  # None: reuse notebook 04's runs if they exist; True: train them if missing; False: skip
N_PROMPTS = 3  # the instance prompt plus prompts that move the subject elsewhere
N_SEEDS = None  # samples per prompt; None: the profile's images_per_prompt

# %% [markdown]
# ## 1. Profile, model and subject

# %%
nb = setup_notebook("05", ("face",), PROFILE, n_prompts=N_PROMPTS, smoke_prompts=2, seed=SEED, n_seeds=N_SEEDS)
settings, profile, subject = nb.settings, nb.profile, nb.subject
prompts, seeds, photos = nb.prompts, nb.seeds, nb.photos  # photos: shown above each figure
print(f"profile {profile.name}, model {settings.pretrained_model_name_or_path}, subject '{subject.name}'")
print("prompts:", *prompts, sep="\n  ")

# %% [markdown]
# ## 2. Textual inversion: learn a word, change nothing else
# Textual inversion adds a token to the tokenizer (`<sks>` here), starts its embedding at
# the class noun's, and trains that one vector with the ordinary diffusion loss. The UNet,
# the VAE, the text encoder's layers and every other word stay exactly as they were: the
# new word has to describe the subject in the language the frozen model already speaks.

# %%
ti_config = textual_inversion.TextualInversionConfig(
    pretrained_model_name_or_path=settings.pretrained_model_name_or_path, train_data_dir=subject.folder,
    placeholder_token=PLACEHOLDER, initializer_token=INITIALIZER or subject.class_noun, resolution=profile.resolution,
    train_batch_size=profile.train_batch_size_faces, max_train_steps=profile.steps(TI_STEPS),
    learning_rate=TI_LR, mixed_precision=profile.mixed_precision, seed=SEED,
    save_trained_parts=profile.save_trained_parts,  # gpu: the text encoder alone, not a whole pipeline
)
print(f"textual inversion: {ti_config.max_train_steps} steps at {ti_config.learning_rate:.1e}, "
      f"'{PLACEHOLDER}' starts as '{ti_config.initializer_token}'")
ti = textual_inversion.train_textual_inversion(ti_config)

# %% [markdown]
# ### Did only the new row change?
# The helper checks it at the end of training and writes the answer into the run's record.
# Here we check it again ourselves: load the base text encoder and the one textual inversion
# saved, and compare their embedding matrices row by row.

# %%
print(f"record: token ids {ti.record['token_ids']}, changed rows {ti.record['changed_rows']}")
base = load_components(settings.pretrained_model_name_or_path)
learned = load_components(str(ti.output_dir))
before = base["text_encoder"].get_input_embeddings().weight.detach()
after = learned["text_encoder"].get_input_embeddings().weight.detach()
new_id = learned["tokenizer"].convert_tokens_to_ids(PLACEHOLDER)
print(f"vocabulary {len(before)} -> {len(after)} rows; rows that differ among the old ones: "
      f"{textual_inversion.changed_rows(before, after[: len(before)])}; the new row is {new_id}")

# %%
init_word = ti_config.initializer_token  # where the new row started
init_id = base["tokenizer"].convert_tokens_to_ids(base["tokenizer"].tokenize(init_word))[0]
start = torch.cat([before, before[init_id : init_id + 1]])  # where every row started, the new one included
moved = (after - start).norm(dim=1)[-8:]
fig, ax = plt.subplots(figsize=(6, 2.4))
ax.bar([str(i) for i in range(len(after) - 8, len(after))], moved.tolist(), color="tab:orange")
ax.set_xlabel("row of the embedding matrix (last 8)"), ax.set_ylabel("distance moved")
ax.set_title(f"textual inversion moved only row {new_id} ('{PLACEHOLDER}'), seed {SEED}", fontsize=10)
path = figures.save_plot(fig, "05_embedding_rows", subject=subject.name, seed=SEED, steps=ti_config.max_train_steps)

# %% [markdown]
# Which existing words is the learned vector closest to now? If textual inversion found a
# description in the model's own language, its neighbours say something about the subject.

# %%
sims = torch.nn.functional.cosine_similarity(after[new_id][None], before, dim=1)
nearest = base["tokenizer"].convert_ids_to_tokens(sims.topk(6).indices.tolist())
print(f"nearest words to '{PLACEHOLDER}':", ", ".join(t.replace("</w>", "") for t in nearest))
print(f"cosine to its starting word '{init_word}': {sims[init_id]:.2f}")
del base, learned

# %% [markdown]
# ## 3. DreamBooth from the textual inversion model
# Now the study's second stage: an ordinary DreamBooth run (UNet trained, prior preservation
# on as for all faces) that starts from the textual-inversion model and names the subject with
# the learned word, 500 steps at 1e-6. It starts with a word that already points at the face,
# so it has less to learn, and its learning rate is the lowest in the study.

# %%
after_ti_config = study_config(subject, DB_AFTER_TI_LR, DB_AFTER_TI_STEPS, with_prior_preservation=True,
                               face=True, settings=settings, seed=SEED,
                               instance_prompt=f"a photo of {{token}} {subject.class_noun}")
ti_db = textual_inversion.dreambooth_after_textual_inversion(ti, after_ti_config)
print(f"DreamBooth after textual inversion: {ti_db.config.max_train_steps} steps at {ti_db.config.learning_rate:.1e},"
      f" prompt '{ti_db.config.instance_prompt}'")

# %% [markdown]
# ## 4. The two runs it is compared with
# Plain DreamBooth and DreamBooth with the text encoder, the face recipe of notebook 04. When
# notebook 04 has run in your course home they are reused; otherwise, by default, they are
# left out (each is a full 1200-step run: on a T4 about an hour, estimated). Set
# `TRAIN_COMPARISON_RUNS = True` to train them here.

# %%
face_configs = {
    "DreamBooth": study_config(subject, STUDY_LR, STUDY_STEPS, with_prior_preservation=True, face=True,
                               settings=settings, seed=SEED),
    "DreamBooth + text encoder": study_config(subject, STUDY_LR, STUDY_STEPS, with_prior_preservation=True,
                                              face=True, settings=settings, seed=SEED, train_text_encoder=True),
}
if TRAIN_COMPARISON_RUNS is None:  # use notebook 04's runs where they exist; train none here
    face_configs = {name: c for name, c in face_configs.items() if run_finished(c)}
    missing = 2 - len(face_configs)
    print(f"{len(face_configs)} of 2 comparison runs found in the course home" +
          (f"; {missing} skipped (run notebook 04, or set TRAIN_COMPARISON_RUNS = True)" if missing else ""))
elif not TRAIN_COMPARISON_RUNS:
    face_configs = {}
nb.keep(ti.output_dir, ti_db.output_dir)  # the course home's clean-up keeps the runs this notebook uses
face_runs = nb.train(face_configs, retrain_missing_weights=True)

# %%
curves = {"textual inversion": ti.losses, "DreamBooth after TI": ti_db.losses,
          **{name: r.losses for name, r in face_runs.items()}}
fig = figures.plot_losses(curves, key="instance_loss", window=max(2, profile.steps(DB_AFTER_TI_STEPS) // 10),
                          title=f"loss on the face photos, seed {SEED}")
path = figures.save_plot(fig, "05_loss", subject=subject.name, seed=SEED)

# %% [markdown]
# ## 5. Four ways to teach the face, one figure
# Every method gets the same prompts and seeds. The textual-inversion models are prompted
# with the learned word instead of `sks`; everything else in the prompt is the same, and the
# figure labels each row with its `sks` version.

# %%
word_prompts = [p.replace(f"{subject.identifier} ", f"{PLACEHOLDER} ") for p in prompts]
with_word = sample_runs({"textual inversion": ti.output_dir, "TI + DreamBooth": ti_db.output_dir},
                        word_prompts, seeds, profile.num_inference_steps, profile.resolution)
with_sks = sample_runs({name: r.output_dir for name, r in face_runs.items()}, prompts, seeds,
                       profile.num_inference_steps, profile.resolution)
as_sks = dict(zip(word_prompts, prompts))  # file the new word's images under the same prompts, to line them up
generations = {k: replace(g, prompts=[as_sks[p] for p in g.prompts]) for k, g in with_word.generations.items()}
generations.update(with_sks.generations)
order = [k for k in ["textual inversion", "DreamBooth", "TI + DreamBooth", "DreamBooth + text encoder"] if k in generations]
comparison = sample.Comparison({k: generations[k] for k in order}, prompts, seeds)

# %%
title = f"{subject.name}: four ways to teach the face, seeds {seeds}"
grid = comparison.grid(title=title, photos=photos)
path = figures.save_image(grid, paths.runs_dir() / "figures", "05_ti_dreambooth", subject=subject.name, seed=SEED,
                          ti_steps=ti_config.max_train_steps, db_steps=ti_db.config.max_train_steps)
fig = comparison.show(title=title, photos=photos)
print(score_comparison(subject, comparison, name="05_textual_inversion"))

# %% [markdown]
# **What to look for, column by column.**
# - *What the study's authors thought* ("We think"): DreamBooth started from the learned word
#   is better than plain DreamBooth, copies the photos' style a little more (a hint of
#   overfitting), and is not as good as training the text encoder. They did not measure it.
# - *On `cpu`:* textual inversion alone rarely draws the eyepatch (one learned vector cannot
#   describe a feature the model never saw); the three DreamBooth columns all draw the face. In
#   this notebook's run (seed 0) the table recognises it in 12, 8 and 7 of 12 images (plain,
#   after textual inversion, with the text encoder), but one run says little: the findings
#   (three seeds, 144 images per arm) measure subject
#   fidelity 0.15 [0.08, 0.22] for textual inversion alone, 0.88 [0.78, 0.97] for plain
#   DreamBooth, 0.78 [0.71, 0.86] after textual inversion and 0.78 [0.67, 0.90] with the text
#   encoder: no clear difference between the last three.
# - *On `gpu`, look for* the likeness in the textual-inversion column (close, rarely the
#   person) and, in the DreamBooth columns, the photos' backgrounds and lighting reappearing.
# (In `smoke` the tiny random model draws noise; only the code path is tested.)

# %% [markdown]
# ## 6. What each method trains
# The number of trained weights, from the models themselves, explains the memory: textual
# inversion trains one vector; DreamBooth after it trains the UNet only, which fits on a
# 16 GB GPU with fp16 and 8-bit Adam; the text encoder adds its own weights on top.

# %%
parts = load_components(settings.pretrained_model_name_or_path)
unet_n = sum(p.numel() for p in parts["unet"].parameters())
text_n = sum(p.numel() for p in parts["text_encoder"].parameters())
hidden = parts["text_encoder"].config.hidden_size
for name, n in [("textual inversion", hidden), ("TI + DreamBooth", unet_n), ("DreamBooth", unet_n),
                ("DreamBooth + text encoder", unet_n + text_n)]:
    print(f"{name:>26}: {n:>12,} trained weights")
del parts

# %% [markdown]
# ## Keeping your disk small
# On `gpu` each run's weights are gigabytes. Now that this notebook has sampled and scored its
# runs (the samples and score tables stay in the course home, so every figure redraws without the
# weights), no later notebook samples these runs: the kit frees the new ones' weights (the
# textual-inversion model, which is small, stays). On Colab kept weights are copied to your Drive
# once; nothing is deleted there, since Drive's Trash would still count. `python -m helpers
# budget` shows what the whole course keeps. On `cpu` and `smoke` the runs are small and all stay.

# %%
_ = release_weights({"TI + DreamBooth": ti_db.output_dir, **{n: r.output_dir for n, r in face_runs.items()}})

# %% [markdown]
# ## Takeaways
# - Textual inversion learns one new embedding row and nothing else (we checked: every other
#   row is bit-identical). Alone, it can only recombine what the model already draws.
# - The study's recipe: textual inversion for 2000 steps, then DreamBooth for 500 steps at
#   1e-6. Its authors judged it better than plain DreamBooth but not as good as training the
#   text encoder; they did not explore it further.
# - It trains the same weights as plain DreamBooth, so it fits where plain DreamBooth fits.
#   What the measurements say, on your profile:

# %%
claims.show_takeaway("textual_inversion", profile.name)

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: the learned word alone, somewhere new
# **Change:** nothing; read the textual-inversion column of step 5 on the prompts that move the
# face elsewhere.
# **Cost:** a minute of looking.
# **Expect on `cpu`:** the places are right and the face is mostly not the subject: the
# findings' seed-0 textual-inversion run puts the face where asked in 40 of 40 images and
# shows the eyepatch in 5 of 48 (this notebook's table: 0 of 12).
# **On `gpu`, look for** a face of the right kind (hair, age) rather than the person.
#
# <details><summary>Solution</summary>
#
# ```python
# print(score_comparison(subject, comparison, name="05_textual_inversion"))  # subject and new place per column
# ```
# A word is cheap to learn and travels everywhere, but it can only point at what the model can
# already draw.
# </details>
#
# ### Exercise 2: what the new word resembles
# **Change:** nothing; read the nearest words to `<sks>` and the cosine printed in step 2.
# **Cost:** none.
# **Expect on `cpu`:** the vector has left its starting word far behind (cosine to "face" 0.23
# after 2000 steps, seed 0), and its nearest words are "hat", "asbestos", "black", "underwood",
# "nigh", "shet". Two of them describe the subject (it wears a hat; the eyepatch is black);
# the rest are words that happen to lie nearby.
# **On `gpu`, look for** words that describe your photos (hair colour, clothing), among noise.
#
# <details><summary>Solution</summary>
#
# ```python
# print(nearest, float(sims[init_id]))
# ```
# Nearest words are a hint, not a translation: the learned vector needs not be near any word.
# </details>
#
# ### Exercise 3: start from another word
# **Change:** `INITIALIZER = "car"`, then run steps 2 and 3 again (a new textual-inversion run).
# **Cost:** `cpu` 2-5 min (2000 steps); `gpu` an estimated 30 min on a T4.
# **Expect on `cpu`:** the bar chart still shows one moved row, now measured from "car". It moves
# less (0.37 against 0.80 from "face", seed 0) and stays nearer its start (cosine 0.46), and the
# nearest words still begin with "hat": the loss pulls towards the same subject from anywhere,
# but a far start leaves the vector less far along after the same steps.
# **On `gpu`, look for** a weaker likeness than with the class noun after the same steps.
#
# <details><summary>Solution</summary>
#
# ```python
# INITIALIZER = "car"  # in the configuration cell; the distance and the cosine are now measured from "car"
# ```
# </details>
