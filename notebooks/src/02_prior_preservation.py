# %% [markdown]
# # 02 · Prior preservation: what faces need
#
# **Goal:** train a face twice with the study's face settings (1200 steps, batch size 2,
# learning rate 2e-6), once with prior preservation and once without, and compare both what
# the model draws for the subject and what it now draws for the plain class prompt.
#
# **You will learn**
# - what prior preservation adds to DreamBooth: class images made by the model itself, and a second loss term;
# - why the study found it essential for faces (and much less important for other subjects);
# - how to spot *language drift* (the DreamBooth paper's term; the study speaks of overfitting):
#   the class word itself starts to mean your subject.
#
# **Hardware and time**
#
# | profile | hardware | time |
# |---|---|---|
# | `gpu` | a CUDA GPU with 16 GB (Colab or Kaggle T4) | estimated: roughly 1.5 h on a T4, 30 min on an A100: 200 class images and two runs of 1200 steps; the two extra runs of step 7 (off by default) add as much again |
# | `cpu` | a laptop CPU | about 3.5 min on a 2-core machine: 32 class images and two runs of 1200 steps on the miniature model |
# | `smoke` | anything (used by the tests) | about a minute |
#
# Class images and runs are saved in your course home (on Colab, on your Drive); running the notebook
# again reuses finished runs, resumes an interrupted one, and redraws the figures.
#
# **Photos of people:** train only on photos of people who agreed to it, and do not publish
# or pass on pictures a model makes of a real person without their consent. On `cpu` and
# `smoke` the "face" is a cartoon from the kit; on `gpu` it is the folder you chose in
# `00_setup` (`FACE_SUBJECT`).
#
# **What you will build** (the kit's own result on `cpu`, from a full run of the course): what
# "a photo of a face" draws after each run; without prior preservation the class word has become
# the eyepatch face.
#
# ![notebook 02 on cpu: language drift](https://raw.githubusercontent.com/dreambooth-course/dreambooth-course-kit/main/docs/images/results/02_prior_preservation.png)
#
# **The study's figures:** the face [with](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/7_faces_with_prior.jpg) and [without](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/8_faces_no_prior.jpg) prior preservation (1200 steps, LR 2e-6), in the [study](https://huggingface.co/blog/dreambooth). Compare them with step 5 below.

# %% install

# %%
import inspect

import matplotlib.pyplot as plt

from helpers import (arms, claims, dreambooth, figures, generate_class_images, open_rgb, paths, release_weights,
    sample, sample_runs, score_comparison, setup_notebook, study_config, train_dreambooth, widgets)

SEED = 0  # training seed of both runs; class image i is made from seed SEED + i; sampling seeds start here

# %% [markdown]
# ## Configuration
# The study's face settings at full scale; the profile maps them to what runs here (in `cpu`
# the study's steps, 32 class images and a 100x learning rate on a smaller model; `smoke` also
# cuts the steps to a handful).

# %%
PROFILE = None  # "gpu", "cpu" or "smoke"; None reads COURSE_PROFILE / looks for a GPU
STUDY_LR = arms.FACE_LR  # 2e-6: the study's learning rate for this comparison
STUDY_STEPS = arms.FACE_STEPS  # 1200: the study's steps for faces, at batch size 2
PRIOR_LOSS_WEIGHT = arms.PRIOR_LOSS_WEIGHT  # weight of the class-image term (the training script's default, 1.0)
N_PROMPTS = 3  # the instance prompt plus prompts that move the subject elsewhere
N_SEEDS = None  # samples per prompt; None: the profile's images_per_prompt
EXTRA_ARMS = list(arms.FACE_EXTRA_ARMS)  # [(2e-6, 800), (1e-6, 1200)]: the study's other face runs, step 7
RUN_EXTRA_ARMS = False  # True: two more full runs (on a T4 about 1.5 h more, estimated)
MY_PROMPT = None  # a prompt of your own to try on both runs (step 8), e.g. "a painting of sks person"
SAMPLER = None  # None: the model's own scheduler (PNDM for Stable Diffusion, as in the study); or "ddim", "dpm++" ...

# %% [markdown]
# ## 1. Profile, model and subject

# %%
nb = setup_notebook("02", ("face",), PROFILE, n_prompts=N_PROMPTS, seed=SEED, n_seeds=N_SEEDS, sampler=SAMPLER)
settings, profile, subject = nb.settings, nb.profile, nb.subject
prompts, seeds, photos = nb.prompts, nb.seeds, nb.photos
sampler = nb.sampler
print(f"profile {profile.name}, model {settings.pretrained_model_name_or_path}, subject '{subject.name}', "
      f"sampler {sample.scheduler_name(sampler)}")
print(f"instance prompt '{subject.instance_prompt}', class prompt '{subject.class_prompt}'")
fig = figures.show_grid(photos, 1, len(photos), title=f"the {len(photos)} training photos of '{subject.name}'")

# %% [markdown]
# ## 2. The idea, in one function
# Plain DreamBooth teaches the model "sks person = these few photos". The risk: the model also
# learns "person = these few photos", since the class word is in every prompt it sees. Prior
# preservation guards against that. Before training, the *base* model draws a few hundred
# images of the class prompt ("a photo of person"). During training, each batch holds subject
# photos and class images, and the loss is the sum of two noise-prediction errors: one on the
# subject photos, one, weighted by `prior_loss_weight`, on the class images. The second term
# rewards the model for still drawing the class the way it did before training.
#
# This is the function the training loop calls (from `helpers/train/dreambooth.py`):

# %%
print(inspect.getsource(dreambooth.dreambooth_loss))

# %% [markdown]
# ## 3. Class images, made by the model itself
# The configuration says how many class images and how they are drawn; they are generated
# once, saved in `class_images/` of your course home, and reused by every run with the same settings.

# %%
def arm(with_prior, study_lr=STUDY_LR, study_steps=STUDY_STEPS):
    """The configuration of one run of this experiment (the study's face settings)."""
    return nb.config(study_lr, study_steps, with_prior_preservation=with_prior, face=True,
                     prior_loss_weight=PRIOR_LOSS_WEIGHT if with_prior else 1.0)

configs = {"without prior": arm(False), "with prior": arm(True)}
with_prior = configs["with prior"]
print(f"{with_prior.num_class_images} class images of '{with_prior.class_prompt}'; training: "
      f"{with_prior.max_train_steps} steps, batch {with_prior.train_batch_size}, LR {with_prior.learning_rate:.1e}")

# %%
class_paths = generate_class_images(None, dreambooth.class_image_spec(with_prior), with_prior.num_class_images,
                                    with_prior.sample_batch_size)
shown = [open_rgb(p) for p in class_paths[:8]]
first_seeds = f"seeds {SEED} to {SEED + len(shown) - 1}"
fig = figures.show_grid(shown, 1, len(shown), title=f"class images of '{with_prior.class_prompt}', {first_seeds}")

# %% [markdown]
# ## 4. Train with and without prior preservation
# The two runs differ in one setting only. With prior preservation every batch also carries as
# many class images as subject photos, so each step does twice the work.

# %%
runs = nb.train(configs)  # and recorded as in use, so the course home's clean-up keeps them
folders = {name: r.output_dir for name, r in runs.items()}

# %% [markdown]
# The log keeps the two terms apart. The subject term falls in both runs. The class term is the
# model's error on images it drew itself before training: on a pretrained model it starts at
# the base model's level and should stay about there. That is the point: the model is not
# allowed to forget how it drew the class. (The untrained model of `smoke` has learned nothing yet, so every term falls.)

# %%
logs = runs["with prior"].losses
curves = {name: r.losses for name, r in runs.items()}
curves["with prior: class-image term"] = {"step": logs["step"], "instance_loss": logs["prior_loss"]}
fig = figures.plot_losses(curves, key="instance_loss", window=max(2, with_prior.max_train_steps // 10),
                          title=f"subject term of the loss (and class term), seed {SEED}")
path = figures.save_plot(fig, "02_loss", subject=subject.name, seed=SEED, steps=with_prior.max_train_steps)

# %% [markdown]
# ## 5. The subject, with and without prior preservation
# Both finished runs, sampled with the model's own scheduler (PNDM for Stable Diffusion, as in
# the study): one row per prompt, one column per run, the seeds from left to right in each cell.

# %%
comparison = sample_runs(folders, prompts, seeds, profile.num_inference_steps, profile.resolution, scheduler=sampler)
title = f"{subject.name}: {with_prior.max_train_steps} steps, LR {with_prior.learning_rate:.0e}, seeds {seeds}"
path = figures.save_image(comparison.grid(title=title, photos=photos), paths.runs_dir() / "figures", "02_prior_comparison", subject=subject.name,
                          seed=SEED, steps=with_prior.max_train_steps, sampler=sampler)
fig = comparison.show(title=f"without vs with prior preservation, {subject.name}", photos=photos)
print(score_comparison(subject, comparison, name="02_prior_preservation"))

# %% [markdown]
# **What to look for.**
# - *What the study saw:* at these settings the face trained without prior preservation came
#   out worse, copying the training photos and degrading the way an overfit model does; with it
#   the face held up and the prompts still changed the picture.
# - *On `cpu`* the two columns look alike: both draw the eyepatch face on the asked-for beach
#   and grass, and the miniature model shows no degradation. In this notebook's run (training
#   seed 0) the table recognises the face in 12 of 12 images of each and finds the asked-for
#   place in 8 of 8 of each. One column does part them: *copying*, each image's similarity to
#   its nearest training photo, is 0.98 [0.97, 0.99] without prior preservation against 0.93
#   [0.90, 0.95] with it (12 images each, one run). The findings see the same over five
#   training seeds: 0.97 against 0.92, a difference of +0.05 [+0.03, +0.06] (240 images per
#   arm). The face trained alone sits closer to its photos, the study's copying in miniature.
#   The larger difference is in the next step.
# - *On `gpu`, look for* the study's signs in the column without prior preservation: your
#   photos' backgrounds and expressions in every prompt, and smeared or noisy faces.

# %% [markdown]
# ## 6. Language drift: what does the class prompt draw now?
# Ask every model for the plain class prompt, without the identifier. The base model draws
# some member of the class. A model that has drifted draws *your subject* instead: the class
# word has been overwritten. Prior preservation exists to prevent exactly this.
#
# **What to look for.** On `cpu` the row without prior preservation draws the eyepatch face for
# "a photo of a face" in nearly every image (40 of 40 over five training seeds in the findings),
# the row with it almost never (0.07 [0.00, 0.20]); the base model's row shows assorted faces.
# On `gpu`, look for your subject's features in the class prompt's images of the run without
# prior preservation (the DreamBooth paper measures this as PRES, printed in the table).

# %%
drift_runs = {"base model": settings.pretrained_model_name_or_path, **folders}
drift = sample_runs(drift_runs, [subject.class_prompt], seeds, profile.num_inference_steps, profile.resolution,
                    scheduler=sampler)
path = figures.save_image(drift.grid(title=f"'{subject.class_prompt}', seeds {seeds}", arms_as="rows", photos=photos),
                          paths.runs_dir() / "figures", "02_language_drift", subject=subject.name, seed=SEED,
                          steps=with_prior.max_train_steps)
fig = drift.show(title=f"'{subject.class_prompt}' after each run", arms_as="rows", photos=photos)
print(score_comparison(subject, drift, class_prompt=subject.class_prompt, name="02_language_drift"))

# %% [markdown]
# ## 7. The study's other face runs (`gpu` only)
# The study also trained the face for 800 steps, and at a learning rate of 1e-6, both with prior
# preservation; its advice for faces was 1e-6 (or 2e-6) for about 1200 steps. Each is a full
# training run, so this cell runs only when you set `RUN_EXTRA_ARMS = True` (on a T4 about 1.5 h more, estimated).

# %%
if RUN_EXTRA_ARMS:  # off by default: on a T4 they do not fit one free session with the rest
    extra = {f"with prior, LR {lr:.0e}, {steps} steps": train_dreambooth(arm(True, lr, steps)).output_dir
             for lr, steps in EXTRA_ARMS}
    more = sample_runs({**folders, **extra}, prompts, seeds, profile.num_inference_steps, profile.resolution,
                       scheduler=sampler)
    path = figures.save_image(more.grid(), paths.runs_dir() / "figures", "02_face_runs", subject=subject.name, seed=SEED)
    fig = more.show(title=f"the study's face runs, {subject.name}")

# %% [markdown]
# ## 8. Try a prompt of your own
# Type a prompt and compare both runs on it. Without a live notebook, set `MY_PROMPT` in the
# configuration cell instead.

# %%
def compare_prompt(prompt):
    """Sample both runs on one prompt with the notebook's seeds and show them side by side."""
    result = sample_runs(folders, [prompt], seeds, profile.num_inference_steps, profile.resolution, scheduler=sampler)
    result.show(title=prompt, arms_as="rows")
    plt.show()

widgets.interactive_controls(compare_prompt, button="Sample", fallback=bool(MY_PROMPT),
                             hint="Or set MY_PROMPT in the configuration cell.", prompt=widgets.text_box(MY_PROMPT or prompts[-1]))

# %% [markdown]
# ## Keeping your disk small
# On `gpu` each run's weights are gigabytes. Now that this notebook has sampled and scored its
# runs (the samples and score tables stay in the course home, so every figure redraws without the
# weights), the kit keeps the weights of the run with prior preservation, which notebooks 04 and
# 05 use again, and frees the rest. On Colab kept weights are copied to your Drive once; nothing
# is deleted there, since Drive's Trash would still count. `python -m helpers budget` shows what
# the whole course keeps. On `cpu` and `smoke` the runs are small and all stay.

# %%
_ = release_weights(folders, keep={"with prior": "notebooks 04 and 05 compare against it"})

# %% [markdown]
# ## Takeaways
# - Prior preservation trains on class images that the base model drew itself, next to the
#   subject photos, and adds their noise-prediction error to the loss.
# - The study found faces clearly better with it at 1200 steps and 2e-6, and other subjects
#   hardly changed. Its recipe for faces: 800 to 1200 steps at batch 2, a low rate (1e-6),
#   prior preservation on.
# - On ToyWorld what it visibly keeps is the class word's meaning; the face itself is learned
#   a little less often with it, so keeping the class costs some learning here.
# - Train only on faces of people who agreed to it.
#
# What the measurements say of the study's claims, on your profile:

# %%
claims.show_takeaway("prior_preservation", profile.name)
claims.show_takeaway("faces", profile.name)

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: does an object drift too?
# **Change:** nothing above; run the solution's cell, which trains notebook 01's object at the
# low rate without prior preservation and asks it for the plain class prompt.
# **Cost:** `cpu` about 1 min (one 400-step run, or none if 01's findings run is there); `gpu` an
# estimated 20 min on a T4.
# **Expect on `cpu`:** yes. The findings' seed-0 low-LR runs draw their own subject for the class
# prompt in 6 of 8 images (star), 7 of 8 (cube) and 8 of 8 (ball); over five seeds the cube
# drifts in 0.95 [0.85, 1.00] of 40. The study said prior preservation makes little difference
# on objects; it judged the subject's images, not the class word, which drifts here.
# **On `gpu`, look for** cat toys among "a photo of a toy".
#
# <details><summary>Solution</summary>
#
# ```python
# obj = settings.object_subject
# run = train_dreambooth(study_config(obj, arms.LOW_LR, arms.OBJECT_STEPS, settings=settings, seed=SEED))
# object_drift = sample_runs({"base model": settings.pretrained_model_name_or_path, "low LR, no prior": run.output_dir},
#                            [obj.class_prompt], seeds, profile.num_inference_steps, profile.resolution, scheduler=sampler)
# object_drift.show(title=obj.class_prompt, arms_as="rows")
# print(score_comparison(obj, object_drift, class_prompt=obj.class_prompt, name="02_object_drift"))
# ```
# The drift column of the table is the share of class-prompt images showing the subject.
# </details>
#
# ### Exercise 2: drift, counted by hand
# **Change:** nothing; look at step 6's figure and count, per row, the images that show the
# eyepatch.
# **Cost:** a minute of looking.
# **Expect on `cpu`:** the row without prior preservation shows the eyepatch in (nearly) all
# of its images, the row with it in none or one; your count should match the table's drift
# column, which the evaluator made the same way.
# **On `gpu`, look for** your subject's hair, glasses or face shape; the table gives PRES
# (similarity of the class images to your photos) instead of a count.
#
# <details><summary>Solution</summary>
#
# ```python
# print(score_comparison(subject, drift, class_prompt=subject.class_prompt, name="02_language_drift"))
# ```
# Where your count and the evaluator's differ, the evaluator is a trained network too, and it
# decides "eyepatch" from the patch over one eye (see `docs/toyworld.md`).
# </details>
