"""Textual inversion: learn one new word for the subject, leaving every weight of the model unchanged.

A placeholder token (``<sks-toy>``) is added to the tokenizer, its embedding row is
initialised from a related word (``toy``), and only that row is trained. The result is a
tiny embedding file that diffusers' ``pipe.load_textual_inversion`` loads, plus a full
pipeline folder that DreamBooth can start from (the study: textual inversion for 2000
steps, then DreamBooth for 500 steps at 1e-6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from helpers.base.fields import Field
from helpers.base.home import check_free_space
from helpers.base.storage import SAMPLES_DIR
from helpers.figures import image_grid
from helpers.train.batches import DreamBoothDataset, batch_indices, tokenize
from helpers.train.config import TRAIN_FIELDS, ConfigError, ConfigMixin, check_config, resolve_output_dir
from helpers.train.data import check_image_folder, load_images
from helpers.train.dreambooth import step_generator, train_dreambooth, training_step
from helpers.train.models import (
    check_model_reachable,
    download_bytes,
    load_components,
    model_bytes,
    resolve_model,
    write_parts_note,
)
from helpers.train.optim import check_mixed_precision, weight_dtype_for
from helpers.train.runs import Run, make_lr_scheduler, scaled_learning_rate
from helpers.train.sampling import generate

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


# The valid values of every TextualInversionConfig field: those it shares with DreamBooth as TrainConfig says,
# and its own (the new word must be one word in angle brackets or not, without spaces).
TI_FIELDS: dict[str, Field] = {
    **{name: TRAIN_FIELDS[name] for name in (
        "pretrained_model_name_or_path", "resolution", "train_batch_size", "max_train_steps", "lr_scheduler",
        "lr_warmup_steps", "adam_weight_decay", "mixed_precision", "gradient_accumulation_steps", "seed",
        "validation_prompts", "validation_seeds", "validation_inference_steps", "checkpointing_steps",
        "checkpoints_total_limit", "output_dir")},
    "train_data_dir": Field(path="dir", advice="the folder of the subject's photos"),
    "placeholder_token": Field(nonempty=True, advice="one new word without spaces, e.g. '<sks>'"),
    "initializer_token": Field(nonempty=True, advice="one word the tokenizer knows, e.g. 'dog'"),
    "learnable_property": Field(choices=("object", "style")),
    "num_vectors": Field(low=1, high=64, advice="1 is the usual value"),
    "learning_rate": Field(low=0, low_open=True, high=1, advice="5e-4 is the usual value"),
}


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
    # Save the text encoder and tokenizer with the new word beside a note naming the base model, instead of a
    # whole pipeline (the gpu profile: 0.5 GB instead of 5 GB); DreamBooth and sampling load either.
    save_trained_parts: bool = False
    output_dir: str = ""  # empty: runs/textual_inversion/<token>-<hash>

    def __post_init__(self) -> None:
        """Check values a learner may get wrong (:data:`TI_FIELDS`)."""
        check_config(self, TI_FIELDS)
        for name in ("placeholder_token", "initializer_token"):
            if len(getattr(self, name).split()) > 1:
                raise ConfigError(f"{name}={getattr(self, name)!r} must be one word without spaces, e.g. '<sks>'.")


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
    from safetensors.torch import save_file  # with diffusers' dependencies

    rows = text_encoder.get_input_embeddings().weight[ids].detach().float().cpu().contiguous()
    save_file({tokens[0]: rows}, str(path))
    return path


def check_inputs(config: TextualInversionConfig) -> None:
    """What a learner can get wrong, checked before anything is written: photos, model, precision, disk."""
    if not config.train_data_dir:
        raise ConfigError("train_data_dir is empty: set it to the folder that holds the subject's photos.")
    check_image_folder(config.train_data_dir, config.resolution)
    check_model_reachable(config.pretrained_model_name_or_path)
    check_mixed_precision(config.mixed_precision)
    # the saved pipeline (checkpoints are tiny), and the download of a Hub model not on disk yet
    model = model_bytes(config.pretrained_model_name_or_path) + download_bytes(config.pretrained_model_name_or_path)
    check_free_space(resolve_output_dir(config, "textual_inversion"), model, "This textual inversion")


@dataclass
class Embedding:
    """The one trained tensor (the embedding matrix), which rows are the new word's, and the frozen rest."""

    tokenizer: object
    text_encoder: torch.nn.Module
    ids: list[int]
    original: torch.Tensor  # every row before training: the frozen ones are put back after each step
    frozen: torch.Tensor  # True for every row but the placeholder's

    def restore_frozen_rows(self, accelerator) -> None:
        """Put back every row but the placeholder's (AdamW's weight decay moves rows without gradient)."""
        with torch.no_grad():
            weight = accelerator.unwrap_model(self.text_encoder).get_input_embeddings().weight
            weight[self.frozen] = self.original[self.frozen].to(weight.device, weight.dtype)


def prepare_embedding(config: TextualInversionConfig, accelerator, models: dict) -> Embedding:
    """Add the placeholder token, freeze every weight but the embedding matrix, move frozen parts to the device."""
    tokenizer, text_encoder = models["tokenizer"], models["text_encoder"]
    ids = add_placeholder_token(
        tokenizer, text_encoder, config.placeholder_token, config.initializer_token, config.num_vectors
    )
    weight_dtype = weight_dtype_for(config.mixed_precision)
    models["vae"].requires_grad_(False).to(accelerator.device, dtype=weight_dtype)
    models["unet"].requires_grad_(False).to(accelerator.device, dtype=weight_dtype)
    text_encoder.requires_grad_(False)
    embeddings = text_encoder.get_input_embeddings()
    embeddings.weight.requires_grad_(True)  # the only trained tensor; its other rows are reset every step
    frozen = torch.ones(len(tokenizer), dtype=torch.bool)
    frozen[ids] = False
    return Embedding(tokenizer, text_encoder, ids, embeddings.weight.detach().clone(), frozen)


def prompt_ids(config: TextualInversionConfig, tokenizer) -> torch.Tensor:
    """Token ids of every prompt template with the new word in it, one row per template."""
    templates = OBJECT_TEMPLATES if config.learnable_property == "object" else STYLE_TEMPLATES
    word = " ".join(placeholder_tokens(config.placeholder_token, config.num_vectors))
    return torch.cat([tokenize(tokenizer, t.format(word)) for t in templates])


def make_ti_batch(dataset, prompts: torch.Tensor, config, position: int, generator: torch.Generator) -> dict:
    """The ``position``-th batch: cached latents of the photos, each with a prompt template drawn at random."""
    indices = batch_indices(position, config.train_batch_size, len(dataset), config.seed)
    templates = torch.randint(len(prompts), (len(indices),), generator=generator)  # a prompt per image
    return {
        "latent_params": torch.stack([dataset.example(i)["instance_images"] for i in indices]),
        "input_ids": prompts[templates],
        "num_instance": len(indices),
    }


NON_FINITE_HELP = (
    "The textual inversion loss became {value} at step {step}; lower learning_rate (5e-4 is the usual "
    "value) or use mixed_precision='no'. The last checkpoint (if any) is in {checkpoints}."
)


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
    run = Run.open(config, "textual_inversion", checks=lambda: check_inputs(config), nan_help=NON_FINITE_HELP)
    if run.reused:
        return ti_result(config, run.result())
    accelerator = run.accelerator
    models = load_components(config.pretrained_model_name_or_path)
    emb = prepare_embedding(config, accelerator, models)
    dataset = DreamBoothDataset(load_images(config.train_data_dir, config.resolution, config.center_crop),
                                config.placeholder_token, emb.tokenizer)
    vae = models["vae"]
    dataset.cache_latents(lambda x: vae.encode(x.to(vae.device, vae.dtype)).latent_dist.parameters)
    prompts = prompt_ids(config, emb.tokenizer)
    optimizer = torch.optim.AdamW([emb.text_encoder.get_input_embeddings().weight],
                                  lr=scaled_learning_rate(config, run.num_processes), weight_decay=config.adam_weight_decay)
    lr_scheduler = make_lr_scheduler(config, optimizer, run.num_processes)
    text_encoder, optimizer, lr_scheduler = accelerator.prepare(emb.text_encoder, optimizer, lr_scheduler)
    run.resume(stop_after_steps)

    accum, processes, rank = config.gradient_accumulation_steps, run.num_processes, accelerator.process_index
    for step in run.steps("textual inversion", progress):
        total = torch.zeros((), device=accelerator.device)
        for micro in range(accum):
            with accelerator.accumulate(text_encoder):
                g = step_generator(config.seed, step, micro, rank)
                batch = make_ti_batch(dataset, prompts, config, (step * accum + micro) * processes + rank, g)
                with accelerator.autocast():
                    parts = training_step(models["unet"], text_encoder, vae, models["noise_scheduler"], batch, g)
                accelerator.backward(parts.loss)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                emb.restore_frozen_rows(accelerator)
            total += parts.loss.detach()
        loss = total / accum
        run.end_step(step, {"loss": loss, "instance_loss": loss}, lr_scheduler.get_last_lr()[0])
    if run.stopped_early():
        return ti_result(config, run.result())

    accelerator.wait_for_everyone()
    emb.text_encoder = accelerator.unwrap_model(text_encoder)
    changed = check_only_placeholder_changed(emb)
    tokens = placeholder_tokens(config.placeholder_token, config.num_vectors)
    record = run.finish(lambda: save_ti_outputs(config, run.output_dir, accelerator, emb),
                        {"placeholder_tokens": tokens, "token_ids": emb.ids, "changed_rows": changed})
    return ti_result(config, run.result(record))


def ti_result(config: TextualInversionConfig, result) -> TextualInversionResult:
    """A :class:`TextualInversionResult` from the run's :class:`~helpers.train.runs.RunResult`."""
    return TextualInversionResult(
        result.output_dir,
        result.output_dir / EMBEDDING_NAME,
        placeholder_tokens(config.placeholder_token, config.num_vectors),
        result.losses,
        result.reused,
        result.record,
    )


def check_only_placeholder_changed(emb: Embedding) -> list[int]:
    """The embedding rows that changed; an error if any is not the placeholder's."""
    changed = changed_rows(emb.original, emb.text_encoder.get_input_embeddings().weight.detach().cpu())
    if not set(changed) <= set(emb.ids):
        raise RuntimeError(f"Rows other than the placeholder's changed: {sorted(set(changed) - set(emb.ids))[:10]}.")
    return changed


def save_ti_outputs(config: TextualInversionConfig, output_dir: Path, accelerator, emb: Embedding) -> None:
    """The pipeline folder (base model + the new word: DreamBooth starts here), the embedding file, samples."""
    from diffusers import StableDiffusionPipeline

    tokens = placeholder_tokens(config.placeholder_token, config.num_vectors)
    emb.text_encoder.requires_grad_(False)
    pipe = StableDiffusionPipeline.from_pretrained(
        resolve_model(config.pretrained_model_name_or_path),
        text_encoder=emb.text_encoder.float(),
        tokenizer=emb.tokenizer,
        use_safetensors=True,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    if config.save_trained_parts:  # the text encoder and tokenizer with the new word, and the base model's name
        emb.text_encoder.save_pretrained(output_dir / "text_encoder", safe_serialization=True)
        emb.tokenizer.save_pretrained(output_dir / "tokenizer")
        write_parts_note(output_dir, config.pretrained_model_name_or_path, ["text_encoder", "tokenizer"], "float32")
    else:
        pipe.save_pretrained(output_dir, safe_serialization=True)
    save_embedding(emb.text_encoder, tokens, emb.ids, output_dir / EMBEDDING_NAME)
    if not config.validation_prompts:
        return
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
    (output_dir / SAMPLES_DIR).mkdir(exist_ok=True)
    image_grid(out.images, len(config.validation_prompts), len(config.validation_seeds)).save(
        output_dir / SAMPLES_DIR / "final.png"
    )


def dreambooth_after_textual_inversion(ti: TextualInversionResult, config):
    """DreamBooth from a textual-inversion model, prompting with its new token (the study: 500 steps, 1e-6).

    Args:
        ti: the result of :func:`train_textual_inversion`.
        config: a :class:`helpers.train.config.TrainConfig`; its model is replaced by the TI model, and
            ``{token}`` in its prompts is replaced by the placeholder token.
    """
    word = " ".join(ti.placeholder_tokens)
    return train_dreambooth(
        config.replace(
            pretrained_model_name_or_path=str(ti.output_dir),
            instance_prompt=config.instance_prompt.replace("{token}", word),
            validation_prompts=[p.replace("{token}", word) for p in config.validation_prompts],
        )
    )
