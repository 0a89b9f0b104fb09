# %% [markdown]
# # 03 · Schedulers: rescuing an overfit model at sampling time
#
# **Goal:** take one overfit model and sample it with the three schedulers the study compared
# (PNDM, LMSDiscrete, DDIM) at 50 and 100 steps, all from the same starting noise; then try
# three newer schedulers and time them all.
#
# **You will learn**
# - what a scheduler (sampler) is, and why it can change the look of a fine-tuned model without any training;
# - why the study found DDIM, and more inference steps, kinder to an overfit model than PNDM or LMSDiscrete;
# - what the newer samplers (DPM-Solver++, Euler, UniPC) buy you: good images in fewer steps.
#
# **Hardware and time**
#
# | profile | hardware | time |
# |---|---|---|
# | `gpu` | a CUDA GPU with 16 GB (Colab or Kaggle T4) | estimated: about 10 min of sampling on a T4 when the high-LR run of `01_learning_rate` exists; roughly 20 min more when it has to be trained here |
# | `cpu` | a laptop CPU | under a minute on a 2-core machine (25 s when notebook 01's high-LR run is in your course home), half the inference steps of `gpu` on the miniature model |
# | `smoke` | anything (used by the tests) | under a minute |
#
# The model is the high-LR object run of `01_learning_rate`: if that notebook ran with the
# same settings, its run is reused, otherwise it is trained here first.
#
# **What `cpu` can and cannot show.** The study's lesson needs a model that overfits with visible
# damage: noise patches and colour blotches that a gentler sampler removes. The miniature
# model does not degrade that way. Its overfit star draws the same clean dotted star with
# PNDM, LMSDiscrete and DDIM, at both step counts, and the findings (three training seeds) see
# no clear difference between the schedulers. On `cpu` this notebook teaches what a scheduler
# is and what it costs; the rescue itself can only be seen on `gpu`, or in the study's figures.
#
# **What you will build** (the kit's own result on `cpu`, from a full run of the course):
#
# ![notebook 03 on cpu: the study's schedulers on the overfit star](https://raw.githubusercontent.com/dreambooth-course/dreambooth-course-kit/main/docs/images/results/03_schedulers.png)
#
# **The study's figures:** the face sampled with [PNDM](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/9_cosmo_pndm.jpg), [LMSDiscrete](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/a_cosmo_lmsd.jpg) and [DDIM](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/b_cosmo_ddim.jpg); Mr. Potato Head with [PNDM](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/c_potato_pndm.jpg), [LMSDiscrete](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/d_potato_lmsd.jpg) and [DDIM](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/e_potato_ddim.jpg), in the [study](https://huggingface.co/blog/dreambooth).

# %% install

# %%
import matplotlib.pyplot as plt

from helpers import (arms, claims, figures, paths, release_weights, sample, sampling, score_comparison,
    setup_notebook, subject_prompts, widgets)

SEED = 0  # training seed of the overfit run; sampling seeds start here too

# %% [markdown]
# ## Configuration
# `STUDY_STEPS` are the study's inference steps (50 and 100). In `cpu` and `smoke` they are
# scaled by the profile's default number of steps over 50 (half in `cpu`), since the
# miniature model is sampled with fewer steps.

# %%
PROFILE = None  # "gpu", "cpu" or "smoke"; None reads COURSE_PROFILE / looks for a GPU
OVERFIT_RUN = arms.OVERFIT_RUN  # (5e-6, 400): the overfit model, notebook 01's high-LR run
STUDY_STEPS = arms.STUDY_INFERENCE_STEPS  # (50, 100): inference steps the study compared
NEWER = arms.NEWER_SCHEDULERS  # dpm++, euler, unipc: samplers that came after the study
N_SEEDS = None  # images per scheduler and step count; None: the profile's images_per_prompt
TRY_SCHEDULER, TRY_STEPS = "ddim", 100  # step 6 without a live notebook: one scheduler, study steps

# %% [markdown]
# ## 1. The overfit model
# The same configuration as the high-LR run of `01_learning_rate` (no sample grids during
# training here; they do not change the weights, so the run is still found and reused).

# %%
nb = setup_notebook("03", ("object",), PROFILE, seed=SEED)
settings, profile, subject, photos = nb.settings, nb.profile, nb.subject, nb.photos  # photos: shown above each figure
lr, steps = OVERFIT_RUN
config = nb.config(lr, steps)
run = nb.train({"overfit": config}, retrain_missing_weights=True)["overfit"]  # notebook 01's run, or trained again
pipe = sample.load_run(run.output_dir)
print(f"profile {profile.name}: '{subject.name}', LR {config.learning_rate:.1e}, {config.max_train_steps} steps")

# %% [markdown]
# ## 2. What a scheduler does
# Sampling starts from pure noise and removes it in a fixed number of steps. The UNet only
# predicts the noise in the current image; the *scheduler* decides how big a step to take
# with that prediction, and at which noise levels. PNDM and LMSDiscrete use several past
# predictions to take larger, higher-order steps; DDIM takes simple first-order steps. The
# study did not say why DDIM coped better; a plausible reason is that when the predictions
# are a little off (an overfit model), combining several of them can amplify the errors into
# noise patches and colour blotches, while a first-order step passes them on as they are.
#
# To compare fairly, every image starts from the same latents: `compare_schedulers` draws the
# starting noise from one seeded generator per image, whatever the scheduler.

# %%
scale = profile.num_inference_steps / 50  # 1 on gpu, 0.5 on cpu
inference_steps = tuple(max(2, round(n * scale)) for n in STUDY_STEPS)
seeds = [SEED + i for i in range(N_SEEDS or profile.images_per_prompt)]
prompt = subject_prompts(subject, 2)[-1]  # a prompt that asks for something the photos do not show
sample.sample_pipeline(pipe, [prompt], seeds[:1], 2, profile.resolution)  # warm-up, so the timings below are fair
print(f"prompt '{prompt}', inference steps {inference_steps}, seeds {seeds}")

# %% [markdown]
# ### Where the noise starts
# Stable Diffusion's noise schedule stops short of pure noise: at its last timestep the
# training image still makes up 0.068 of the input (`sqrt(alphas_cumprod[-1])`). So a model
# can learn to read an image's overall colour there. When sampling there is no image, and
# the model reads that colour from the random noise instead. On SD's 64x64 latent grid the
# noise's average is close to zero and this hardly matters. On the miniature model's 16x16
# grid the noise's average is four times larger, about as large as the image's own share,
# and a model that listens to it ignores the colour and background the prompt asked for.
#
# There are two remedies. In training, *offset noise* adds a random constant per image and
# channel to the noise, so that its average stops meaning anything; the ToyWorld model's
# last 1,500 pretraining steps use it. In sampling, `helpers.train.sampling.generate` starts each
# image from noise whose average per latent channel is replaced by what the model saw in
# training: the data's mean latent times 0.068. It does so only for a model whose VAE records
# that mean (`vae.config.latents_mean`: the kit's ToyWorld model does, Stable Diffusion does
# not). On an earlier ToyWorld model, trained with too little offset noise, this start alone
# raised colour accuracy on held-out prompts from 0.60 to 0.80; on one trained with enough
# it added a little (0.93 to 0.96). Details: `docs/toyworld.md`.
# Below, the same seeds are sampled both ways with the model's own scheduler. On the shipped
# model expect the two rows to look much alike: it was trained not to listen to the noise's
# average, and the start only nudges it.

# %%
if pipe.vae.config.get("latents_mean") is None:
    print("This model's VAE records no latent mean: every start is plain Gaussian noise, as in Stable Diffusion.")
else:
    starts = {"plain noise": False, "data mean": True}
    rows = [sampling.generate(pipe, prompt, seeds, num_inference_steps=inference_steps[0], data_mean=flag,
                              resolution=profile.resolution, progress=False).images for flag in starts.values()]
    fig = figures.show_grid([im for row in rows for im in row], len(rows), len(seeds), row_labels=list(starts),
                            col_labels=[f"seed {s}" for s in seeds], title=f"'{prompt}': two ways to start")

# %% [markdown]
# ## 3. PNDM vs LMSDiscrete vs DDIM
# One row per scheduler and number of steps; the seeds go from left to right.

# %%
study = sampling.compare_schedulers(pipe, prompt, sampling.STUDY_SCHEDULERS, inference_steps, seeds, resolution=profile.resolution)
comparison = sample.scheduler_comparison(study, prompt)
title = f"'{prompt}', overfit run (study LR {lr:.0e}, {steps} steps), seeds {seeds}"
path = figures.save_image(comparison.grid(title=title, arms_as="rows", photos=photos), paths.runs_dir() / "figures", "03_study_schedulers",
                          subject=subject.name, seed=SEED, steps=f"{inference_steps[0]}-{inference_steps[1]}")
fig = comparison.show(title="the study's schedulers, same starting noise", arms_as="rows", photos=photos)
print(score_comparison(subject, comparison, name="03_schedulers"))

# %% [markdown]
# **What to look for.**
# - *What the study saw* on its overfit runs: DDIM usually much better than PNDM and
#   LMSDiscrete, with LMSDiscrete the worst (it ruined the face); 100 steps turned noisy patches
#   into detail. The effect was strongest on the face and weaker on objects.
# - *On `cpu`* the rows look alike: the same star, in the same place, from the same noise,
#   whatever the scheduler. The table's numbers differ by an image or two at most, within noise.
# - *On `gpu`, look for* blotches and grain in the PNDM and LMSDiscrete rows that the DDIM rows,
#   and the 100-step rows, do not have.
# - In `smoke` the tiny random model draws noise; the code path is what is being tested.

# %% [markdown]
# ## 4. Newer schedulers
# Since the study, samplers have appeared that reach good images in 20 to 25 steps:
# DPM-Solver++ (multistep), Euler and UniPC. Same prompt, same seeds, same step counts.

# %%
newer = sampling.compare_schedulers(pipe, prompt, NEWER, inference_steps, seeds, resolution=profile.resolution)
comparison_newer = sample.scheduler_comparison(newer, prompt)
path = figures.save_image(comparison_newer.grid(title=title, arms_as="rows", photos=photos), paths.runs_dir() / "figures", "03_newer_schedulers",
                          subject=subject.name, seed=SEED, steps=f"{inference_steps[0]}-{inference_steps[1]}")
fig = comparison_newer.show(title="newer schedulers, same starting noise", arms_as="rows", photos=photos)
print(score_comparison(subject, comparison_newer, name="03_newer_samplers"))

# %% [markdown]
# ## 5. Time per image
# The UNet runs once per step whatever the scheduler (twice with classifier-free guidance),
# so time grows with the number of steps and hardly depends on the scheduler. The gain of
# the newer samplers is that they need fewer steps for the same quality.

# %%
seconds = {**comparison.seconds_per_image(), **comparison_newer.seconds_per_image()}
fig = figures.plot_seconds_per_image(seconds, title=f"sampling time per image, {profile.name} profile, "
                                            f"{profile.resolution} px")
path = figures.save_plot(fig, "03_seconds_per_image", profile=profile.name, resolution=profile.resolution)

# %% [markdown]
# ## 6. Try a scheduler yourself
# Pick a scheduler and a number of steps (study steps, scaled like above). Without a live
# notebook, `TRY_SCHEDULER` and `TRY_STEPS` in the configuration cell are used.

# %%
def try_scheduler(scheduler, study_steps):
    """Sample the overfit model with one scheduler, the notebook's prompt and seeds."""
    n = max(2, round(study_steps * scale))
    result = sample.sample_pipeline(pipe, [prompt], seeds, n, profile.resolution, scheduler=scheduler)
    sample.scheduler_comparison({(scheduler, n): result}, prompt).show(title=f"{scheduler}, {n} steps", arms_as="rows")
    plt.show()

widgets.interactive_controls(try_scheduler, button="Sample", hint="TRY_SCHEDULER and TRY_STEPS set the values used here.",
                             scheduler=widgets.dropdown(list(sampling.SCHEDULERS), TRY_SCHEDULER), study_steps=widgets.slider(TRY_STEPS, 10, 150, 10))

# %% [markdown]
# ## Keeping your disk small
# On `gpu` each run's weights are gigabytes. Now that this notebook has sampled and scored its
# runs (the samples and score tables stay in the course home, so every figure redraws without the
# weights), the kit frees the weights of the overfit run, unless notebook 01 already kept them on
# your Drive. On Colab kept weights are copied to your Drive once; nothing is deleted there, since
# Drive's Trash would still count. `python -m helpers budget` shows what the whole course keeps.
# On `cpu` and `smoke` the runs are small and all stay.

# %%
_ = release_weights({"overfit run": run.output_dir})

# %% [markdown]
# ## Takeaways
# - The scheduler changes how an image is sampled, not the model: it costs nothing to try
#   another one on a finished run.
# - The study's advice: noisy or degraded samples mean overfitting. Fix it at the source
#   (lower learning rate, fewer steps, see `01_learning_rate`); otherwise sample with DDIM or
#   with about 100 steps.
# - Newer samplers (DPM-Solver++, UniPC) give comparable images in fewer steps, and time per
#   image is set by the number of steps (step 5).
# - On ToyWorld there is no damage for a sampler to clean up, so this claim is not tested there.
#   What the measurements say, on your profile:

# %%
claims.show_takeaway("schedulers", profile.name)

# %% [markdown]
# ## Exercises
# The expected outcomes on `cpu` are the committed findings for training seed 0 (this run),
# scored with 8 images per prompt at 25 and 50 steps.
#
# ### Exercise 1: fewer steps
# **Change:** `TRY_SCHEDULER, TRY_STEPS = "dpm++", 50` and run step 6 (on `cpu` that is 25
# inference steps), then `100`.
# **Cost:** seconds on `cpu`; about a minute per setting on a T4 (estimated).
# **Expect on `cpu`:** no difference you can see: the findings scored DPM-Solver++ at 25 and at
# 50 steps with the same shares (subject 0.96 of 48, places 0.90 of 40, purple 5 of 8).
# **On `gpu`, look for** the step count below which DPM-Solver++'s images turn soft; on Stable
# Diffusion it is usually near 20.
#
# <details><summary>Solution</summary>
#
# ```python
# try_scheduler("dpm++", 50)
# try_scheduler("dpm++", 100)
# ```
# Time per image halves with the steps (step 5); the images barely move.
# </details>
#
# ### Exercise 2: the prompt that shows overfitting
# **Change:** ask for the colour the photos never show, `prompt = subject_prompts(subject, 3,
# unseen=True)[-1]` ("a photo of a purple sks star on the grass"), and run step 3 again.
# **Cost:** `cpu` under a minute; `gpu` an estimated 10 min (use a prompt of your own there).
# **Expect on `cpu`:** some red stars in every row. The findings' seed-0 run drew the purple
# star in 7 of 8 images with PNDM and DDIM, 6 of 8 with Euler and 5 of 8 with LMSDiscrete,
# DPM-Solver++ and UniPC; over three seeds the differences are within noise (intervals
# [0.00, 0.92] and wider). A sampler cannot undo what training overwrote.
# **On `gpu`, look for** whether any scheduler restores a detail your prompt asks for.
#
# <details><summary>Solution</summary>
#
# ```python
# prompt = subject_prompts(subject, 3, unseen=True)[-1]
# study = sampling.compare_schedulers(pipe, prompt, sampling.STUDY_SCHEDULERS, inference_steps, seeds,
#                                     resolution=profile.resolution)
# sample.scheduler_comparison(study, prompt).show(title=prompt, arms_as="rows")
# ```
# </details>
