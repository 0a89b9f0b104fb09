# %% [markdown]
# # 01 · Learning rate: DreamBooth overfits fast
#
# **Goal:** train the same object twice, once with the study's high learning rate (5e-6) and
# once with its low one (2e-6), and watch where each run lands between "has not learned the
# subject yet" and "can only redraw the training photos".
#
# **You will learn**
# - what underfitting and overfitting look like in DreamBooth samples, and why the loss curve hardly shows either;
# - why the study settled on a low learning rate (2e-6 for 400 steps on objects);
# - how to find the sweet spot of learning rate x steps for your own subject: low LR, then more steps.
#
# **Hardware and time**
#
# | profile | hardware | time |
# |---|---|---|
# | `gpu` | a CUDA GPU with 16 GB (Colab or Kaggle T4) | estimated: roughly 40 min on a T4, 15 min on an A100: two runs of 400 steps at batch 4 |
# | `cpu` | a laptop CPU | about 1.5 min on a 2-core machine: two runs of 400 steps on the miniature model |
# | `smoke` | anything (used by the tests) | about a minute |
#
# Runs are saved in your course home (`train/`; on Colab, on your Drive); running the notebook again
# reuses finished runs, resumes an interrupted one, and redraws the figures.
#
# **The study's figures:** the cat toy at [high](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/1_cattoy_hlr.jpg) and [low](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/2_cattoy_llr.jpg) learning rate, the pig head ([high](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/3_pighead_hlr.jpg), [low](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/4_pighead_llr.jpg)) and Mr. Potato Head ([high](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/5_potato_hlr.jpg), [low](https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/6_potato_llr.jpg)), in the [study](https://huggingface.co/blog/dreambooth). Compare them with step 5 below.

# %% install

# %%
import tempfile

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from helpers import (arms, curves, default_settings, dreambooth, figures, paths, release_weights, sample, sample_runs,
    score_comparison, setup_notebook, study_config, train_dreambooth, widgets)

SEED = 0  # training seed (data order, noise, timesteps) of every run; sampling seeds start here too

# %% [markdown]
# ## Configuration
# The study's values, at full scale. The profile maps them to what runs here: in `gpu` they are
# used as they are; in `cpu` the steps are the study's and the learning rates 100x higher (a
# miniature model needs larger steps), with the ratio high / low = 2.5 kept; `smoke` also cuts
# the steps to a handful.

# %%
PROFILE = None  # "gpu", "cpu" or "smoke"; None reads COURSE_PROFILE / looks for a GPU
HIGH_LR, LOW_LR = arms.HIGH_LR, arms.LOW_LR  # 5e-6 and 2e-6: the study's two learning rates for objects
STUDY_STEPS = arms.OBJECT_STEPS  # 400: the study's steps for objects (batch 4, no prior preservation)
N_PROMPTS = 3  # the instance prompt plus prompts that move the subject elsewhere
N_SEEDS = None  # samples per prompt; None: the profile's images_per_prompt
N_CHECKPOINTS = 4  # sample grids saved during training, evenly spaced
EXTRA_ARM = None  # e.g. (1e-6, 800): study LR and steps of one more run to compare (exercise 1)
SAMPLER = None  # None: the model's own scheduler (PNDM for Stable Diffusion, as in the study); or "ddim", "dpm++" ...

# %% [markdown]
# ## 1. Profile, model and subject
# The choices of `00_setup` (or this profile's defaults) decide the model and the object.
# `setup_notebook` returns one object, `nb`, holding what every notebook starts from: the settings,
# the profile, the subject, its prompts, the sampling seeds and the training photos.

# %%
nb = setup_notebook("01", ("object",), PROFILE, n_prompts=N_PROMPTS, seed=SEED, n_seeds=N_SEEDS, sampler=SAMPLER)
settings, profile, subject = nb.settings, nb.profile, nb.subject
prompts, seeds, photos = nb.prompts, nb.seeds, nb.photos
sampler = nb.sampler
print(f"profile {profile.name}, model {settings.pretrained_model_name_or_path}, subject '{subject.name}', "
      f"sampler {sample.scheduler_name(sampler)}")
print("prompts:", *prompts, sep="\n  ")
fig = figures.show_grid(photos, 1, len(photos), title=f"the {len(photos)} training photos of '{subject.name}'")

# %% [markdown]
# ## 2. Two runs that differ only in learning rate
# `study_config` writes a DreamBooth configuration from the study's numbers. Both runs share
# everything else: seed, batch size, steps, model. During training each run samples a small
# grid (first two prompts, two seeds) every few steps, so we can watch it learn.

# %%
def arm(study_lr, study_steps=STUDY_STEPS):
    """The configuration of one run of this experiment."""
    return study_config(subject, study_lr, study_steps, settings=settings, seed=SEED,
                        validation_prompts=prompts[:2], validation_seeds=seeds[:2],
                        validation_steps=max(1, profile.steps(study_steps) // N_CHECKPOINTS))

configs = {f"high LR {HIGH_LR:.0e}": arm(HIGH_LR), f"low LR {LOW_LR:.0e}": arm(LOW_LR)}
steps_here = profile.steps(STUDY_STEPS)
for name, c in configs.items():
    print(f"{name}: learning_rate {c.learning_rate:.1e}, {c.max_train_steps} steps, batch {c.train_batch_size}")

# %% [markdown]
# Training each run takes most of this notebook's time (see the table at the top). A run
# that already finished with the same configuration is found and reused.

# %%
runs = nb.train(configs)  # and recorded as in use, so the course home's clean-up keeps them
folders = {label: r.output_dir for label, r in runs.items()}

# %% [markdown]
# ## 3. The loss does not tell you when to stop
# DreamBooth's loss is the error of the UNet's noise prediction at a random noise level. It
# jumps from step to step with the noise level drawn, and it keeps drifting down whether the
# model is learning the subject or memorising the photos. Both curves look healthy; the
# difference between the runs only shows in the samples.

# %%
fig = figures.plot_losses({name: r.losses for name, r in runs.items()}, window=max(2, steps_here // 10),
                          title=f"training loss, seed {SEED}, {subject.name}")
path = figures.save_plot(fig, "01_loss", subject=subject.name, seed=SEED, steps=steps_here)

# %% [markdown]
# ## 4. Samples during training
# One row per saved step, one column per run; inside each cell, the rows are the first two
# prompts and the columns the two seeds. Read down a column to see one run learn.

# %%
try:
    table = figures.progress_table(folders, title=f"{subject.name}: samples during training, seeds {seeds[:2]}", width=256)
except FileNotFoundError as err:  # a run reused from elsewhere (notebook 03, the findings script) saved no grids
    table = None
    print(f"{err}\nThe runs: " + ", ".join(f.name for f in folders.values()))
else:
    path = figures.save_image(table, paths.runs_dir() / "figures", "01_progress", subject=subject.name, seed=SEED)
    fig = figures.show_image(table, width=6)

# %% [markdown]
# With a live notebook you can step through the checkpoints one at a time (the plain table
# above holds the same pictures).

# %%
if table is not None:
    grids = {name: figures.validation_grids(f) for name, f in folders.items()}
    saved_steps = [s for s in next(iter(grids.values())) if all(s in g for g in grids.values())]

    def show_step(step):
        figures.show_image(figures.paste_table([[g[step] for g in grids.values()]], [step], list(grids), width=320))
        plt.show()

    widgets.interactive_controls(show_step, manual=False, fallback=False,
                                 step=widgets.selection_slider(saved_steps, saved_steps[-1]))

# %% [markdown]
# ## 5. The finished runs, side by side
# Now the final weights, sampled with the model's own scheduler (PNDM for Stable Diffusion, as
# the study did; DPM-Solver++ for the ToyWorld model, on which PNDM gets colours wrong). One row per prompt,
# one column per run, and in each cell the seeds from left to right: two images in the same
# place of neighbouring columns started from the same noise and differ only in the learning rate.

# %%
comparison = sample_runs(folders, prompts, seeds, profile.num_inference_steps, profile.resolution, scheduler=sampler)
grid = comparison.grid(title=f"{subject.name}: {steps_here} steps, {sample.scheduler_name(sampler)}, seeds {seeds} left to right",
                       photos=photos)
path = figures.save_image(grid, paths.runs_dir() / "figures", "01_lr_comparison", subject=subject.name, seed=SEED,
                          steps=steps_here, sampler=sampler)
fig = comparison.show(title=f"high vs low learning rate, {subject.name}, seeds {seeds}", photos=photos)
print(score_comparison(subject, comparison, name="01_learning_rate"))

# %% [markdown]
# What to look for. The high-LR run reached the subject sooner, but by the end its samples
# repeat the training photos whatever the prompt asks (the background, the pose), and the
# images get grainy or oddly coloured: it has **overfit**. The low-LR run keeps following the
# prompt while showing the subject: this is the result the study preferred on every object.
# (In `smoke` the tiny random model draws noise; the code path is what is being tested.)

# %% [markdown]
# **Reading the table under the figure.** Every comparison in the course prints one, with the
# same columns on every profile; only the judge changes, and its last line names it.
# - On ToyWorld (`cpu`) the kit's evaluator looks at each image: *subject* is the share of
#   images it recognises as your subject, *prompt* the share that show what the prompt asked
#   for (the place, the colour), *drift* the share of plain class-prompt images that show the
#   subject. The *cosine* and *diversity* columns compare the evaluator's features.
# - With real photos (`gpu`, or your own subject) the DreamBooth paper's backbones judge:
#   DINO ViT-S/16 and CLIP-I (mean cosine similarity between each image and your photos),
#   CLIP-T (image against its prompt, without `sks`), PRES (class-prompt images against your
#   photos) and a diversity from DINO features. For scale, the paper's Table 1 gives DreamBooth
#   on Stable Diffusion DINO 0.668, CLIP-I 0.803, CLIP-T 0.305 (real photos of the subject
#   against each other: DINO 0.774, CLIP-I 0.885); its user study could see differences of
#   about 0.1 DINO or 0.05 CLIP-T.
#
# Each cell reads `value [low, high], n=N`: the 95% interval and the number of images behind
# it. With a handful of images the intervals are wide. Two arms whose intervals overlap a lot
# may well be the same; the findings table in the README settles each comparison with the
# interval of the difference. (In `smoke` the backbones are tiny random networks, so the
# numbers mean nothing there.)

# %% [markdown]
# ## 6. Underfit, good, overfit
# The same two runs cover the whole range. Early in the low-LR run the subject is not there
# yet (underfit); at the end of the low-LR run it is (good); at the end of the high-LR run it
# has taken over the prompt (overfit). The sweet spot lies on a line of learning rate x steps.

# %%
high, low = (figures.validation_grids(f) for f in folders.values())  # the order of `configs`
first, last = list(low)[0], list(low)[-1]
cells = [[low[first], low[last], high[last]]]
sweet = figures.paste_table(cells, [subject.name], [f"underfit: low LR, {first}", f"good: low LR, {last}",
                                                    f"overfit: high LR, {last}"], width=256)
path = figures.save_image(sweet, paths.runs_dir() / "figures", "01_sweet_spot", subject=subject.name, seed=SEED)
fig = figures.show_image(sweet, width=8)

# %% [markdown]
# ### The sweet spot, measured
# Three pictures make the point; every grid the runs saved can make it with numbers. The cell
# below scores each saved step of both runs with the same judge as the tables under the
# figures (ToyWorld's evaluator for a ToyWorld subject, DINO and CLIP otherwise) and draws two
# curves per run: how much the samples look like the subject (top) and how well they follow
# their prompt (bottom). Nothing is sampled or trained again: these are the images of section 4.
#
# What the study leads us to expect: likeness climbs with the steps; prompt fidelity holds
# while the model learns, then drops once it overfits and redraws its training photos; the
# high learning rate gets to both points in fewer steps. The sweet spot is where likeness is
# high and the prompt is still followed.
#
# Read the bars before the lines. Each point rests only on the images of one saved grid (the
# legend gives the count: two prompts x two seeds, 4 images, on `gpu` and `cpu`), so its 95%
# interval is wide and a step-to-step wiggle is mostly chance: only a gap the bars do not
# bridge is a result. More validation seeds in `arm` would narrow them, at the price of
# training both runs again.

# %%
try:
    curve = curves.score_steps(subject, folders)
except FileNotFoundError as err:  # a run reused from elsewhere saved no grids: nothing to score
    print(str(err).splitlines()[0])
else:
    fig = curves.plot_sweet_spot(curve, title=f"{subject.name}: fidelity during training, seed {SEED}")
    path = figures.save_plot(fig, "01_sweet_spot_curve", subject=subject.name, seed=SEED)

# %% [markdown]
# ## 7. Your own learning rate (optional)
# Pick a learning rate and a number of steps (study values, mapped through the profile like
# the others), press the button, and one more run is trained and added as a column. Without a
# live notebook, set `EXTRA_ARM` in the configuration cell, e.g. `(1e-6, 800)`. On `gpu` each
# choice is another full training run.

# %%
def train_extra(study_lr, study_steps):
    """Train one more run (or reuse it) and compare it with the two above."""
    extra = train_dreambooth(arm(study_lr, study_steps))
    label = f"LR {study_lr:.0e}, {study_steps} study steps"
    more = sample_runs({**folders, label: extra.output_dir}, prompts, seeds, profile.num_inference_steps,
                       profile.resolution, scheduler=sampler)
    figures.save_image(more.grid(title=f"{subject.name}, seeds {seeds}"), paths.runs_dir() / "figures", "01_extra_arm",
                       subject=subject.name, seed=SEED, lr=study_lr, study_steps=study_steps)
    more.show(title=f"with an extra run: {label}")
    plt.show()

start_lr, start_steps = EXTRA_ARM or (1e-6, 800)  # where the sliders start; without them, EXTRA_ARM runs
widgets.interactive_controls(train_extra, button="Train", fallback=bool(EXTRA_ARM),
                             hint="Or set EXTRA_ARM in the configuration cell.",
                             study_lr=widgets.log_slider(start_lr, 1e-7, 1e-5), study_steps=widgets.slider(start_steps, 100, 2000, 100))

# %% [markdown]
# ## Keeping your disk small
# On `gpu` each run's weights are gigabytes. Now that this notebook has sampled and scored its
# runs (the samples and score tables stay in the course home, so every figure redraws without the
# weights), the kit keeps the weights of the high-LR run, which notebook 03 samples again, and
# frees the rest. On Colab kept weights are copied to your Drive once; nothing is deleted there,
# since Drive's Trash would still count. `python -m helpers budget` shows what the whole course
# keeps. On `cpu` and `smoke` the runs are small and all stay.

# %%
_ = release_weights(folders, keep={list(folders)[0]: "notebook 03 samples it with other schedulers"})

# %% [markdown]
# ## Takeaways
# - DreamBooth overfits quickly. Too high a learning rate (or too many steps) and the model
#   redraws its training photos whatever the prompt says, with noise and colour artifacts.
# - Too low a learning rate for too few steps and the subject never appears: underfitting.
# - The loss curve cannot tell these apart; look at samples from fixed prompts and seeds.
# - The study found the low rate better on every dataset: for objects, 2e-6 for 400 steps at
#   batch size 4 worked well. Its advice, and the first line of the course's summary: start
#   with a low learning rate and increase the steps progressively until the subject appears.
# - On ToyWorld (`cpu`) the kit's findings table (README, "The study's findings, measured";
#   five training seeds per rate) measures both rates. At the low rate the evaluator finds
#   the subject's pattern in 0.98 [0.95, 1.00] of the star's images, 0.99 [0.96, 1.00] of the
#   cube's and 0.77 [0.71, 0.82] of the ball's (240 images each, 95% intervals), against 0.00
#   to 0.04 before training; the high rate gets as far or further (0.98, 1.00 and 0.91). The
#   ball's bands are learned more slowly than dots and checks (and two evaluators can read
#   them differently: see the README). The high rate overfits the star, as in the study: asked
#   for a purple star, it mostly keeps its own red (attribute fidelity 0.30 [0.03, 0.60]
#   against 0.95 [0.82, 1.00], 40 images each), and its prompt fidelity is lower by 0.12
#   [0.04, 0.21]. On the cube and the ball both rates follow every new background and colour. Compare the generations with the photos above them: the
#   dots, bands and checks appear, with softer edges than in the photos.
# - The same table measures the sweet spot with low-LR runs of 400, 800 and 1600 study steps
#   (three seeds each): the ball, slow to learn, rises from 0.76 to 0.85 and 0.98 subject
#   fidelity; the star, learned by 400 steps (0.97), overfits: asked for a new place it draws
#   it in 0.96, 0.86 and 0.82 of the images (120 each), and after 1600 steps it draws no
#   purple star at all (0 of 24). Each subject has its own sweet spot.
#
# ## Exercises
# 1. Set `EXTRA_ARM = (1e-6, 800)`. Is half the learning rate for twice the steps the same
#    as the low-LR run? Where on the underfit-overfit line does it land?
# 2. Double `STUDY_STEPS` with the low learning rate. Does the low-LR run start to overfit, and
#    at which saved step?
# 3. Add a prompt of your own that asks for something the training photos never show (a
#    colour, a place) to `prompts` after step 1. Which run still follows it?

# %% [markdown]
# ## Inside `train_dreambooth`: one training step written out
# Every run above went through `train_dreambooth`. Take away its bookkeeping (the run folder,
# resuming, checkpoints, the log, several GPUs, mixed precision) and what is left is the loop
# below. It uses the kit only to load the base model, the photos and the class images, and to
# build the optimizer (`dreambooth.training_parts`, the set-up `train_dreambooth` itself uses);
# each step is then written out:
# - **Randomness.** One generator per step, seeded from the run's seed and the step number,
#   draws everything random in a fixed order: the flips of the batch's images, the sample of
#   their latents, the noise, the timesteps. That is why an interrupted run that resumes draws
#   what the uninterrupted one drew, and why this loop can match the kit bit for bit.
# - **The batch.** The subject's photos first, then (prior preservation) as many class images
#   made by the base model from the class prompt, each with its prompt. Photos and prompts
#   were encoded once before training (latents and text embeddings), since those parts are frozen.
# - **Forward diffusion.** Each image gets its own timestep `t`; the scheduler mixes latents and
#   noise as `sqrt(a_t) x + sqrt(1 - a_t) noise`, where `a_t` shrinks as `t` grows.
# - **The target.** Stable Diffusion 1.x predicts the noise (*epsilon*); the 768 px SD 2.x
#   models predict a velocity (*v*), a mix of noise and latents the scheduler computes.
# - **The loss.** The mean squared error on the subject's rows, plus `prior_loss_weight` times
#   the error on the class rows: notebook 02's prior preservation.
# - **The update.** Backpropagate, clip the gradient's norm at `max_grad_norm`, take one AdamW
#   step at the learning rate of the schedule, forget the gradient.
#
# The loop assumes a single device, full precision, a frozen text encoder and no gradient
# accumulation; `train_dreambooth` handles the rest. It trains the miniature model on every
# profile (on `gpu` too, so that it takes seconds), three steps with prior preservation.

# %%
def dreambooth_by_hand(config, steps):
    """``steps`` updates of DreamBooth, written out; the trained UNet and each step's loss."""
    models, dataset, trainee = dreambooth.training_parts(config)  # base model, photos and class images, AdamW
    unet, vae, scheduler = trainee.unet, models["vae"], models["noise_scheduler"]
    device = next(unet.parameters()).device
    losses = []
    for step in range(steps):
        g = dreambooth.step_generator(config.seed, step)  # all of this step's randomness, drawn in order:
        batch = dreambooth.make_batch(dataset, config, step, g)  # 1. which images (photos first), their flips
        latents = dreambooth.batch_latents(vae, batch, g, device)  # 2. a sample of each image's latents
        noise = torch.randn(latents.shape, generator=g).to(device)  # 3. the noise
        timesteps = torch.randint(0, scheduler.config.num_train_timesteps, (len(latents),), generator=g)  # 4.
        timesteps = timesteps.to(device)
        noisy = scheduler.add_noise(latents, noise, timesteps)  # forward diffusion to step t
        prompts = dreambooth.cached_hidden_states(trainee.cached_embeddings, batch)  # encoded once, frozen
        prediction = unet(noisy, timesteps, prompts).sample
        if scheduler.config.prediction_type == "epsilon":
            target = noise  # Stable Diffusion 1.x: predict the noise
        else:
            target = scheduler.get_velocity(latents, noise, timesteps)  # v-prediction (SD 2.x, 768 px)
        n = batch["num_instance"]  # rows [:n] show the subject, rows [n:] the class
        instance_loss = F.mse_loss(prediction[:n].float(), target[:n].float())
        prior_loss = F.mse_loss(prediction[n:].float(), target[n:].float())
        loss = instance_loss + config.prior_loss_weight * prior_loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainee.params, config.max_grad_norm)
        trainee.optimizer.step()  # AdamW
        trainee.lr_scheduler.step()
        trainee.optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
    return unet, losses

# %% [markdown]
# Three steps of it, and then `train_dreambooth` on the same configuration (into a temporary
# folder, so the course home keeps nothing of it). Same seed, same order of draws, same
# arithmetic: the weights should come out equal, not merely close. (On a GPU some kernels add
# up in a varying order, so there the last digits may differ; the largest difference is printed.)

# %%
small = default_settings("cpu") if profile.name == "gpu" else settings  # the miniature model, on every profile
loop_config = study_config(small.object_subject, LOW_LR, STUDY_STEPS, with_prior_preservation=True, settings=small,
                           seed=SEED, num_class_images=4, validation_prompts=[]).replace(max_train_steps=3)
by_hand, losses = dreambooth_by_hand(loop_config, loop_config.max_train_steps)
with tempfile.TemporaryDirectory() as folder:
    kit = train_dreambooth(loop_config.replace(output_dir=folder), progress=False, keep_models=True)
for step, (mine, theirs) in enumerate(zip(losses, kit.losses["loss"])):
    print(f"step {step}: loss {mine:.4f} here, {theirs:.4f} in train_dreambooth")
pairs = list(zip(by_hand.state_dict().values(), kit.models["unet"].state_dict().values()))
print(f"same UNet weights as train_dreambooth: {all(torch.equal(a, b.to(a.device)) for a, b in pairs)} "
      f"(largest difference {max((a - b.to(a.device)).abs().max().item() for a, b in pairs):.1e})")
