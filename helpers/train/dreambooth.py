"""DreamBooth: the loss, one training step, and the loop.

Read it in this order: :func:`dreambooth_loss` (the method), :func:`training_step` (one
forward pass), :func:`train_dreambooth` (the whole run on one screen). The run's life cycle
(its folder, resume, checkpoints, the log, the record) is :mod:`helpers.train.runs`, shared with
textual inversion; the set-up here is only what DreamBooth itself needs. With ``use_lora`` the
same loop trains LoRA adapters on a frozen base model instead of every weight (:mod:`helpers.train.lora`).

All randomness of a step (which images, noise, timesteps, flips) comes from a generator
seeded by ``(seed, step, micro-step, rank)``. So a run resumed from a checkpoint draws
exactly what the uninterrupted run drew, and every GPU of a multi-GPU run draws its own.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from helpers.base.home import check_free_space, hub_cache_dir, hub_cache_on_home
from helpers.base.storage import (
    SAMPLES_DIR,
    checkpoints_folder,
    find_weights,
    local_weights_root,
    weights_dir,
)
from helpers.errors import LearnerError
from helpers.figures import image_grid
from helpers.train.batches import DreamBoothDataset, batch_indices, collate_fn
from helpers.train.class_images import (
    ClassImageSpec,
    check_record,
    class_folder,
    class_image_bytes,
    generate_class_images,
)
from helpers.train.config import ConfigError, TrainConfig, class_prompt_of, resolve_output_dir, save_config
from helpers.train.data import check_image_folder, load_images
from helpers.train.lora import (
    add_adapters,
    is_lora_run,
    load_lora_run,
    register_checkpoint_hooks,
    save_adapter,
    trainable_parameters,
    write_base_reference,
)
from helpers.train.modelcard import write_model_card
from helpers.train.models import (
    PARTS_NOTE,
    check_model_reachable,
    download_bytes,
    dtype_kwargs,
    load_components,
    load_parts,
    load_pipeline,
    model_bytes,
    model_fingerprint,
    resolve_model,
    warn_if_base_changed,
    write_parts_note,
)
from helpers.train.optim import (
    check_mixed_precision,
    enable_gradient_checkpointing,
    make_optimizer,
    weight_dtype_for,
)
from helpers.train.runs import (
    CONFIG_NAME,
    NonFiniteLossError,
    Run,
    RunExistsError,
    RunResult,
    finished_result,
    make_accelerator,
    make_ema,
    make_lr_scheduler,
    scaled_learning_rate,
)
from helpers.train.sampling import generate, make_scheduler

log = logging.getLogger(__name__)

__all__ = ["NonFiniteLossError", "RunExistsError", "RunResult", "train_dreambooth"]


@dataclass
class LossParts:
    """The DreamBooth loss and its two terms (``prior_loss`` is None without prior preservation)."""

    loss: torch.Tensor
    instance_loss: torch.Tensor
    prior_loss: torch.Tensor | None = None

    def stacked(self) -> torch.Tensor:
        """``[loss, instance_loss, prior_loss or 0]`` as one detached tensor (for logging)."""
        prior = self.prior_loss if self.prior_loss is not None else torch.zeros_like(self.loss)
        return torch.stack([self.loss, self.instance_loss, prior]).detach()


# ----------------------------------------------------------------------------------------------- the method


def noise_target(
    noise_scheduler, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
) -> torch.Tensor:
    """What the UNet must predict: the noise (epsilon, SD 1.x) or the velocity (v-prediction, SD 2.x 768)."""
    kind = noise_scheduler.config.prediction_type
    if kind == "epsilon":
        return noise
    if kind == "v_prediction":
        return noise_scheduler.get_velocity(latents, noise, timesteps)
    raise ValueError(
        f"Unsupported prediction_type {kind!r}: DreamBooth here handles 'epsilon' and 'v_prediction'."
    )


def dreambooth_loss(
    model_pred: torch.Tensor, target: torch.Tensor, num_instance: int, prior_loss_weight: float = 1.0
) -> LossParts:
    """Noise-prediction MSE on the instance images, plus ``prior_loss_weight`` x the MSE on the class images.

    Introduced in notebook 02 (prior preservation), which prints this function.

    Args:
        model_pred, target: (B, C, h, w); the first ``num_instance`` rows are instance images,
            the rest (if any) class images, as :func:`helpers.train.batches.collate_fn` orders them.
    """
    instance_loss = F.mse_loss(model_pred[:num_instance].float(), target[:num_instance].float())
    if num_instance == len(model_pred):
        return LossParts(instance_loss, instance_loss)
    prior_loss = F.mse_loss(model_pred[num_instance:].float(), target[num_instance:].float())
    return LossParts(instance_loss + prior_loss_weight * prior_loss, instance_loss, prior_loss)


def step_generator(seed: int, step: int, micro_step: int = 0, rank: int = 0) -> torch.Generator:
    """The CPU generator for one micro-step: the same numbers on every machine and after a resume."""
    return torch.Generator().manual_seed(((seed * 1_000_003 + step) * 64 + micro_step) * 1024 + rank)


def batch_latents(vae, batch: dict, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Scaled latents of a batch: sampled from cached distributions, or encoded by the VAE now."""
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution  # heavy: loaded with diffusers

    if "latent_params" in batch:
        dist = DiagonalGaussianDistribution(batch["latent_params"].to(device))
    else:
        with torch.no_grad():
            dist = vae.encode(batch["pixel_values"].to(device, vae.dtype)).latent_dist
    return dist.sample(generator=generator).float() * vae.config.scaling_factor


def training_step(
    unet,
    text_encoder,
    vae,
    noise_scheduler,
    batch: dict,
    generator: torch.Generator,
    prior_loss_weight: float = 1.0,
    encoder_hidden_states: torch.Tensor | None = None,
) -> LossParts:
    """One forward pass of DreamBooth: noise the latents at random timesteps, predict, compare.

    ``generator`` is drawn in this order, after :func:`make_batch`'s flips: the latent sample,
    the noise, the timesteps (notebook 01 writes the step out and relies on it).

    Args:
        batch: from :func:`helpers.train.batches.collate_fn` (pixels or cached latent parameters).
        generator: CPU generator for the VAE sample, noise and timesteps (see :func:`step_generator`).
        encoder_hidden_states: cached prompt embeddings; None runs the text encoder on ``batch["input_ids"]``.
    """
    device = next(unet.parameters()).device
    latents = batch_latents(vae, batch, generator, device)
    noise = torch.randn(latents.shape, generator=generator).to(device)
    timesteps = torch.randint(
        0, noise_scheduler.config.num_train_timesteps, (len(latents),), generator=generator
    )
    timesteps = timesteps.to(device)
    noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)  # forward diffusion to step t
    if encoder_hidden_states is None:
        encoder_hidden_states = text_encoder(batch["input_ids"].to(device))[0]
    model_pred = unet(noisy_latents, timesteps, encoder_hidden_states).sample
    target = noise_target(noise_scheduler, latents, noise, timesteps)
    return dreambooth_loss(model_pred, target, batch["num_instance"], prior_loss_weight)


# ------------------------------------------------------------------------------------------- checks


def check_inputs(config: TrainConfig) -> None:
    """Everything a learner can get wrong, checked before any class image is made or any step is taken.

    The subject folder (every problem of it in one message), the base model, the class prompt and
    class-image folder, the precision on this hardware, and free disk space for what the run will write.
    """
    if not config.instance_data_dir:
        raise ConfigError("instance_data_dir is empty: set it to the folder that holds the subject's photos.")
    check_image_folder(config.instance_data_dir, config.resolution)
    check_model_reachable(config.pretrained_model_name_or_path)
    if config.with_prior_preservation:
        if not config.class_prompt:
            print(f"Class prompt {class_prompt_of(config)!r}: the instance prompt without its identifier "
                  "(set class_prompt to choose another).")
        spec = class_image_spec(config)
        check_record(class_folder(config.class_data_dir, spec), spec, write=False)  # made with these settings?
    check_mixed_precision(config.mixed_precision)
    parts = run_bytes(config)
    apart = local_weights_root() if config.save_trained_parts else None  # weights on the machine's disk
    download = parts["download"] if hub_cache_on_home() else 0  # else it goes to the machine's own disk
    home_part = parts["classes"] + download + (0 if apart else parts["weights"] + parts["checkpoints"])
    check_free_space(resolve_output_dir(config), home_part, "This DreamBooth run")
    if apart:
        check_free_space(apart, parts["weights"] + parts["checkpoints"],
                         "This run's weights and checkpoints (on this machine's disk)")
    if parts["download"] and not download and hub_cache_dir() is not None:
        check_free_space(hub_cache_dir(), parts["download"], "Downloading the base model")


def run_bytes(config: TrainConfig) -> dict[str, int]:
    """About how many bytes a run writes, by kind: final ``weights``, ``checkpoints``, ``classes``, ``download``.

    A checkpoint holds the trained weights (fp32), two Adam moments per weight (a quarter of that
    with 8-bit Adam) and, with EMA, their average; ``checkpoints_total_limit`` of them are kept.
    The final weights are the whole pipeline (plus an fp16 copy with ``save_fp16``), or with
    ``save_trained_parts`` only the trained parts (half as large with ``save_fp16``); EMA adds its average.
    A LoRA run trains and writes only its adapter (bounded here by ``rank / 256`` of the trained models).
    A Hub model not downloaded yet counts as Stable Diffusion 1.x, and its download is counted.
    """
    model = model_bytes(config.pretrained_model_name_or_path)
    trained = model_bytes(config.pretrained_model_name_or_path, ["unet"] + (
        ["text_encoder"] if config.train_text_encoder else []))
    if config.use_lora:  # rank 4 on Stable Diffusion: about 0.1% of the UNet
        model = trained = int(trained * min(1.0, config.rank / 256))
    per_weight = 1 + (0.5 if config.use_8bit_adam else 2) + (1 if config.use_ema else 0)
    kept = config.checkpoints_total_limit or config.max_train_steps // max(1, config.checkpointing_steps)
    checkpoints = int(trained * per_weight) * kept if config.checkpointing_steps else 0
    if config.save_trained_parts and not config.use_lora:
        weights = (trained // 2 if config.save_fp16 else trained) * (2 if config.use_ema else 1)
    else:
        weights = model + (trained if config.use_ema else 0) + (model // 2 if config.save_fp16 else 0)
    classes = class_image_bytes(config.num_class_images, config.resolution) if config.with_prior_preservation else 0
    return {"weights": weights, "checkpoints": checkpoints, "classes": classes,
            "download": download_bytes(config.pretrained_model_name_or_path)}




# ------------------------------------------------------------------------------------------- set-up


def class_image_spec(config: TrainConfig) -> ClassImageSpec:
    """The class-image settings implied by a training config."""
    return ClassImageSpec(
        model=config.pretrained_model_name_or_path,
        model_fingerprint=model_fingerprint(config.pretrained_model_name_or_path),
        prompt=class_prompt_of(config),
        scheduler=config.class_scheduler,
        num_inference_steps=config.class_inference_steps,
        seed=config.seed,
        resolution=config.resolution,
    )


def prepare_class_images(config: TrainConfig, accelerator) -> list:
    """Generate any missing class images on the main process; every process then loads them."""
    spec = class_image_spec(config)
    folder = class_folder(config.class_data_dir, spec)
    if accelerator.is_main_process:
        generate_class_images(
            folder, spec, config.num_class_images, config.sample_batch_size, device=accelerator.device
        )
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the sampling pipeline is gone; give its memory back before training
    accelerator.wait_for_everyone()
    return load_images(folder, config.resolution, config.center_crop)[: config.num_class_images]


def load_models_and_data(config: TrainConfig, accelerator) -> tuple[dict, DreamBoothDataset]:
    """The base model's parts and the dataset: subject photos and (prior preservation) class images."""
    class_images = prepare_class_images(config, accelerator) if config.with_prior_preservation else None
    instance_images = load_images(config.instance_data_dir, config.resolution, config.center_crop)
    models = load_components(config.pretrained_model_name_or_path)
    dataset = DreamBoothDataset(
        instance_images,
        config.instance_prompt,
        models["tokenizer"],
        class_images,
        class_prompt_of(config) if class_images else None,
    )
    return models, dataset


def make_batch(dataset, config: TrainConfig, position: int, generator: torch.Generator) -> dict:
    """The ``position``-th batch of the run (see ``batch_indices``); flips drawn from ``generator``."""
    indices = batch_indices(position, config.train_batch_size, len(dataset), config.seed)
    flips = (
        (torch.rand(len(indices), generator=generator) < 0.5).tolist()
        if config.random_flip
        else [False] * len(indices)
    )
    return collate_fn(
        [dataset.example(i, f) for i, f in zip(indices, flips)], dataset.with_prior_preservation
    )


def cached_hidden_states(cached: torch.Tensor | None, batch: dict) -> torch.Tensor | None:
    """Prompt embeddings for a batch from the cache (row 0: instance prompt, row 1: class prompt), or None."""
    if cached is None:
        return None
    n_instance, n_class = batch["num_instance"], len(batch["input_ids"]) - batch["num_instance"]
    return torch.cat([cached[:1].expand(n_instance, -1, -1), cached[1:2].expand(n_class, -1, -1)])


@dataclass
class TrainingSetup:
    """What DreamBooth trains and with what: the (wrapped) models, optimizer, LR schedule, EMA, caches."""

    unet: torch.nn.Module
    text_encoder: torch.nn.Module
    trained: list  # the models that get gradients (wrapped for several GPUs)
    params: list
    optimizer: object
    lr_scheduler: object
    ema_unet: object = None
    ema_text_encoder: object = None
    cached_embeddings: torch.Tensor | None = None  # the prompts through a frozen text encoder, once
    extra: dict = field(default_factory=dict)

    def step_ema(self, accelerator) -> None:
        """Move the weight averages one step towards the current weights."""
        if self.ema_unet is not None:
            self.ema_unet.step(accelerator.unwrap_model(self.unet).parameters())
        if self.ema_text_encoder is not None:
            self.ema_text_encoder.step(accelerator.unwrap_model(self.text_encoder).parameters())

    def models(self, accelerator) -> dict:
        """The trained models, unwrapped, and their averages (``RunResult.models``)."""
        return {"unet": accelerator.unwrap_model(self.unet),
                "text_encoder": accelerator.unwrap_model(self.text_encoder),
                "ema_unet": self.ema_unet, "ema_text_encoder": self.ema_text_encoder}


def prepare_models(config: TrainConfig, accelerator, models: dict, dataset: DreamBoothDataset) -> TrainingSetup:
    """Freeze what is not trained, cache what does not change, and build optimizer, LR schedule and EMA.

    Notebook 04 (the text encoder) prints the lines of this function that decide what is trained.
    """
    from diffusers.training_utils import cast_training_params

    unet, text_encoder, vae = models["unet"], models["text_encoder"], models["vae"]
    weight_dtype = weight_dtype_for(config.mixed_precision)
    # Only what is trained needs gradients; frozen parts run in half precision when it is on.
    vae.requires_grad_(False).to(accelerator.device, dtype=weight_dtype)
    if config.use_lora:  # the base weights are frozen (half precision under fp16); only adapters learn
        for frozen in (unet, text_encoder):
            frozen.to(accelerator.device, **({"dtype": weight_dtype} if weight_dtype != torch.float32 else {}))
        add_adapters(config, unet, text_encoder)
        unet.train()
        text_encoder.train(config.train_text_encoder)
    else:
        unet.requires_grad_(True).train()
        text_encoder.requires_grad_(config.train_text_encoder).train(config.train_text_encoder)
        if not config.train_text_encoder:
            text_encoder.to(accelerator.device, dtype=weight_dtype)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(unet, text_encoder if config.train_text_encoder else None)
    if config.cache_latents:  # the VAE then runs once per image instead of once per step
        dataset.cache_latents(
            lambda x: vae.encode(x.to(vae.device, vae.dtype)).latent_dist.parameters,
            config.sample_batch_size,
            both_flips=config.random_flip,
        )
    cached = None
    if config.cache_text_embeddings and not config.train_text_encoder:  # a frozen encoder: each prompt once
        ids = [dataset.instance_prompt_ids] + ([dataset.class_prompt_ids] if dataset.with_prior_preservation else [])
        with torch.no_grad():
            cached = text_encoder(torch.stack(ids).to(accelerator.device))[0]

    trained = [unet] + ([text_encoder] if config.train_text_encoder else [])
    cast_training_params(trained, dtype=torch.float32)  # trainable weights stay fp32 under fp16
    params = [p for m in trained for p in trainable_parameters(m)]
    optimizer = make_optimizer(
        params, scaled_learning_rate(config, accelerator.num_processes), config.use_8bit_adam,
        (config.adam_beta1, config.adam_beta2), config.adam_weight_decay, config.adam_epsilon,
        accelerator.device,
    )
    lr_scheduler = make_lr_scheduler(config, optimizer, accelerator.num_processes)
    *trained, optimizer, lr_scheduler = accelerator.prepare(*trained, optimizer, lr_scheduler)
    unet, text_encoder = trained[0], trained[1] if config.train_text_encoder else text_encoder
    if config.use_lora:  # checkpoints hold the adapter, not the frozen base weights
        register_checkpoint_hooks(accelerator, config, unet, text_encoder if config.train_text_encoder else None)
    setup = TrainingSetup(unet, text_encoder, trained, params, optimizer, lr_scheduler, cached_embeddings=cached)
    if config.use_ema:  # an average of every trained model, checkpointed with the run
        setup.ema_unet = make_ema(accelerator, unet, config.ema_decay)
        if config.train_text_encoder:
            setup.ema_text_encoder = make_ema(accelerator, text_encoder, config.ema_decay, with_config=False)
    return setup


def training_parts(config: TrainConfig) -> tuple[dict, DreamBoothDataset, TrainingSetup]:
    """What :func:`train_dreambooth` trains with, outside a run: the base model's parts, the dataset, the set-up.

    Nothing is checked or written but missing class images. Notebook 01 writes the training loop
    out with these and compares its weights with :func:`train_dreambooth`'s.
    """
    accelerator = make_accelerator(config, resolve_output_dir(config))
    models, dataset = load_models_and_data(config, accelerator)
    return models, dataset, prepare_models(config, accelerator, models, dataset)


NON_FINITE_HELP = (
    "The loss became {value} at step {step}; training stopped. Likely causes: a learning rate far too high "
    "(the study used 1e-6 to 5e-6 at full scale; lower it), fp16 overflow (try mixed_precision='bf16' on "
    "an Ampere GPU, or 'no'), trainable weights loaded in float16 (load the model in float32), or a broken "
    "image in instance_data_dir / class_data_dir. The last checkpoint (if any) is in {checkpoints}."
)


# ------------------------------------------------------------------------------------------------- the loop


def train_dreambooth(
    config: TrainConfig, stop_after_steps: int | None = None, progress: bool = True, keep_models: bool = False,
    retrain_missing_weights: bool = False,
) -> RunResult:
    """Fine-tune Stable Diffusion on a subject with DreamBooth; reuse a finished run with the same config.

    Args:
        config: the run's settings (see :class:`helpers.train.config.TrainConfig`).
        stop_after_steps: stop early as if interrupted (to demonstrate and test resuming).
        progress: show a progress bar.
        keep_models: return the trained models in ``RunResult.models`` (on every process).
        retrain_missing_weights: a finished run whose weights are not on this machine is trained again.
    """
    run = Run.open(config, "train", checks=lambda: check_inputs(config), nan_help=NON_FINITE_HELP,
                   retrain_missing_weights=retrain_missing_weights)
    if run.reused:
        return run.result()
    accelerator = run.accelerator
    models, dataset = load_models_and_data(config, accelerator)
    setup = prepare_models(config, accelerator, models, dataset)
    run.resume(stop_after_steps)

    accum, processes, rank = config.gradient_accumulation_steps, run.num_processes, accelerator.process_index
    for step in run.steps("training", progress):  # one step = one optimizer update
        totals = torch.zeros(3, device=accelerator.device)  # loss, instance and prior loss, summed
        for micro in range(accum):
            with accelerator.accumulate(*setup.trained):  # no gradient sync across GPUs until the last micro-step
                g = step_generator(config.seed, step, micro, rank)  # all of this micro-step's randomness
                batch = make_batch(dataset, config, (step * accum + micro) * processes + rank, g)
                hidden = cached_hidden_states(setup.cached_embeddings, batch)  # None: the text encoder runs
                parts = training_step(setup.unet, setup.text_encoder, models["vae"], models["noise_scheduler"],
                                      batch, g, config.prior_loss_weight, hidden)
                accelerator.backward(parts.loss)  # scaled for fp16; gradients are averaged across GPUs
                if accelerator.sync_gradients:  # last micro-step: clip the accumulated gradient
                    accelerator.clip_grad_norm_(setup.params, config.max_grad_norm)
                setup.optimizer.step()  # skipped by accelerate on all but the last micro-step
                setup.lr_scheduler.step()
                setup.optimizer.zero_grad(set_to_none=True)  # frees the gradient memory until the next backward
            totals += parts.stacked()
        setup.step_ema(accelerator)
        loss, instance_loss, prior_loss = totals / accum
        run.end_step(  # averaged over GPUs, NaN stop, log, checkpoint, samples
            step,
            {"loss": loss, "instance_loss": instance_loss,
             "prior_loss": prior_loss if dataset.with_prior_preservation else None},
            setup.lr_scheduler.get_last_lr()[0],
            sample=lambda name: save_validation(config, run.output_dir, name, accelerator, setup.unet,
                                                setup.text_encoder, models),
        )
    if run.stopped_early():
        return run.result()

    record = run.finish(lambda: save_outputs(config, run.output_dir, accelerator, setup, models),
                        {"optimizer": type(setup.optimizer.optimizer).__name__,
                         "trained_parameters": sum(p.numel() for p in setup.params)})
    if accelerator.is_main_process:
        write_model_card(run.output_dir)  # README.md: what to say when the model is shared
        if config.save_trained_parts:  # its weights are saved: a finished run needs no checkpoint (GBs on gpu)
            shutil.rmtree(checkpoints_folder(run.output_dir), ignore_errors=True)
    return run.result(record, setup.models(accelerator) if keep_models else None)


# ---------------------------------------------------------------------------------------------- outputs


def validation_images(
    components: dict, prompts: list[str], seeds: list[int], steps: int, resolution: int, accelerator
):
    """A grid of one row per prompt and one column per seed, sampled from the current weights."""
    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        vae=components["vae"],
        text_encoder=components["text_encoder"],
        tokenizer=components["tokenizer"],
        unet=components["unet"],
        scheduler=make_scheduler("dpm++", components["noise_scheduler"].config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    pairs = [(p, s) for p in prompts for s in seeds]
    with accelerator.autocast():
        result = generate(
            pipe,
            [p for p, _ in pairs],
            [s for _, s in pairs],
            num_inference_steps=steps,
            resolution=resolution,
            batch_size=len(seeds),
            progress=False,
        )
    return image_grid(
        result.images, len(prompts), len(seeds), row_labels=None, col_labels=[f"seed {s}" for s in seeds]
    )


def save_validation(
    config: TrainConfig,
    output_dir: Path,
    name: str,
    accelerator,
    unet,
    text_encoder,
    models: dict,
    ema_unet=None,
) -> Path | None:
    """Sample the validation prompts from fixed seeds; save the grid as ``samples/<name>.png``."""
    if not accelerator.is_main_process:
        return None
    components = {
        **models,
        "unet": accelerator.unwrap_model(unet),
        "text_encoder": accelerator.unwrap_model(text_encoder),
    }
    grid = validation_images(
        components,
        config.validation_prompts,
        config.validation_seeds,
        config.validation_inference_steps,
        config.resolution,
        accelerator,
    )
    path = output_dir / SAMPLES_DIR / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


def save_outputs(config: TrainConfig, output_dir: Path, accelerator, setup: TrainingSetup, models: dict) -> None:
    """The finished run's outputs: final samples, then the pipeline and EMA weights, or the LoRA adapter (main process)."""
    if config.validation_prompts:
        save_validation(config, output_dir, "final", accelerator, setup.unet, setup.text_encoder, models)
    if config.use_lora:  # the adapter and the name of its base model, not a copy of the base model
        text_encoder = accelerator.unwrap_model(setup.text_encoder) if config.train_text_encoder else None
        save_adapter(output_dir, config, accelerator.unwrap_model(setup.unet), text_encoder)
        write_base_reference(output_dir, config)
        return
    save_pipeline_outputs(config, output_dir, accelerator, setup.unet, setup.text_encoder, setup.ema_unet,
                          models, setup.ema_text_encoder)


def save_pipeline_outputs(
    config: TrainConfig,
    output_dir: Path,
    accelerator,
    unet,
    text_encoder,
    ema_unet,
    models: dict,
    ema_text_encoder=None,
) -> None:
    """Save the trained pipeline (safetensors, float32; optional fp16 variant) and the EMA weights beside it.

    ``unet_ema/`` holds the averaged UNet and, when the text encoder was trained,
    ``text_encoder_ema/`` the averaged text encoder.
    """
    from diffusers import StableDiffusionPipeline

    unet = accelerator.unwrap_model(unet)
    extra = {"text_encoder": accelerator.unwrap_model(text_encoder)} if config.train_text_encoder else {}
    if config.save_trained_parts:
        save_trained_parts(config, weights_dir(output_dir), unet, extra.get("text_encoder"), ema_unet,
                           ema_text_encoder)
        if ema_unet is not None and config.validation_prompts:
            with swapped_in(ema_unet, unet, ema_text_encoder, extra.get("text_encoder")):
                save_validation(config, output_dir, "final-ema", accelerator, unet, text_encoder, models)
        return
    # Frozen parts are reloaded in float32 from the base model, so the saved pipeline is exact.
    pipe = StableDiffusionPipeline.from_pretrained(
        resolve_model(config.pretrained_model_name_or_path),
        unet=unet,
        **extra,
        use_safetensors=True,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(output_dir, safe_serialization=True)
    if ema_unet is not None:
        ema_unet.save_pretrained(str(output_dir / "unet_ema"))
        averaged = [(ema_unet, unet)]
        if ema_text_encoder is not None:
            averaged.append((ema_text_encoder, extra["text_encoder"]))
        for ema, model in averaged:  # swap the averages in ...
            ema.store(model.parameters())
            ema.copy_to(model.parameters())
        if ema_text_encoder is not None:
            extra["text_encoder"].save_pretrained(output_dir / "text_encoder_ema", safe_serialization=True)
        if config.validation_prompts:  # the same prompts and seeds, sampled with the EMA weights
            save_validation(config, output_dir, "final-ema", accelerator, unet, text_encoder, models)
        for ema, model in averaged:  # ... and the trained weights back
            ema.restore(model.parameters())
    if config.save_fp16:
        pipe.to(torch.float16).save_pretrained(output_dir, safe_serialization=True, variant="fp16")


@contextmanager
def swapped_in(ema_unet, unet, ema_text_encoder=None, text_encoder=None):
    """Inside the block the models hold their EMA averages; afterwards their trained weights again."""
    averaged = [(ema_unet, unet)] + ([(ema_text_encoder, text_encoder)] if ema_text_encoder is not None else [])
    for ema, model in averaged:
        ema.store(model.parameters())
        ema.copy_to(model.parameters())
    try:
        yield
    finally:
        for ema, model in averaged:
            ema.restore(model.parameters())


def save_trained_parts(config: TrainConfig, folder: Path, unet, text_encoder=None, ema_unet=None,
                       ema_text_encoder=None) -> Path:
    """Save what the run trained (float16 with ``save_fp16``) and a note naming its base model.

    ``unet/`` and, when trained, ``text_encoder/``; with EMA also ``unet_ema/`` (and ``text_encoder_ema/``).
    :func:`load_trained_pipeline` puts them back into the base model; ``python -m helpers export RUN
    --pipeline OUT`` writes the whole diffusers folder.
    """
    dtype = torch.float16 if config.save_fp16 else torch.float32
    folder.mkdir(parents=True, exist_ok=True)
    parts = {"unet": unet, "text_encoder": text_encoder}
    for name, model in parts.items():
        if model is not None:
            save_model_as(model, folder / name, dtype)
    if ema_unet is not None:
        with swapped_in(ema_unet, unet, ema_text_encoder, text_encoder):
            save_model_as(unet, folder / "unet_ema", dtype)
            if ema_text_encoder is not None:
                save_model_as(text_encoder, folder / "text_encoder_ema", dtype)
    return write_parts_note(folder, config.pretrained_model_name_or_path,
                            [n for n, m in parts.items() if m is not None], str(dtype).split(".")[-1])


def save_model_as(model, folder: Path, dtype: torch.dtype) -> None:
    """Save a diffusers or transformers model (config and safetensors) in ``dtype``, leaving the model as it was.

    Each tensor is cast on its own, so the extra memory is one copy in ``dtype`` (half the UNet in float16).
    """
    from safetensors.torch import save_file

    if dtype == torch.float32:
        model.save_pretrained(folder, safe_serialization=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    if hasattr(model, "save_config"):  # diffusers
        model.save_config(folder)
        save_file(state, folder / "diffusion_pytorch_model.safetensors", metadata={"format": "pt"})
    else:  # transformers
        model.config.save_pretrained(folder)
        save_file(state, folder / "model.safetensors", metadata={"format": "pt"})


def load_trained_parts(folder: Path, ema: bool = False, torch_dtype: torch.dtype | None = None):
    """The base model named in ``folder``'s note with the run's trained parts (or their EMA averages) put in."""
    note = json.loads((folder / PARTS_NOTE).read_text())
    warn_if_base_changed(note)
    if ema and not (folder / "unet_ema").is_dir():
        raise FileNotFoundError(f"{folder} has no unet_ema/: train with use_ema: true to get EMA weights.")
    pipe = load_pipeline(note["base_model"], torch_dtype=torch_dtype)
    for name, part in load_parts(folder, torch_dtype, "_ema" if ema else "").items():
        setattr(pipe, name, part)
    return pipe


def load_trained_pipeline(
    output_dir: str | Path,
    ema: bool = False,
    torch_dtype: torch.dtype | None = None,
    device: str | None = None,
):
    """Load a finished run's pipeline: a full run's folder, its trained parts in their base model, or a LoRA run.

    Args:
        ema: swap in the EMA weights saved beside the raw ones (full runs trained with ``use_ema``).
    """
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    output_dir = Path(output_dir)
    if is_lora_run(output_dir):
        if ema:
            raise FileNotFoundError(f"{output_dir} is a LoRA run: it has no EMA weights (LoRA runs do not use EMA).")
        pipe = load_lora_run(output_dir, torch_dtype=torch_dtype)
        return pipe.to(device) if device else pipe
    if (output_dir / CONFIG_NAME).is_file():  # a run folder: its weights may be kept elsewhere (helpers.base.storage)
        output_dir = find_weights(output_dir)
    if (output_dir / PARTS_NOTE).is_file() and not (output_dir / "model_index.json").is_file():
        pipe = load_trained_parts(output_dir, ema, torch_dtype)
        return pipe.to(device) if device else pipe
    pipe = load_pipeline(str(output_dir), torch_dtype=torch_dtype)
    if ema:
        if not (output_dir / "unet_ema").is_dir():
            raise FileNotFoundError(
                f"{output_dir} has no unet_ema/: train with use_ema: true to get EMA weights."
            )
        pipe.unet = UNet2DConditionModel.from_pretrained(output_dir / "unet_ema", **dtype_kwargs(torch_dtype))
        if (output_dir / "text_encoder_ema").is_dir():  # the text encoder was trained, and averaged too
            pipe.text_encoder = CLIPTextModel.from_pretrained(
                output_dir / "text_encoder_ema", **dtype_kwargs(torch_dtype)
            )
    return pipe.to(device) if device else pipe


def train_dreambooth_on_gpus(
    config: TrainConfig, num_processes: int = 2, progress: bool = True, stop_after_steps: int | None = None,
) -> RunResult:
    """Run :func:`train_dreambooth` in ``num_processes`` processes, one per GPU (Kaggle's 2x T4), and wait for it.

    The processes start fresh (torchrun running ``python -m helpers train``), so the notebook or shell
    that calls this may already have loaded models and used the GPU. Without CUDA they share the CPU
    (gloo), which is how the kit tests it. Their messages are printed here as they come.

    With ``num_processes=1``, or inside a process torchrun or accelerate started, it is :func:`train_dreambooth`.

    Returns:
        the finished run, read back from its folder (load its weights from ``output_dir`` as usual).
    """
    if num_processes < 2 or "WORLD_SIZE" in os.environ:  # one process, or already one of several
        return train_dreambooth(config, stop_after_steps=stop_after_steps, progress=progress)
    if torch.cuda.is_available() and torch.cuda.device_count() < num_processes:
        raise LearnerError(
            f"{num_processes} processes need {num_processes} GPUs and this machine has "
            f"{torch.cuda.device_count()}: ask for fewer, or train with train_dreambooth on one GPU. On Kaggle, "
            "pick the accelerator 'GPU T4 x2' under Settings."
        )
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the new processes need the GPU memory this one keeps cached
    with tempfile.TemporaryDirectory() as folder:
        config_path = save_config(config, Path(folder) / "config.yaml")
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                   str(num_processes), "-m", "helpers", "train", "--config", str(config_path)]
        command += ([] if progress else ["--no-progress"]) + (
            ["--stop-after-steps", str(stop_after_steps)] if stop_after_steps else [])
        stream_command(command)
    return finished_result(config, "train")


def stream_command(command: list[str]) -> None:
    """Run a command with the kit importable, printing its output as it comes.

    Raises:
        RuntimeError: the command failed (its messages were printed above).
    """
    kit_root = str(Path(__file__).resolve().parents[2])  # the folder holding ``helpers/``
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [kit_root, os.environ.get("PYTHONPATH")]))}
    env.setdefault("OMP_NUM_THREADS", "1")
    tail = b""
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env) as process:
        while chunk := process.stdout.read1(4096):  # progress bars redraw with \r: pass them on unchanged
            sys.stdout.write(chunk.decode(errors="replace"))
            sys.stdout.flush()
            tail = (tail + chunk)[-4000:]
    text = tail.decode(errors="replace")
    if process.returncode != 0:
        raise RuntimeError(f"{' '.join(command[:6])} ... failed (exit status {process.returncode}):\n{text}")
