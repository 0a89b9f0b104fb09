"""What a training configuration costs: memory and time per step, measured on this machine (notebooks 04 and 06).

Training memory has four parts, and each memory trick of the study shrinks a different one:

=================  ==============================================  ===============================
part               what it is                                      shrunk by
=================  ==============================================  ===============================
weights            every model the step needs on the device        fp16 (frozen parts), caching
gradients          one value per trained weight                    training fewer weights
optimizer state    AdamW keeps two moments per trained weight      8-bit AdamW
activations        what the forward pass keeps for backward        checkpointing, accumulation, fp16
=================  ==============================================  ===============================

:func:`measure_training_step` runs a few real optimizer steps of a
:class:`~helpers.train.config.TrainConfig` on random data of the right shapes (memory and
time depend on shapes, not on pixels) and counts each part from the tensors themselves,
so the numbers are the same on a CPU and a GPU; on a GPU the allocator's true peak is
reported beside them.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Self

import torch

from helpers.base.home import GIB
from helpers.train.batches import tokenize
from helpers.train.dreambooth import step_generator, training_step
from helpers.train.models import free_memory, load_components
from helpers.train.optim import (
    PrecisionError,
    enable_gradient_checkpointing,
    make_optimizer,
    peak_memory_bytes,
    weight_dtype_for,
)
from helpers.train.runs import make_accelerator

# Parameter counts of Stable Diffusion v1-4 / v1-5 (the same architecture), for estimates without the download.
SD_V1_PARAMS = {"unet": 859_520_964, "text_encoder": 123_060_480, "vae": 83_653_863}


@dataclass
class StepCost:
    """Memory (bytes) and time of one optimizer step of a configuration; ``note`` says why a row was skipped."""

    label: str
    seconds_per_step: float = math.nan
    weights_bytes: int = 0
    gradients_bytes: int = 0
    optimizer_bytes: int = 0
    activations_bytes: int = 0
    peak_bytes: int | None = None  # the CUDA allocator's peak; None on the CPU
    note: str = ""

    @property
    def total_bytes(self) -> int:
        """Weights + gradients + optimizer state + activations."""
        return self.weights_bytes + self.gradients_bytes + self.optimizer_bytes + self.activations_bytes

    @property
    def skipped(self) -> bool:
        """True when the configuration could not run here (see ``note``)."""
        return bool(self.note) and math.isnan(self.seconds_per_step)

    def to_dict(self) -> dict:
        """Plain dict of the fields plus ``total_bytes``."""
        return {**asdict(self), "total_bytes": self.total_bytes}


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes held by ``tensors``, each storage counted once."""
    storages = {}
    for t in tensors:
        if torch.is_tensor(t) and t.device.type != "meta":
            storages[(t.device, t.untyped_storage().data_ptr())] = t.untyped_storage().nbytes()
    return sum(storages.values())


def module_bytes(*modules: torch.nn.Module) -> int:
    """Bytes of the parameters and buffers of ``modules``."""
    return tensor_bytes(t for m in modules for t in [*m.parameters(), *m.buffers()])


def gradient_bytes(params: Iterable[torch.nn.Parameter]) -> int:
    """Bytes of the gradients currently held by ``params``."""
    return tensor_bytes(p.grad for p in params if p.grad is not None)


def optimizer_state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of an optimizer's state (Adam's moments: 8 bytes per weight in fp32, about 2 in 8-bit)."""
    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
    return tensor_bytes(v for state in optimizer.state.values() for v in state.values())


class SavedTensorMeter:
    """Count the bytes the forward pass saves for backward (the activations), parameters excluded.

    Use as ``with SavedTensorMeter(params) as meter: loss = model(x)``; then read ``meter.bytes``.
    """

    def __init__(self, params: Iterable[torch.Tensor] = ()):
        self.skip = {t.untyped_storage().data_ptr() for t in params}
        self.storages: dict[int, int] = {}
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)

    def _pack(self, t: torch.Tensor) -> torch.Tensor:
        if t.device.type != "meta":
            ptr = t.untyped_storage().data_ptr()
            if ptr not in self.skip:
                self.storages[ptr] = t.untyped_storage().nbytes()
        return t

    @property
    def bytes(self) -> int:
        """Bytes saved so far."""
        return sum(self.storages.values())

    def __enter__(self) -> Self:
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._hooks.__exit__(*exc)


def synthetic_batch(config, tokenizer, vae, rows: int, cached: bool) -> dict:
    """A batch of ``rows`` random images (or cached latent parameters) with the instance prompt's ids."""
    if cached:  # (mean, log-variance) per latent channel, as the latent cache stores them
        side = config.resolution // 2 ** (len(vae.config.block_out_channels) - 1)
        images = {"latent_params": torch.randn(rows, 2 * vae.config.latent_channels, side, side)}
    else:
        images = {"pixel_values": torch.rand(rows, 3, config.resolution, config.resolution) * 2 - 1}
    ids = tokenize(tokenizer, config.instance_prompt).repeat(rows, 1)
    return {**images, "input_ids": ids, "num_instance": rows // 2 if config.with_prior_preservation else rows}


def _prepare_models(config, accelerator) -> dict:
    """Load the models and set them up as :func:`helpers.train.dreambooth.train_dreambooth` does."""
    from diffusers.training_utils import cast_training_params

    m = load_components(config.pretrained_model_name_or_path)
    dtype, device = weight_dtype_for(config.mixed_precision), accelerator.device
    # With cached latents the VAE is not needed during training: it stays off the device.
    m["vae"].requires_grad_(False).to("cpu" if config.cache_latents else device, dtype=dtype)
    m["unet"].requires_grad_(True).train()
    m["text_encoder"].requires_grad_(config.train_text_encoder).train(config.train_text_encoder)
    if not config.train_text_encoder:
        m["text_encoder"].to(device, dtype=dtype)
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(m["unet"], m["text_encoder"] if config.train_text_encoder else None)
    m["trained"] = [m["unet"]] + ([m["text_encoder"]] if config.train_text_encoder else [])
    cast_training_params(m["trained"], dtype=torch.float32)  # trained weights stay fp32, as in training
    return m


def _prepare_optimizing(config, accelerator, m: dict) -> tuple[list, torch.optim.Optimizer, list]:
    """The trained models and their optimizer passed through ``accelerator``; returns (models, optimizer, parameters)."""
    params = [p for model in m["trained"] for p in model.parameters()]
    optimizer = make_optimizer(params, config.learning_rate, config.use_8bit_adam, device=accelerator.device)
    prepared = accelerator.prepare(*m["trained"], optimizer)
    return list(prepared[:-1]), prepared[-1], params


def _cached_hidden(config, text_encoder, batch: dict, device: torch.device) -> torch.Tensor | None:
    """The prompt's text embeddings when the config caches them (frozen text encoder), else None."""
    if not (config.cache_text_embeddings and not config.train_text_encoder):
        return None
    with torch.no_grad():
        return text_encoder(batch["input_ids"].to(device))[0]


def _sync(device: torch.device) -> None:
    """Wait for the GPU's queued work (nothing to wait for on other devices)."""
    if device.type == "cuda":
        torch.cuda.synchronize()


def _timed_steps(
    config, accelerator, trained: list, optimizer: torch.optim.Optimizer, params: list,
    forward: Callable[[torch.Generator], object], warmup: int, steps: int,
) -> tuple[float, int, int]:
    """Run ``warmup + steps`` optimizer steps; returns seconds per measured step, activation and gradient bytes."""
    activations = grads = 0
    for step in range(warmup + steps):
        if step == warmup:
            _sync(accelerator.device)
            start = time.perf_counter()
        for micro in range(config.gradient_accumulation_steps):
            with accelerator.accumulate(*trained):
                with SavedTensorMeter(params) as meter:
                    parts = forward(step_generator(config.seed, step, micro))
                activations = max(activations, meter.bytes)
                accelerator.backward(parts.loss)
                if accelerator.sync_gradients:  # the accumulated gradient of the whole step
                    grads = max(grads, gradient_bytes(params))
                    accelerator.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
    _sync(accelerator.device)
    return (time.perf_counter() - start) / steps, activations, grads


def measure_training_step(config, steps: int = 2, warmup: int = 1, label: str = "") -> StepCost:
    """Run ``warmup + steps`` optimizer steps of ``config`` on random data and measure the last ``steps``.

    Args:
        config: a :class:`~helpers.train.config.TrainConfig`; batch size, resolution, precision, optimizer,
            checkpointing, accumulation, caching and ``train_text_encoder`` are what matter here.
        steps: measured optimizer steps (each of ``gradient_accumulation_steps`` micro-batches).
        warmup: steps run first and not timed (the first step allocates the optimizer state).
        label: the row's name in tables and plots.
    Returns:
        a :class:`StepCost`; raises :class:`helpers.train.optim.PrecisionError` for a precision this machine lacks.
    """
    if steps < 1:
        raise ValueError(f"steps={steps}: measure at least one optimizer step.")

    with tempfile.TemporaryDirectory() as tmp:
        accelerator = make_accelerator(config, Path(tmp))
    device = accelerator.device
    m = _prepare_models(config, accelerator)
    trained, optimizer, params = _prepare_optimizing(config, accelerator, m)
    unet, vae = trained[0], m["vae"]
    text_encoder = trained[1] if config.train_text_encoder else m["text_encoder"]
    rows = config.train_batch_size * (2 if config.with_prior_preservation else 1)
    batch = synthetic_batch(config, m["tokenizer"], vae, rows, config.cache_latents)
    hidden = _cached_hidden(config, text_encoder, batch, device)
    needed = [unet] + ([] if hidden is not None else [text_encoder]) + ([] if config.cache_latents else [vae])
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    forward = partial(training_step, unet, text_encoder, vae, m["noise_scheduler"], batch,
                      prior_loss_weight=config.prior_loss_weight, encoder_hidden_states=hidden)
    seconds, activations, grads = _timed_steps(config, accelerator, trained, optimizer, params, forward, warmup, steps)
    cost = StepCost(label or describe(config), seconds, module_bytes(*needed), grads,
                    optimizer_state_bytes(optimizer), activations,
                    peak_memory_bytes(device) if device.type == "cuda" else None)
    accelerator.free_memory()  # drops the accelerator's references to the models and the optimizer
    del m, trained, optimizer, unet, text_encoder, vae, params, forward, needed, batch, hidden
    free_memory()
    return cost


def describe(config) -> str:
    """A short label of the memory-related settings of a config, e.g. ``"fp16, 8-bit AdamW, checkpointing"``."""
    parts = ["fp32" if config.mixed_precision == "no" else config.mixed_precision,
             "8-bit AdamW" if config.use_8bit_adam else "AdamW"]
    if config.gradient_checkpointing:
        parts.append("checkpointing")
    if config.gradient_accumulation_steps > 1:
        parts.append(f"batch {config.train_batch_size} x {config.gradient_accumulation_steps} accumulated")
    if config.cache_latents:
        parts.append("cached latents")
    if config.train_text_encoder:
        parts.append("text encoder trained")
    return ", ".join(parts)


def measure_configurations(base, variants: dict[str, dict], steps: int = 2, warmup: int = 1,
                           progress: bool = True) -> list[StepCost]:
    """Measure ``base`` changed by each variant (``{label: {field: value}}``); rows that cannot run here say why."""
    from tqdm.auto import tqdm

    costs = []
    for label, changes in tqdm(variants.items(), desc="measuring", disable=not progress):
        try:
            costs.append(measure_training_step(base.replace(**changes), steps, warmup, label))
        except PrecisionError as err:
            costs.append(StepCost(label, note=f"not available here: {str(err).split('.')[0]}"))
        except torch.cuda.OutOfMemoryError:
            costs.append(StepCost(label, note="out of memory on this GPU"))
        free_memory()  # after the except block, so a failed run's tensors are released too
    return costs


def format_bytes(n: float | None) -> str:
    """``1536 -> "1.5 KiB"``; ``None`` -> ``"-"``."""
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def cost_table(costs: list[StepCost]) -> str:
    """The measurements as a fixed-width text table (a row per configuration)."""
    w = max([len(c.label) for c in costs] + [len("configuration")]) + 2
    head = f"{'configuration':<{w}}{'weights':>11}{'grads':>11}{'optimizer':>11}{'activations':>13}" \
           f"{'total':>11}{'GPU peak':>11}{'s/step':>9}"
    lines = [head, "-" * len(head)]
    for c in costs:
        if c.skipped:
            lines.append(f"{c.label:<{w}}{c.note}")
            continue
        cells = [format_bytes(v) for v in (c.weights_bytes, c.gradients_bytes, c.optimizer_bytes)]
        lines.append(f"{c.label:<{w}}{cells[0]:>11}{cells[1]:>11}{cells[2]:>11}{format_bytes(c.activations_bytes):>13}"
                     f"{format_bytes(c.total_bytes):>11}{format_bytes(c.peak_bytes):>11}{c.seconds_per_step:>9.3f}")
    return "\n".join(lines)


def plot_costs(costs: list[StepCost], title: str | None = None, budget_bytes: float | None = None):
    """Stacked bars of the four memory parts per configuration, seconds per step beside each; returns the figure.

    Args:
        costs: measured rows (skipped ones are left out) or estimates (``seconds_per_step=0``: no time shown).
        budget_bytes: draw a dashed line at this memory size, e.g. ``16e9`` for a 16 GB GPU.
    """
    import matplotlib.pyplot as plt

    rows = [c for c in costs if not c.skipped]
    scale = GIB if max((c.total_bytes for c in rows), default=0) > GIB else 1024**2
    unit = "GiB" if scale == GIB else "MiB"
    fig, ax = plt.subplots(figsize=(8, 0.45 * len(rows) + 1.2))
    left = [0.0] * len(rows)
    for part in ("weights", "gradients", "optimizer", "activations"):
        values = [getattr(c, f"{part}_bytes") / scale for c in rows]
        ax.barh([c.label for c in rows], values, left=left, label=part)
        left = [a + b for a, b in zip(left, values)]
    for y, (c, x) in enumerate(zip(rows, left)):
        if math.isfinite(c.seconds_per_step) and c.seconds_per_step > 0:  # estimates carry no time
            ax.text(x, y, f" {c.seconds_per_step:.2f} s/step", va="center", fontsize=8)
    if budget_bytes:
        ax.axvline(budget_bytes / scale, color="black", linestyle="--", linewidth=1)
        ax.text(budget_bytes / scale, -0.6, f" {budget_bytes / 1e9:.0f} GB", fontsize=8, va="bottom")
    ax.invert_yaxis()
    ax.set_xlabel(f"memory ({unit})")
    ax.set_xlim(0, max(left + [0]) * 1.3 or 1)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def static_memory_bytes(trained_params: int, frozen_params: int, mixed_precision: str = "no",
                        use_8bit_adam: bool = False) -> dict[str, int]:
    """Weights, gradients and optimizer state for a model size, without loading it (activations excluded).

    Trained weights and their gradients are fp32 (4 bytes each) whatever the precision; frozen
    weights take 2 bytes under fp16/bf16, else 4. AdamW keeps two fp32 moments (8 bytes per
    trained weight); 8-bit AdamW keeps two 8-bit moments (2 bytes).
    """
    frozen_size = 2 if mixed_precision in ("fp16", "bf16") else 4
    return {"weights": 4 * trained_params + frozen_size * frozen_params, "gradients": 4 * trained_params,
            "optimizer": (2 if use_8bit_adam else 8) * trained_params}


def sd_static_memory(train_text_encoder: bool = False, mixed_precision: str = "no",
                     use_8bit_adam: bool = False) -> dict[str, int]:
    """:func:`static_memory_bytes` for Stable Diffusion v1-4 (UNet, text encoder and VAE on the GPU)."""
    trained = SD_V1_PARAMS["unet"] + (SD_V1_PARAMS["text_encoder"] if train_text_encoder else 0)
    return static_memory_bytes(trained, sum(SD_V1_PARAMS.values()) - trained, mixed_precision, use_8bit_adam)
