"""Textual inversion: learn one new word for the subject, leaving every weight of the model unchanged.

A placeholder token (``<sks-toy>``) is added to the tokenizer, its embedding row is
initialised from a related word (``toy``), and only that row is trained. The result is a
tiny embedding file that diffusers' ``pipe.load_textual_inversion`` loads, plus a full
pipeline folder that DreamBooth can start from (the study: textual inversion for 2000
steps, then DreamBooth for 500 steps at 1e-6).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .config import ConfigError, ConfigMixin, config_hash, resolve_output_dir, save_config
from .paths import display_path
from .training import (
    CONFIG_NAME,
    DONE_NAME,
    LOG_FILE,
    RECORD_NAME,
    LossLogger,
    NonFiniteLossError,
    RunExistsError,
    make_accelerator,
    read_log,
    resume_state,
    run_status,
    save_checkpoint,
    step_generator,
    training_step,
)

EMBEDDING_NAME = "learned_embeds.safetensors"

# Prompt templates for an object; each training image gets one at random, with the placeholder in it.
OBJECT_TEMPLATES = [
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a good photo of a {}",
    "a photo of one {}",
    "a photo of the small {}",
    "a photo of the large {}",
    "a blurry photo of the {}",
]
STYLE_TEMPLATES = [
    "a painting in the style of {}",
    "a rendering in the style of {}",
    "a picture in the style of {}",
    "a cropped painting in the style of {}",
    "a close-up painting in the style of {}",
]


@dataclass
class TextualInversionConfig(ConfigMixin):
    """Settings named as in diffusers' ``textual_inversion.py``; defaults are the kit's full-scale values."""

    pretrained_model_name_or_path: str = "CompVis/stable-diffusion-v1-4"
    train_data_dir: str = ""
    placeholder_token: str = "<sks>"
    initializer_token: str = "dog"
    learnable_property: str = "object"  # "object" or "style": which prompt templates are used
    num_vectors: int = 1
    resolution: int = 512
    center_crop: bool = True
    train_batch_size: int = 4
    max_train_steps: int = 2000  # the study's textual inversion length
    learning_rate: float = 5e-4
    scale_lr: bool = False
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_weight_decay: float = 1e-2
    mixed_precision: str = "no"
    gradient_accumulation_steps: int = 1
    seed: int = 0
    validation_prompts: list[str] = field(default_factory=list)
    validation_seeds: list[int] = field(default_factory=lambda: [0, 1])
    validation_inference_steps: int = 25
    checkpointing_steps: int = 500  # 0: no checkpoints
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: str = ""  # "latest" or "checkpoint-N": continue an interrupted run
    output_dir: str = ""  # empty: runs/textual_inversion/<token>-<hash>

    def __post_init__(self) -> None:
        """Check values a learner may get wrong."""
        if self.learnable_property not in ("object", "style"):
            raise ConfigError(f"learnable_property={self.learnable_property!r}: use 'object' or 'style'.")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ConfigError(f"mixed_precision={self.mixed_precision!r}: use 'no', 'fp16' or 'bf16'.")
        if self.num_vectors < 1 or self.max_train_steps < 1 or self.train_batch_size < 1:
            raise ConfigError("num_vectors, max_train_steps and train_batch_size must be at least 1.")


@dataclass
class TextualInversionResult:
    """A textual inversion run: the pipeline folder (base model + new token) and the embedding file."""

    output_dir: Path
    embedding_path: Path
    placeholder_tokens: list[str]
    losses: dict[str, list[float]]
    reused: bool
    record: dict = field(default_factory=dict)


def placeholder_tokens(token: str, num_vectors: int) -> list[str]:
    """``"<sks>"`` with 3 vectors -> ``["<sks>", "<sks>_1", "<sks>_2"]`` (diffusers' naming)."""
    return [token] + [f"{token}_{i}" for i in range(1, num_vectors)]


def add_placeholder_token(
    tokenizer, text_encoder, token: str, initializer_token: str, num_vectors: int = 1
) -> list[int]:
    """Add the placeholder token(s) and initialise their embeddings from ``initializer_token``.

    Returns:
        the new token ids.
    """
    init_ids = tokenizer.encode(initializer_token, add_special_tokens=False)
    if len(init_ids) != 1:
        raise ConfigError(
            f"initializer_token={initializer_token!r} is {len(init_ids)} tokens for CLIP; choose one common "
            "word (e.g. 'dog', 'toy', 'cat') that describes the subject."
        )
    tokens = placeholder_tokens(token, num_vectors)
    added = tokenizer.add_tokens(tokens)
    if added != num_vectors:
        raise ConfigError(
            f"The tokenizer already has {token!r}; choose a new placeholder_token, e.g. '<my-toy>'."
        )
    ids = tokenizer.convert_tokens_to_ids(tokens)
    text_encoder.resize_token_embeddings(len(tokenizer))
    with torch.no_grad():
        weight = text_encoder.get_input_embeddings().weight
        weight[ids] = weight[init_ids[0]].clone()
    return ids


def changed_rows(before: torch.Tensor, after: torch.Tensor) -> list[int]:
    """Indices of embedding rows that differ between two embedding matrices."""
    return torch.nonzero((before != after).any(dim=1)).flatten().tolist()


def save_embedding(text_encoder, tokens: list[str], ids: list[int], path: Path) -> Path:
    """Write the learned rows in diffusers' format (``{token: (num_vectors, hidden)}``, safetensors)."""
    from safetensors.torch import save_file

    rows = text_encoder.get_input_embeddings().weight[ids].detach().float().cpu().contiguous()
    save_file({tokens[0]: rows}, str(path))
    return path


def train_textual_inversion(
    config: TextualInversionConfig, progress: bool = True, stop_after_steps: int | None = None
) -> TextualInversionResult:
    """Learn the placeholder token's embedding on the subject photos; reuse a finished identical run.

    Every other weight (all other embedding rows included) stays bit-identical; this is checked
    at the end and recorded in ``run.json``. With ``resume_from_checkpoint: latest`` an interrupted
    run continues from its last checkpoint and ends exactly where an uninterrupted one would.

    Args:
        stop_after_steps: stop early as if interrupted (to demonstrate and test resuming).
    """
    from diffusers import StableDiffusionPipeline
    from diffusers.optimization import get_scheduler
    from tqdm.auto import tqdm

    from .data import load_images
    from .dataset import DreamBoothDataset, batch_indices, tokenize
    from .models import load_components, resolve_model
    from .optim import weight_dtype_for

    output_dir, run_hash = resolve_output_dir(config, "textual_inversion"), config_hash(config)
    tokens = placeholder_tokens(config.placeholder_token, config.num_vectors)
    status = run_status(output_dir, run_hash, TextualInversionConfig)
    if status == "done":
        print(
            f"Reusing the finished textual inversion in {display_path(output_dir)} (same configuration, hash {run_hash})."
        )
        return TextualInversionResult(
            output_dir,
            output_dir / EMBEDDING_NAME,
            tokens,
            read_log(output_dir / LOG_FILE),
            True,
            json.loads((output_dir / RECORD_NAME).read_text()),
        )
    if status == "other":
        raise RunExistsError(
            f"{output_dir} holds another run; leave output_dir empty or choose a new folder."
        )
    accelerator = make_accelerator(config, output_dir)
    start_time, weight_dtype = time.time(), weight_dtype_for(config.mixed_precision)
    if accelerator.is_main_process:
        save_config(config, output_dir / CONFIG_NAME)

    models = load_components(config.pretrained_model_name_or_path)
    tokenizer, text_encoder, vae, unet = (models[k] for k in ("tokenizer", "text_encoder", "vae", "unet"))
    ids = add_placeholder_token(
        tokenizer, text_encoder, config.placeholder_token, config.initializer_token, config.num_vectors
    )
    embeddings = text_encoder.get_input_embeddings()
    original = embeddings.weight.detach().clone()  # to restore the frozen rows and check them at the end
    frozen = torch.ones(len(tokenizer), dtype=torch.bool)
    frozen[ids] = False
    vae.requires_grad_(False).to(accelerator.device, dtype=weight_dtype)
    unet.requires_grad_(False).to(accelerator.device, dtype=weight_dtype)
    text_encoder.requires_grad_(False)
    embeddings.weight.requires_grad_(True)  # the only trained tensor; its other rows are reset every step

    images = load_images(config.train_data_dir, config.resolution, config.center_crop)
    dataset = DreamBoothDataset(images, config.placeholder_token, tokenizer)
    dataset.cache_latents(lambda x: vae.encode(x.to(vae.device, vae.dtype)).latent_dist.parameters)
    templates = OBJECT_TEMPLATES if config.learnable_property == "object" else STYLE_TEMPLATES
    word = " ".join(tokens)
    prompt_ids = torch.cat([tokenize(tokenizer, t.format(word)) for t in templates])

    optimizer = torch.optim.AdamW(
        [embeddings.weight],
        lr=config.learning_rate
        * (
            config.train_batch_size * config.gradient_accumulation_steps * accelerator.num_processes
            if config.scale_lr
            else 1
        ),
        weight_decay=config.adam_weight_decay,
    )
    lr_scheduler = get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps * accelerator.num_processes,
        num_training_steps=config.max_train_steps * accelerator.num_processes,
    )
    text_encoder, optimizer, lr_scheduler = accelerator.prepare(text_encoder, optimizer, lr_scheduler)
    first_step, _ = resume_state(accelerator, output_dir, config.resume_from_checkpoint)
    logger = LossLogger(output_dir, accelerator.is_main_process)
    world, rank = accelerator.num_processes, accelerator.process_index
    last_step = min(config.max_train_steps, stop_after_steps or config.max_train_steps)

    for step in tqdm(
        range(first_step, last_step),
        desc="textual inversion",
        disable=not (progress and accelerator.is_main_process),
    ):
        for micro in range(config.gradient_accumulation_steps):
            with accelerator.accumulate(text_encoder):
                g = step_generator(config.seed, step, micro, rank)
                position = (step * config.gradient_accumulation_steps + micro) * world + rank
                indices = batch_indices(position, config.train_batch_size, len(dataset), config.seed)
                templates_idx = torch.randint(
                    len(prompt_ids), (len(indices),), generator=g
                )  # a prompt per image
                batch = {
                    "latent_params": torch.stack([dataset.example(i)["instance_images"] for i in indices]),
                    "input_ids": prompt_ids[templates_idx],
                    "num_instance": len(indices),
                }
                with accelerator.autocast():
                    parts = training_step(unet, text_encoder, vae, models["noise_scheduler"], batch, g)
                accelerator.backward(parts.loss)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                with torch.no_grad():  # weight decay moves rows without gradient: put every other row back
                    weight = accelerator.unwrap_model(text_encoder).get_input_embeddings().weight
                    weight[frozen] = original[frozen].to(weight.device, weight.dtype)
        loss = parts.loss.item()
        if not math.isfinite(loss):
            logger.close()
            raise NonFiniteLossError(
                f"The textual inversion loss became {loss} at step {step + 1}; lower "
                "learning_rate (5e-4 is the usual value) or use mixed_precision='no'."
            )
        logger.log(step + 1, {"loss": loss, "instance_loss": loss, "lr": lr_scheduler.get_last_lr()[0]})
        if config.checkpointing_steps and (step + 1) % config.checkpointing_steps == 0:
            save_checkpoint(accelerator, output_dir, step + 1, config.checkpoints_total_limit)
    logger.close()
    if last_step < config.max_train_steps:  # stopped early on purpose: a checkpoint lets it resume
        if not (config.checkpointing_steps and last_step % config.checkpointing_steps == 0):
            save_checkpoint(accelerator, output_dir, last_step, config.checkpoints_total_limit)
        accelerator.end_training()
        accelerator.print(f"Stopped after step {last_step}; resume with resume_from_checkpoint: latest.")
        return TextualInversionResult(output_dir, output_dir / EMBEDDING_NAME, tokens,
                                      read_log(output_dir / LOG_FILE), False)

    accelerator.wait_for_everyone()
    text_encoder = accelerator.unwrap_model(text_encoder)
    changed = changed_rows(original, text_encoder.get_input_embeddings().weight.detach().cpu())
    if not set(changed) <= set(ids):
        raise RuntimeError(
            f"Rows other than the placeholder's changed: {sorted(set(changed) - set(ids))[:10]}."
        )
    record = {}
    if accelerator.is_main_process:
        text_encoder.requires_grad_(False)
        pipe = StableDiffusionPipeline.from_pretrained(
            resolve_model(config.pretrained_model_name_or_path),
            text_encoder=text_encoder.float(),
            tokenizer=tokenizer,
            use_safetensors=True,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
        pipe.save_pretrained(
            output_dir, safe_serialization=True
        )  # base model + the new word: DreamBooth starts here
        save_embedding(text_encoder, tokens, ids, output_dir / EMBEDDING_NAME)
        if config.validation_prompts:
            from .figures import image_grid
            from .sampling import generate

            pipe.set_progress_bar_config(disable=True)
            pairs = [(p, s) for p in config.validation_prompts for s in config.validation_seeds]
            out = generate(
                pipe.to(accelerator.device),
                [p for p, _ in pairs],
                [s for _, s in pairs],
                num_inference_steps=config.validation_inference_steps,
                scheduler="dpm++",
                resolution=config.resolution,
                progress=False,
            )
            (output_dir / "samples").mkdir(exist_ok=True)
            image_grid(out.images, len(config.validation_prompts), len(config.validation_seeds)).save(
                output_dir / "samples" / "final.png"
            )
        from .optim import peak_memory_bytes
        from .training import environment_record

        record = {
            "hash": run_hash,
            "placeholder_tokens": tokens,
            "token_ids": ids,
            "changed_rows": changed,
            "wall_time_s": round(time.time() - start_time, 2),
            "peak_memory_bytes": peak_memory_bytes(accelerator.device),
            **environment_record(accelerator),
        }
        (output_dir / RECORD_NAME).write_text(json.dumps(record, indent=2) + "\n")
        (output_dir / DONE_NAME).write_text(json.dumps({"hash": run_hash}) + "\n")
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TextualInversionResult(
        output_dir,
        output_dir / EMBEDDING_NAME,
        tokens,
        read_log(output_dir / LOG_FILE),
        False,
        record,
    )


def dreambooth_after_textual_inversion(ti: TextualInversionResult, config):
    """DreamBooth from a textual-inversion model, prompting with its new token (the study: 500 steps, 1e-6).

    Args:
        ti: the result of :func:`train_textual_inversion`.
        config: a :class:`helpers.config.TrainConfig`; its model is replaced by the TI model, and
            ``{token}`` in its prompts is replaced by the placeholder token.
    """
    from .training import train_dreambooth

    word = " ".join(ti.placeholder_tokens)
    return train_dreambooth(
        config.replace(
            pretrained_model_name_or_path=str(ti.output_dir),
            instance_prompt=config.instance_prompt.replace("{token}", word),
            validation_prompts=[p.replace("{token}", word) for p in config.validation_prompts],
        )
    )
