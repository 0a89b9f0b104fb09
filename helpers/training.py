"""DreamBooth training on accelerate: the loss, one step, and the loop.

Read it in this order: :func:`dreambooth_loss` (the method), :func:`training_step` (one
forward pass), :func:`train_dreambooth` (the loop, top to bottom). Everything else is
set-up and bookkeeping kept out of the loop's way.

All randomness of a step (which images, noise, timesteps, flips) comes from a generator
seeded by ``(seed, step, micro-step, rank)``. So a run resumed from a checkpoint draws
exactly what the uninterrupted run drew, and every GPU of a multi-GPU run draws its own.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from .config import TrainConfig, config_hash, resolve_output_dir, save_config
from .paths import display_path

log = logging.getLogger(__name__)

LOG_COLUMNS = ["step", "loss", "instance_loss", "prior_loss", "lr"]
DONE_NAME = "done.json"
RECORD_NAME = "run.json"
LOG_FILE = "logs/train_log.csv"  # inside the run folder
CONFIG_NAME = "config.yaml"


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the run was stopped."""


class RunExistsError(RuntimeError):
    """The output folder holds a different run; the kit never overwrites one silently."""


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


@dataclass
class RunResult:
    """What a training run left behind."""

    output_dir: Path
    losses: dict[str, list[float]]  # the log's columns: step, loss, instance_loss, prior_loss, lr
    reused: bool  # True when a finished run with the same configuration was found instead of training
    config: TrainConfig
    record: dict = field(default_factory=dict)
    models: dict | None = None  # with keep_models=True: the trained unet and text_encoder, still in memory
    step_seconds: list[float] = field(default_factory=list)  # wall time of each step of this call


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

    Args:
        model_pred, target: (B, C, h, w); the first ``num_instance`` rows are instance images,
            the rest (if any) class images, as :func:`helpers.dataset.collate_fn` orders them.
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
    from diffusers.models.autoencoders.vae import DiagonalGaussianDistribution

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

    Args:
        batch: from :func:`helpers.dataset.collate_fn` (pixels or cached latent parameters).
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


# ------------------------------------------------------------------------------------------------ set-up


def make_batch(dataset, config: TrainConfig, position: int, generator: torch.Generator) -> dict:
    """The ``position``-th batch of the run (see ``batch_indices``); flips drawn from ``generator``."""
    from .dataset import batch_indices, collate_fn

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


def run_status(output_dir: Path, run_hash: str, config_cls: type = TrainConfig) -> str:
    """``"done"`` (finished, same config), ``"partial"`` (unfinished), ``"empty"`` or ``"other"``."""
    config_file = output_dir / CONFIG_NAME
    if not output_dir.exists() or not any(output_dir.iterdir()):
        return "empty"
    if not config_file.exists():
        return "other"
    from .config import load_config

    try:
        saved_hash = config_hash(load_config(config_file, config_cls))
    except ValueError:
        return "other"
    if saved_hash != run_hash:
        return "other"
    return "done" if (output_dir / DONE_NAME).exists() else "partial"


def read_log(path: Path) -> dict[str, list[float]]:
    """The training log's columns as float lists (empty prior_loss cells become NaN)."""
    if not path.exists():
        return {k: [] for k in LOG_COLUMNS}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) if r[k] not in ("", None) else math.nan for r in rows] for k in LOG_COLUMNS}


def trim_log(path: Path, last_step: int) -> None:
    """Drop log rows after ``last_step`` (a resumed run rewrites them)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def list_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoint folders of a run, oldest first."""
    folder = output_dir / "checkpoints"
    found = (
        [p for p in folder.glob("checkpoint-*") if p.name.split("-")[-1].isdigit()] if folder.is_dir() else []
    )
    return sorted(found, key=lambda p: int(p.name.split("-")[-1]))


def find_checkpoint(output_dir: Path, which: str) -> Path | None:
    """The checkpoint to resume from: ``"latest"`` or ``"checkpoint-N"``; None when there is none."""
    found = list_checkpoints(output_dir)
    if which == "latest":
        return found[-1] if found else None
    path = output_dir / "checkpoints" / which
    if not path.is_dir():
        names = ", ".join(p.name for p in found) or "none"
        raise FileNotFoundError(f"No checkpoint {which!r} in {output_dir / 'checkpoints'} (found: {names}).")
    return path


def save_checkpoint(accelerator, output_dir: Path, step: int, total_limit: int) -> Path:
    """Save the full training state (weights, optimizer, LR schedule, EMA, RNG), keeping ``total_limit``."""
    if accelerator.is_main_process and total_limit > 0:
        for old in list_checkpoints(output_dir)[
            : max(0, len(list_checkpoints(output_dir)) - total_limit + 1)
        ]:
            shutil.rmtree(old)
    accelerator.wait_for_everyone()
    path = output_dir / "checkpoints" / f"checkpoint-{step}"
    accelerator.save_state(str(path))
    return path


def resume_state(accelerator, output_dir: Path, resume: str) -> tuple[int, Path | None]:
    """Load the checkpoint ``resume`` names (``"latest"``, ``"checkpoint-N"`` or ``""``).

    Returns the step to start at and the checkpoint loaded (None when starting from step 0).

    The checkpoint restores weights, optimizer, LR schedule, EMA and RNG; the CSV log is cut to match.
    """
    first_step = 0
    checkpoint = find_checkpoint(output_dir, resume) if resume else None
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        first_step = int(checkpoint.name.split("-")[-1])
        accelerator.print(f"Resuming from {checkpoint.name} at step {first_step}.")
    elif not resume and list_checkpoints(output_dir):  # an interrupted run of this same configuration
        accelerator.print(
            f"{display_path(output_dir)} has checkpoints from an interrupted run of this configuration; starting again "
            "from step 0. Set resume_from_checkpoint: latest to continue from the last one instead."
        )
    elif resume == "latest":
        accelerator.print(f"No checkpoint in {display_path(output_dir / 'checkpoints')} yet; starting from step 0.")
    if accelerator.is_main_process:
        trim_log(output_dir / LOG_FILE, first_step)
    return first_step, checkpoint


def make_accelerator(config: TrainConfig, output_dir: Path):
    """An ``Accelerator`` for this run (fresh in a single process, so a notebook can switch precision)."""
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState
    from accelerate.utils import ProjectConfiguration

    from .optim import check_mixed_precision

    check_mixed_precision(config.mixed_precision)
    if AcceleratorState._shared_state and AcceleratorState().num_processes == 1:
        AcceleratorState._reset_state()  # a notebook may train several times with different precisions
    import os

    # Several processes without CUDA (torchrun / accelerate launch on CPUs): accelerate then uses gloo.
    cpu_processes = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(
        cpu=cpu_processes,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        project_config=ProjectConfiguration(project_dir=str(output_dir)),
    )


def class_image_spec(config: TrainConfig):
    """The class-image settings implied by a training config."""
    from .class_images import ClassImageSpec
    from .models import model_fingerprint

    return ClassImageSpec(
        model=config.pretrained_model_name_or_path,
        model_fingerprint=model_fingerprint(config.pretrained_model_name_or_path),
        prompt=config.class_prompt,
        scheduler=config.class_scheduler,
        num_inference_steps=config.class_inference_steps,
        seed=config.seed,
        resolution=config.resolution,
    )


def prepare_class_images(config: TrainConfig, accelerator) -> list:
    """Generate any missing class images on the main process; every process then loads them."""
    from .class_images import default_class_dir, generate_class_images
    from .data import load_images

    spec = class_image_spec(config)
    folder = Path(config.class_data_dir) if config.class_data_dir else default_class_dir(spec)
    if accelerator.is_main_process:
        generate_class_images(
            folder, spec, config.num_class_images, config.sample_batch_size, device=accelerator.device
        )
    if torch.cuda.is_available():
        torch.cuda.empty_cache()  # the sampling pipeline is gone; give its memory back before training
    accelerator.wait_for_everyone()
    return load_images(folder, config.resolution, config.center_crop)[: config.num_class_images]


def validation_images(
    components: dict, prompts: list[str], seeds: list[int], steps: int, resolution: int, accelerator
):
    """A grid of one row per prompt and one column per seed, sampled from the current weights."""
    from diffusers import StableDiffusionPipeline

    from .figures import image_grid
    from .sampling import generate, make_scheduler

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


def environment_record(accelerator) -> dict:
    """Library versions and the device, for the run record."""
    import platform

    import accelerate
    import diffusers
    import transformers

    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }
    from importlib.metadata import PackageNotFoundError, version

    try:
        versions["bitsandbytes"] = version("bitsandbytes")
    except PackageNotFoundError:
        versions["bitsandbytes"] = None
    return {
        "versions": versions,
        "device": str(device),
        "device_name": name,
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
    }


class LossLogger:
    """Per-step CSV log (and TensorBoard when it is installed), written by the main process only."""

    def __init__(self, output_dir: Path, active: bool):
        self.path = output_dir / LOG_FILE
        self.active = active
        self.tb = None
        if not active:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self.file = open(self.path, "a", newline="")  # noqa: SIM115 (kept open for the whole run)
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(LOG_COLUMNS)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(output_dir / "logs" / "tensorboard"))
        except ImportError:
            pass

    def log(self, step: int, values: dict[str, float]) -> None:
        """Append one row (``prior_loss`` may be None)."""
        if not self.active:
            return
        self.writer.writerow(
            [step] + ["" if values.get(k) is None else f"{values[k]:.6g}" for k in LOG_COLUMNS[1:]]
        )
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                if v is not None:
                    self.tb.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        """Flush and close the files."""
        if self.active:
            self.file.close()
            if self.tb is not None:
                self.tb.close()


NON_FINITE_HELP = (
    "The loss became {value} at step {step}; training stopped. Likely causes: a learning rate far too high "
    "(the study used 1e-6 to 5e-6 at full scale; lower it), fp16 overflow (try mixed_precision='bf16' on "
    "an Ampere GPU, or 'no'), trainable weights loaded in float16 (load the model in float32), or a broken "
    "image in instance_data_dir / class_data_dir. The last checkpoint (if any) is in {checkpoints}."
)


# ------------------------------------------------------------------------------------------------- the loop


def train_dreambooth(
    config: TrainConfig, stop_after_steps: int | None = None, progress: bool = True, keep_models: bool = False
) -> RunResult:
    """Fine-tune Stable Diffusion on a subject with DreamBooth; reuse a finished run with the same config.

    Args:
        config: the run's settings (see :class:`helpers.config.TrainConfig`).
        stop_after_steps: stop early as if interrupted (to demonstrate and test resuming).
        progress: show a progress bar.
        keep_models: return the trained models in ``RunResult.models`` (on every process).
    """
    from diffusers.optimization import get_scheduler
    from diffusers.training_utils import EMAModel, cast_training_params
    from tqdm.auto import tqdm

    from .data import load_images
    from .dataset import DreamBoothDataset
    from .models import load_components
    from .optim import enable_gradient_checkpointing, make_optimizer, peak_memory_bytes, weight_dtype_for

    output_dir, run_hash = resolve_output_dir(config), config_hash(config)
    status = run_status(output_dir, run_hash)
    if status == "done":  # a notebook re-run: the same configuration already finished here
        print(
            f"Reusing the finished run in {display_path(output_dir)} (same configuration, hash {run_hash}); not retraining."
        )
        return RunResult(
            output_dir,
            read_log(output_dir / LOG_FILE),
            True,
            config,
            json.loads((output_dir / RECORD_NAME).read_text()),
        )
    if status == "other":
        raise RunExistsError(
            f"{output_dir} holds another run (a different configuration or files the kit did not "
            "write). Leave output_dir empty to get a folder named after this configuration, choose a "
            "new folder, or delete it."
        )
    accelerator = make_accelerator(config, output_dir)
    start_time, weight_dtype = time.time(), weight_dtype_for(config.mixed_precision)
    if accelerator.is_main_process:
        save_config(config, output_dir / CONFIG_NAME)

    # Data: subject photos and (prior preservation) class images made by the base model itself.
    class_images = prepare_class_images(config, accelerator) if config.with_prior_preservation else None
    instance_images = load_images(config.instance_data_dir, config.resolution, config.center_crop)
    models = load_components(config.pretrained_model_name_or_path)
    unet, text_encoder, vae, noise_scheduler = (
        models[k] for k in ("unet", "text_encoder", "vae", "noise_scheduler")
    )
    dataset = DreamBoothDataset(
        instance_images,
        config.instance_prompt,
        models["tokenizer"],
        class_images,
        config.class_prompt if class_images else None,
    )

    # Models: only what is trained needs gradients; frozen parts run in half precision when it is on.
    vae.requires_grad_(False).to(accelerator.device, dtype=weight_dtype)
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
    cached_embeddings = None
    if config.cache_text_embeddings and not config.train_text_encoder:  # a frozen encoder: each prompt once
        with torch.no_grad():
            ids = torch.stack(
                [dataset.instance_prompt_ids] + ([dataset.class_prompt_ids] if class_images else [])
            )
            cached_embeddings = text_encoder(ids.to(accelerator.device))[0]

    # Optimizer and LR schedule (stepped once per process per update, hence the num_processes factors).
    trained = [unet] + ([text_encoder] if config.train_text_encoder else [])
    cast_training_params(
        trained, dtype=torch.float32
    )  # trainable weights stay fp32 under fp16 (no unscale error)
    world = accelerator.num_processes
    lr = config.learning_rate * (
        config.gradient_accumulation_steps * config.train_batch_size * world if config.scale_lr else 1
    )
    params = [p for m in trained for p in m.parameters()]
    optimizer = make_optimizer(
        params,
        lr,
        config.use_8bit_adam,
        (config.adam_beta1, config.adam_beta2),
        config.adam_weight_decay,
        config.adam_epsilon,
        accelerator.device,
    )
    lr_scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps * world,
        num_training_steps=config.max_train_steps * world,
    )
    if config.train_text_encoder:
        unet, text_encoder, optimizer, lr_scheduler = accelerator.prepare(
            unet, text_encoder, optimizer, lr_scheduler
        )
    else:
        unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    trained = [unet] + ([text_encoder] if config.train_text_encoder else [])  # the wrapped (DDP) models
    ema_unet = ema_text_encoder = None
    if config.use_ema:  # an average of every trained model, checkpointed with the run
        raw = accelerator.unwrap_model(unet)
        ema_unet = EMAModel(
            raw.parameters(), decay=config.ema_decay, model_cls=type(raw), model_config=raw.config
        )
        ema_unet.to(accelerator.device)
        accelerator.register_for_checkpointing(ema_unet)
        if config.train_text_encoder:
            ema_text_encoder = EMAModel(accelerator.unwrap_model(text_encoder).parameters(), decay=config.ema_decay)
            ema_text_encoder.to(accelerator.device)
            accelerator.register_for_checkpointing(ema_text_encoder)

    first_step, checkpoint = resume_state(accelerator, output_dir, config.resume_from_checkpoint)
    logger = LossLogger(output_dir, accelerator.is_main_process)
    last_step = min(config.max_train_steps, stop_after_steps or config.max_train_steps)
    bar = tqdm(
        range(first_step, last_step), desc="training", disable=not (progress and accelerator.is_main_process)
    )
    step_seconds, tick = [], time.perf_counter()

    accum, rank = config.gradient_accumulation_steps, accelerator.process_index
    for step in bar:  # one iteration = one optimizer update (accum micro-batches per process)
        totals = torch.zeros(3, device=accelerator.device)  # loss, instance and prior loss, summed
        for micro in range(accum):
            with accelerator.accumulate(*trained):  # no gradient sync across GPUs until the last micro-step
                g = step_generator(config.seed, step, micro, rank)  # all of this micro-step's randomness
                batch = make_batch(dataset, config, (step * accum + micro) * world + rank, g)
                hidden = cached_hidden_states(cached_embeddings, batch)  # None: the text encoder runs
                parts = training_step(
                    unet, text_encoder, vae, noise_scheduler, batch, g, config.prior_loss_weight, hidden
                )
                accelerator.backward(parts.loss)  # scaled for fp16; gradients are averaged across GPUs
                if accelerator.sync_gradients:  # last micro-step: clip the accumulated gradient
                    accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()  # skipped by accelerate on all but the last micro-step
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)  # frees the gradient memory until the next backward
            totals += parts.stacked()
        if ema_unet is not None:
            ema_unet.step(accelerator.unwrap_model(unet).parameters())
        if ema_text_encoder is not None:
            ema_text_encoder.step(accelerator.unwrap_model(text_encoder).parameters())
        values = (accelerator.reduce(totals, "mean") if world > 1 else totals) / accum  # mean over GPUs
        loss, instance_loss, prior_loss = values.tolist()  # one device sync per step, for the log
        if not math.isfinite(loss):  # every rank sees the same reduced value, so all stop together
            logger.close()
            raise NonFiniteLossError(
                NON_FINITE_HELP.format(value=loss, step=step + 1, checkpoints=output_dir / "checkpoints")
            )
        logger.log(
            step + 1,
            {
                "loss": loss,
                "instance_loss": instance_loss,
                "prior_loss": prior_loss if class_images else None,
                "lr": lr_scheduler.get_last_lr()[0],
            },
        )
        bar.set_postfix(loss=f"{loss:.4f}")
        if config.checkpointing_steps and (step + 1) % config.checkpointing_steps == 0:
            save_checkpoint(accelerator, output_dir, step + 1, config.checkpoints_total_limit)
        if (
            config.validation_prompts
            and config.validation_steps
            and (step + 1) % config.validation_steps == 0
        ):
            save_validation(
                config, output_dir, f"step-{step + 1:06d}", accelerator, unet, text_encoder, models
            )
        step_seconds.append(time.perf_counter() - tick)  # the whole step, logging and checkpoints included
        tick = time.perf_counter()
    logger.close()
    if last_step < config.max_train_steps:  # stopped early on purpose: the checkpoints let it resume
        accelerator.print(f"Stopped after step {last_step} of {config.max_train_steps} (stop_after_steps).")
        return RunResult(output_dir, read_log(logger.path), False, config, step_seconds=step_seconds)

    # Outputs: the pipeline (and EMA UNet), samples, and a record of how the run went.
    accelerator.wait_for_everyone()
    record = {}
    if accelerator.is_main_process:
        if config.validation_prompts:
            save_validation(config, output_dir, "final", accelerator, unet, text_encoder, models)
        save_pipeline_outputs(config, output_dir, accelerator, unet, text_encoder, ema_unet, models, ema_text_encoder)
        record = {
            "hash": run_hash,
            "seed": config.seed,
            "steps": config.max_train_steps,
            "optimizer": type(optimizer.optimizer).__name__,
            "wall_time_s": round(time.time() - start_time, 2),
            "median_step_s": round(sorted(step_seconds)[len(step_seconds) // 2], 4) if step_seconds else None,
            "peak_memory_bytes": peak_memory_bytes(accelerator.device),
            "resumed_from": checkpoint.name if checkpoint is not None else None,
            **environment_record(accelerator),
        }
        (output_dir / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
        (output_dir / DONE_NAME).write_text(json.dumps({"hash": run_hash}) + "\n")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    kept = (
        {
            "unet": accelerator.unwrap_model(unet),
            "text_encoder": accelerator.unwrap_model(text_encoder),
            "ema_unet": ema_unet,
            "ema_text_encoder": ema_text_encoder,
        }
        if keep_models
        else None
    )
    return RunResult(output_dir, read_log(logger.path), False, config, record, kept, step_seconds)


# ---------------------------------------------------------------------------------------------- outputs


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
    path = output_dir / "samples" / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    grid.save(path)
    return path


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

    from .models import resolve_model

    unet = accelerator.unwrap_model(unet)
    extra = {"text_encoder": accelerator.unwrap_model(text_encoder)} if config.train_text_encoder else {}
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


def load_trained_pipeline(
    output_dir: str | Path,
    ema: bool = False,
    torch_dtype: torch.dtype | None = None,
    device: str | None = None,
):
    """Load a finished run's pipeline; ``ema=True`` swaps in the EMA weights saved beside the raw ones."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel

    from .models import dtype_kwargs, load_pipeline

    output_dir = Path(output_dir)
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


def train_dreambooth_on_gpus(config: TrainConfig, num_processes: int = 2) -> None:
    """Run :func:`train_dreambooth` on several GPUs from a notebook (Kaggle's 2x T4) with accelerate.

    Call it before anything in the notebook touches CUDA; load the result afterwards from the output folder.
    """
    from accelerate import notebook_launcher

    notebook_launcher(train_dreambooth, (config,), num_processes=num_processes)
