# %% [markdown]
# # 06 · EMA, and fitting DreamBooth into 16 GB
#
# **Goal:** check the study's finding that an exponential moving average (EMA) of the weights
# changes little, then measure on your own machine what each memory trick saves, and see
# which combination lets Stable Diffusion's DreamBooth fit on a 16 GB GPU. Notebook 07 goes
# beyond the study (LoRA) and ends the course with its recap.
#
# **You will learn**
# - what an EMA of the weights is, and why it matters so little over a few hundred steps;
# - the four parts of training memory (weights, gradients, optimizer state, activations) and which trick shrinks which;
# - the combination that fits on a 16 GB GPU (8-bit Adam, fp16, gradient accumulation), and what each costs in speed.
#
# **Hardware and time**
#
# | profile | hardware | time |
# |---|---|---|
# | `gpu` | a CUDA GPU with 16 GB (Colab or Kaggle T4) | estimated: about 30 min on a T4: one 400-step run with EMA, then a few steps of each memory configuration (the fp32 ones may run out of memory on 16 GB: that is the point) |
# | `cpu` | a laptop CPU | about 1 min on a 2-core machine: one run on the miniature model and the measurements |
# | `smoke` | anything (used by the tests) | about a minute |
#
# Runs are saved in your course home (on Colab, on your Drive); running the notebook again reuses
# them. The memory measurements are redone each time, since they describe the machine you run on.
#
# **What you will build** (the kit's own result on `cpu`, from a full run of the course):
#
# ![notebook 06 on cpu: what each memory trick saves](https://raw.githubusercontent.com/dreambooth-course/dreambooth-course-kit/main/docs/images/results/06_ema_and_memory.png)
#
# **The study:** its [TL;DR](https://huggingface.co/blog/dreambooth) says EMA made little difference and names 8-bit Adam, fp16 training or gradient accumulation as ways to fit 16 GB GPUs; it showed no figure for either.

# %% install

# %%
import numpy as np
import torch

from helpers import (arms, claims, figures, memory, paths, release_weights, sample, sample_runs, score_comparison,
    setup_notebook, study_config, train_dreambooth_on_gpus, widgets)

SEED = 0  # training seed; sampling seeds start here too

# %% [markdown]
# ## Configuration
# The EMA run uses the study's object recipe at full scale (low learning rate 2e-6, 400
# steps, batch size 4); in `cpu` and `smoke` the profile scales it. The memory table starts
# from the training script's defaults (fp32, AdamW, nothing saved) and switches on one trick
# per row.

# %%
PROFILE = None  # "gpu", "cpu" or "smoke"; None reads COURSE_PROFILE / looks for a GPU
STUDY_LR, STUDY_STEPS = arms.LOW_LR, arms.OBJECT_STEPS  # 2e-6, 400: the study's object recipe
N_PROMPTS = 3  # the instance prompt plus prompts that move the subject elsewhere
N_SEEDS = None  # samples per prompt; None: the profile's images_per_prompt
HALF = "fp16" if torch.cuda.is_available() else "bf16"  # fp16 training needs a CUDA GPU; bf16 runs on recent CPUs
MEASURE_STEPS = 2  # timed optimizer steps per configuration (after one untimed warm-up step)
BUDGET_GB = 16  # the GPU size to fit (Colab and Kaggle T4s)

# %% [markdown]
# ## 1. Profile, model and subject

# %%
nb = setup_notebook("06", ("object",), PROFILE, n_prompts=N_PROMPTS, seed=SEED, n_seeds=N_SEEDS)
settings, profile, subject = nb.settings, nb.profile, nb.subject
prompts, seeds, photos = nb.prompts, nb.seeds, nb.photos  # photos: shown above each figure
print(f"profile {profile.name}, model {settings.pretrained_model_name_or_path}, subject '{subject.name}'")

# %% [markdown]
# ## 2. EMA: an average of the weights along the way
# With `use_ema`, training keeps a second copy of the UNet that trails the trained one:
# after every step, `ema = decay * ema + (1 - decay) * weights`. Sampling from the average
# smooths out the last steps' noise. diffusers warms the decay up, `min(decay, (1 + t) / (10 + t))`
# at step t, so over a short fine-tune the average only spans the last few dozen steps:

# %%
from diffusers.training_utils import EMAModel  # diffusers' own EMA, the one training uses (imported after the opening, which quiets library noise)

ema = EMAModel(torch.nn.Linear(1, 1).parameters(), decay=0.9999)
for t in sorted({10, 100, profile.steps(STUDY_STEPS), 10_000}):
    d = ema.get_decay(t)
    print(f"step {t:>6}: decay {d:.4f}, i.e. an average over roughly the last {1 / (1 - d):.0f} steps")

# %% [markdown]
# The EMA copy never feeds back into training, so one run gives both answers: its raw
# weights are exactly what a run without EMA ends with, and `unet_ema/` holds the average
# (with `train_text_encoder`, `text_encoder_ema/` holds the text encoder's).

# %%
config = nb.config(STUDY_LR, STUDY_STEPS, use_ema=True)
run = nb.train({"EMA": config})["EMA"]  # and recorded as in use, so the course home's clean-up keeps it
print(f"{config.max_train_steps} steps at {config.learning_rate:.1e}, EMA decay {config.ema_decay}")

# %%
raw = sample_runs({"without EMA": run.output_dir}, prompts, seeds, profile.num_inference_steps, profile.resolution)
avg = sample_runs({"with EMA": run.output_dir}, prompts, seeds, profile.num_inference_steps, profile.resolution,
                  ema=True)
comparison = sample.Comparison({**raw.generations, **avg.generations}, prompts, seeds)
title = f"{subject.name}: {config.max_train_steps} steps, with and without EMA, seeds {seeds}"
grid = comparison.grid(title=title, photos=photos)
path = figures.save_image(grid, paths.runs_dir() / "figures", "06_ema", subject=subject.name, seed=SEED, steps=config.max_train_steps)
fig = comparison.show(title=title, photos=photos)
print(score_comparison(subject, comparison, name="06_ema"))

# %% [markdown]
# How different are the two columns? The mean pixel difference between matching images
# (0 = identical, 255 = opposite) puts a number on what the eye sees.

# %%
pairs = zip(comparison.images("without EMA"), comparison.images("with EMA"))
diffs = [np.abs(np.asarray(a, dtype=float) - np.asarray(b, dtype=float)).mean() for a, b in pairs]
print(f"mean absolute pixel difference, EMA vs raw: {sum(diffs) / len(diffs):.1f} of 255")

# %% [markdown]
# **What to look for.** The study found the two similar. *On `cpu`* the columns are the same
# star, image for image, and the table's shares match: the findings' seed-0 run scored the
# subject in 46 of 48 images either way, and over three seeds the difference is +0.00 [-0.03,
# +0.03]. *On `gpu`, look for* the same: over a few hundred steps at a low learning rate the
# weights barely wander, so their average sits close to where they end. EMA costs a full
# extra copy of the UNet (3.4 GB in fp32 for Stable Diffusion), which on a 16 GB GPU is
# better spent elsewhere.

# %% [markdown]
# ## 3. Where training memory goes
# Four things take memory during a training step:
#
# | part | what it is | the trick that shrinks it |
# |---|---|---|
# | weights | every model the step runs | fp16/bf16 for the frozen parts; caching latents so the VAE can leave |
# | gradients | one number per trained weight | training fewer weights |
# | optimizer state | AdamW keeps two averages per trained weight | 8-bit AdamW (2 bytes instead of 8 per weight) |
# | activations | what the forward pass keeps for backward | gradient checkpointing (recompute instead), smaller micro-batches with gradient accumulation, half precision |
#
# The kit measures a configuration by running a few real optimizer steps on random data of
# the right shape and counting what the tensors hold, part by part. On a GPU the allocator's
# own peak is reported beside it; on a CPU there is no such counter (the process's resident
# memory only ever grows, and it includes Python and the libraries), so the tensor count is
# the measure.

# %%
base = study_config(subject, STUDY_LR, STUDY_STEPS, settings=settings, seed=SEED, mixed_precision="no",
                    use_8bit_adam=False, gradient_checkpointing=False, cache_latents=False)
batch = base.train_batch_size
variants = {
    "fp32, AdamW (script defaults)": {},
    "8-bit AdamW": {"use_8bit_adam": True},
    "fp16": {"mixed_precision": "fp16"},
    "bf16": {"mixed_precision": "bf16"},
    "gradient checkpointing": {"gradient_checkpointing": True},
    f"batch 1 x {batch} accumulated": {"train_batch_size": 1, "gradient_accumulation_steps": batch},
    "cached latents": {"cache_latents": True},
    f"all: 8-bit, {HALF}, checkpointing, accumulation": {
        "use_8bit_adam": True, "mixed_precision": HALF, "gradient_checkpointing": True, "train_batch_size": 1,
        "gradient_accumulation_steps": batch, "cache_latents": True},
}
print(f"every row: {profile.resolution} px, effective batch {batch}, model {settings.pretrained_model_name_or_path}")

# %% [markdown]
# Each row loads the model afresh and runs `1 + MEASURE_STEPS` optimizer steps. Rows this
# machine cannot run say why (fp16 training needs a CUDA GPU; bf16 needs an Ampere GPU or
# a recent CPU; on a 16 GB GPU the fp32 rows may run out of memory).

# %%
costs = memory.measure_configurations(base, variants, steps=MEASURE_STEPS)
print(memory.cost_table(costs))

# %%
fig = memory.plot_costs(costs, title=f"one training step, {profile.resolution} px, effective batch {batch}, {profile.name}",
                        budget_bytes=BUDGET_GB * 1e9 if profile.name == "gpu" else None)
path = figures.save_plot(fig, "06_memory", profile=profile.name, resolution=profile.resolution, batch=batch)

# %% [markdown]
# Reading the table, row by row against the first:
# - **8-bit AdamW** shrinks only the optimizer state, by about 4x. Nothing else changes.
# - **fp16 / bf16** halves the frozen weights and shrinks the activations (not all of them:
#   some are kept in fp32); the trained weights and their gradients stay in fp32, so that
#   small updates are not rounded away.
# - **Gradient checkpointing** keeps only a few activations and recomputes the rest during
#   backward: a large saving, paid for with a slower step.
# - **Gradient accumulation** runs the batch one image at a time and adds the gradients up,
#   so the activations are those of one image; the update is the same as with the full batch.
# - **Cached latents** run the VAE once per image before training instead of once per step:
#   the step is faster and the VAE does not need to stay on the GPU.
#
# Times on a CPU are noisy (other programs share it); compare them roughly.

# %% [markdown]
# ## 4. What fits on a 16 GB GPU?
# On the `cpu` profile the model is a miniature, so its megabytes say which trick helps, not
# whether Stable Diffusion fits. For that, take Stable Diffusion v1-4's real weight counts
# (UNet 860 M, text encoder 123 M, VAE 84 M) and add up the three parts that depend only on
# them. Activations come on top: a few GB at 512 px and batch 1 with checkpointing, much more
# without (run this notebook on the `gpu` profile to measure them).

# %%
recipes = {"fp32, AdamW": ("no", False), "fp16, AdamW": ("fp16", False), "fp16, 8-bit AdamW": ("fp16", True)}
estimates = []
for name, (precision, eight_bit) in recipes.items():
    for te in (False, True):
        parts = memory.sd_static_memory(train_text_encoder=te, mixed_precision=precision, use_8bit_adam=eight_bit)
        estimates.append(memory.StepCost(f"{name}{', text encoder' if te else ''}", 0.0, parts["weights"],
                                         parts["gradients"], parts["optimizer"], 0))  # arithmetic: no time
for e in estimates:
    print(f"{e.label:<34} {memory.format_bytes(e.total_bytes):>9} before activations ({e.total_bytes / 1e9:.1f} GB)")

# %%
fig = memory.plot_costs(estimates, title="Stable Diffusion v1-4, fixed costs of DreamBooth (activations not included)",
                        budget_bytes=BUDGET_GB * 1e9)
fig.axes[0].set_xlim(0, 20)  # GiB, room for the 16 GB line
path = figures.save_plot(fig, "06_sd_fits_16gb", budget_gb=BUDGET_GB)

# %% [markdown]
# The dashed line is 16 GB. With fp32 and AdamW the fixed costs alone are about 14 GB before
# the first activation is stored: it does not fit. 8-bit AdamW removes about 5 GB, and with
# gradient checkpointing and accumulation keeping the activations small there is room to
# spare. The study trained with AdamW on two 40 GB A100s (its precision is not stated) and
# named 8-bit Adam, fp16 training or gradient accumulation as ways to fit 16 GB GPUs. The
# `gpu` profile puts them to work, with gradient checkpointing added by the kit. Training the
# text encoder as well fits too; the study called 24 GB ideal for it.
#
# The kit measured it with activations included (`benchmarks/train_step.py --full-sd`: Stable
# Diffusion 1.5's architecture at 512 px, batch 1 plus one class image, on one H100):
#
# | recipe | peak GPU memory |
# |---|---:|
# | fp16, AdamW, no checkpointing (UNet) | 16.6 GiB: does not fit |
# | fp16, 8-bit AdamW, checkpointing (UNet) | 8.9 GiB |
# | the same, text encoder trained too | 9.5 GiB |

# %% [markdown]
# With a live notebook you can measure any combination yourself.

# %%
def measure(use_8bit_adam=False, mixed_precision="no", gradient_checkpointing=False, micro_batch=batch,
            cache_latents=False, train_text_encoder=False):
    """Measure one configuration's step: time and peak memory."""
    changes = {"use_8bit_adam": use_8bit_adam, "mixed_precision": mixed_precision, "cache_latents": cache_latents,
               "gradient_checkpointing": gradient_checkpointing, "train_text_encoder": train_text_encoder,
               "train_batch_size": micro_batch, "gradient_accumulation_steps": max(1, batch // micro_batch)}
    print(memory.cost_table(memory.measure_configurations(base, {memory.describe(base.replace(**changes)): changes}, progress=False)))

widgets.interactive_controls(measure, button="Measure", fallback=False, mixed_precision=["no", "fp16", "bf16"],
                             micro_batch=(1, batch))

# %% [markdown]
# ## 5. Two GPUs: Kaggle's T4 x2
# Kaggle lends two T4s to one notebook. DreamBooth uses both by data parallelism: each GPU
# holds a whole copy of the model and trains on half of the batch; after each backward pass
# the two average their gradients, so both copies take the same step. Two cards do not add
# room for the weights (each one still holds them all, so the 16 GB tricks above still
# apply); they split the images of a step, so a step takes about half as long, minus the
# time spent exchanging gradients.
#
# `train_dreambooth_on_gpus` starts one fresh process per GPU (they cannot share this
# notebook's own GPU state), waits for them and reads the finished run back. From a shell,
# `python -m helpers train --config run.yaml --gpus 2` does the same. Below, the EMA run's
# recipe runs again without EMA, on two GPUs with half the batch each: the same four images
# per step, so the same learning rate. On one GPU, or on the CPU, the cell says it skips.

# %%
if torch.cuda.device_count() >= 2:  # Kaggle: Settings > Accelerator > GPU T4 x2
    split = config.replace(use_ema=False, train_batch_size=max(1, config.train_batch_size // 2))
    duo = train_dreambooth_on_gpus(split, num_processes=2)
    nb.keep(duo.output_dir)
    one, two = run.record.get("median_step_s"), duo.record.get("median_step_s")
    print(f"median step: {one} s on one GPU (batch {config.train_batch_size}, with EMA), "
          f"{two} s on two (batch {split.train_batch_size} each)")
    _ = release_weights({"two-GPU run": duo.output_dir})
else:
    print(f"Skipped: this section needs two CUDA GPUs and this machine has {torch.cuda.device_count()} "
          "(on Kaggle, pick the accelerator 'GPU T4 x2').")

# %% [markdown]
# ## Keeping your disk small
# On `gpu` each run's weights are gigabytes. Now that this notebook has sampled and scored its
# runs (the samples and score tables stay in the course home, so every figure redraws without the
# weights), no later notebook samples the EMA run: the kit frees its weights. On Colab kept
# weights are copied to your Drive once; nothing is deleted there, since Drive's Trash would still
# count. `python -m helpers budget` shows what the whole course keeps. On `cpu` and `smoke` the
# runs are small and all stay.

# %%
_ = release_weights({"EMA run": run.output_dir})

# %% [markdown]
# ## Takeaways
# - EMA over a few hundred steps averages only the last few dozen: samples with and without
#   it look alike, as the study found, and it costs a second copy of the UNet.
# - Memory has four parts. 8-bit Adam shrinks the optimizer state, fp16 the frozen weights
#   and activations, checkpointing and accumulation the activations; caching latents saves
#   time and lets the VAE leave the GPU.
# - Together they bring Stable Diffusion's DreamBooth under 16 GB, at some cost in speed.
#
# What the measurements say of the study's two claims, on your profile:

# %%
claims.show_takeaway("ema", profile.name)
claims.show_takeaway("memory", profile.name)

# %% [markdown]
# ## Exercises
#
# ### Exercise 1: a 12 GB GPU
# **Change:** `BUDGET_GB = 12` and run step 4 again.
# **Cost:** seconds: step 4 is arithmetic on Stable Diffusion's weight counts, the same on every profile.
# **Expect on `cpu`** (and everywhere): the dashed line moves to 12 GB and only the fp16 rows
# with 8-bit AdamW stay under it: 9.0 GB of fixed costs for the UNet alone, 10.0 GB with the
# text encoder, leaving about 3 and 2 GB for activations. The others need 14.2 to 16.1 GB
# before the first activation.
# **On `gpu`:** measure it: the H100 run above peaked at 8.9 GiB with fp16, 8-bit AdamW and
# checkpointing, which leaves room on 12 GB.
#
# <details><summary>Solution</summary>
#
# ```python
# BUDGET_GB = 12  # in the configuration cell, then run step 4
# ```
# </details>
#
# ### Exercise 2: the text encoder's share
# **Change:** add `"text encoder too": {"train_text_encoder": True}` to `variants` in step 3.
# **Cost:** `cpu` about 20 s; `gpu` about a minute (it may not fit in fp32 on 16 GB).
# **Expect on `cpu`:** a row about 60% larger than the first: 147 MiB against 92 MiB, with the
# gradients going from 15.8 to 28.4 MiB and the optimizer state from 31.5 to 56.8 MiB (the
# kit's count of the tensors, the same on every machine). ToyWorld's text encoder is large
# beside its small UNet; Stable Diffusion's is not (123 M parameters against 860 M).
# **On `gpu`:** 8.9 GiB for the UNet alone against 9.5 GiB with the encoder, with fp16, 8-bit
# AdamW and checkpointing (measured on an H100).
#
# <details><summary>Solution</summary>
#
# ```python
# variants["text encoder too"] = {"train_text_encoder": True}
# costs = memory.measure_configurations(base, variants, steps=MEASURE_STEPS)
# print(memory.cost_table(costs))
# ```
# </details>
