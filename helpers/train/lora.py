"""LoRA DreamBooth: small adapters on the attention projections instead of every weight.

A LoRA run trains, beside each frozen projection ``W`` of the UNet's attention (and of the text
encoder's, with ``train_text_encoder``), two thin matrices ``B @ A`` of rank ``rank``; the layer
computes ``W x + (alpha / rank) B A x``. ``B`` starts at zero, so step 0 is the base model.

The finished run folder holds the adapter in diffusers' format (``pytorch_lora_weights.safetensors``,
what ``pipe.load_lora_weights(folder)`` reads) and ``base_model.json``, which names the base model
the adapter belongs to; never a copy of the base model. Checkpoints hold the adapter too (plus the
optimizer and RNG state), not the frozen weights.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from helpers.base.storage import LORA_FILE
from helpers.errors import LearnerError
from helpers.train.config import TrainConfig, effective_lora_alpha
from helpers.train.models import load_pipeline, model_fingerprint, warn_if_base_changed

BASE_FILE = "base_model.json"  # the base model a LoRA run's adapter belongs to
UNET_TARGETS = ["to_k", "to_q", "to_v", "to_out.0"]  # the UNet's attention projections
TEXT_TARGETS = ["q_proj", "k_proj", "v_proj", "out_proj"]  # CLIP's attention projections


class LoraRunError(LearnerError, FileNotFoundError):
    """A LoRA run folder lacks what loading it needs."""


def lora_config(config: TrainConfig, targets: list[str]):
    """The peft ``LoraConfig`` of a run for one model (``targets``: the module names to adapt)."""
    from peft import LoraConfig

    return LoraConfig(
        r=config.rank,
        lora_alpha=effective_lora_alpha(config),
        init_lora_weights="gaussian",  # A random, B zero: the adapter starts as no change
        target_modules=targets,
    )


def add_adapters(config: TrainConfig, unet: torch.nn.Module, text_encoder: torch.nn.Module) -> None:
    """Freeze both models and add the run's LoRA adapters (drawn from ``config.seed``), trainable in fp32.

    The text encoder gets adapters only with ``train_text_encoder``.
    """
    from peft import inject_adapter_in_model

    unet.requires_grad_(False)
    text_encoder.requires_grad_(False)
    with torch.random.fork_rng(devices=[]):  # the same adapter start for the same seed, global RNG untouched
        torch.manual_seed(config.seed)
        unet.add_adapter(lora_config(config, UNET_TARGETS))
        if config.train_text_encoder:  # transformers' add_adapter wants a newer peft; peft's own call works
            inject_adapter_in_model(lora_config(config, TEXT_TARGETS), text_encoder, adapter_name="default")
    for model in (unet, text_encoder):
        for name, param in model.named_parameters():
            param.requires_grad_("lora_" in name)


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    """The parameters that get gradients (a LoRA run: only the adapter's)."""
    return [p for p in model.parameters() if p.requires_grad]


def adapter_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A model's adapter weights (``<module>.lora_A.weight`` ...), detached, without the base weights."""
    from peft.utils import get_peft_model_state_dict

    return {k: v.detach().contiguous() for k, v in get_peft_model_state_dict(model).items()}


def save_adapter(folder: str | Path, config: TrainConfig, unet: torch.nn.Module, text_encoder=None) -> Path:
    """Write ``pytorch_lora_weights.safetensors`` with diffusers' ``save_lora_weights`` (alpha in its metadata).

    Args:
        text_encoder: the adapted text encoder, or None when only the UNet was trained.
    Returns:
        The adapter file.
    """
    from diffusers import StableDiffusionPipeline

    extra = {}
    if text_encoder is not None:
        extra = {
            "text_encoder_lora_layers": adapter_state(text_encoder),
            "text_encoder_lora_adapter_metadata": lora_config(config, TEXT_TARGETS).to_dict(),
        }
    StableDiffusionPipeline.save_lora_weights(
        str(folder),
        unet_lora_layers=adapter_state(unet),
        unet_lora_adapter_metadata=lora_config(config, UNET_TARGETS).to_dict(),
        safe_serialization=True,
        **extra,
    )
    return Path(folder) / LORA_FILE


def load_adapter_weights(folder: str | Path, unet: torch.nn.Module, text_encoder=None) -> None:
    """Put the adapter saved in ``folder`` back into models that carry the same adapters (resume)."""
    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    state = load_file(str(Path(folder) / LORA_FILE))
    for prefix, model in (("unet.", unet), ("text_encoder.", text_encoder)):
        part = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if model is None or not part:
            continue
        result = set_peft_model_state_dict(model, part, adapter_name="default")
        if getattr(result, "unexpected_keys", None):
            raise LoraRunError(f"{folder}: adapter weights {result.unexpected_keys[:3]} fit no module of the model.")


def register_checkpoint_hooks(accelerator, config: TrainConfig, unet, text_encoder=None) -> None:
    """Make accelerate's checkpoints hold the adapter only (the frozen base weights are the base model's)."""

    def save(models: list, weights: list, output_dir: str) -> None:
        if accelerator.is_main_process:
            save_adapter(output_dir, config, accelerator.unwrap_model(unet),
                         accelerator.unwrap_model(text_encoder) if text_encoder is not None else None)
        weights.clear()  # nothing else of the models is written

    def load(models: list, input_dir: str) -> None:
        load_adapter_weights(input_dir, accelerator.unwrap_model(unet),
                             accelerator.unwrap_model(text_encoder) if text_encoder is not None else None)
        models.clear()  # accelerate then loads nothing more into them

    accelerator.register_save_state_pre_hook(save)
    accelerator.register_load_state_pre_hook(load)


def write_base_reference(output_dir: str | Path, config: TrainConfig) -> Path:
    """``base_model.json``: the base model an adapter belongs to, its weights' fingerprint and the LoRA settings."""
    path = Path(output_dir) / BASE_FILE
    facts = {
        "base_model": config.pretrained_model_name_or_path,
        "base_model_fingerprint": model_fingerprint(config.pretrained_model_name_or_path),
        "rank": config.rank,
        "lora_alpha": effective_lora_alpha(config),
        "text_encoder": config.train_text_encoder,
    }
    path.write_text(json.dumps(facts, indent=2) + "\n")
    return path


def is_lora_run(output_dir: str | Path) -> bool:
    """True for a LoRA run folder (an adapter beside a reference to its base model)."""
    return (Path(output_dir) / LORA_FILE).is_file()


def load_lora_run(output_dir: str | Path, torch_dtype: torch.dtype | None = None):
    """The base model (through the kit's loader) with a LoRA run's adapter loaded on top."""
    output_dir = Path(output_dir)
    reference = output_dir / BASE_FILE
    if not reference.is_file():
        raise LoraRunError(
            f"{output_dir} holds an adapter but no {BASE_FILE} naming its base model. Load it yourself: "
            "pipe = load_pipeline(BASE_MODEL); pipe.load_lora_weights(RUN_FOLDER)."
        )
    facts = json.loads(reference.read_text())
    warn_if_base_changed(facts)
    pipe = load_pipeline(facts["base_model"], torch_dtype=torch_dtype)
    pipe.load_lora_weights(str(output_dir))
    return pipe
