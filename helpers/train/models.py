"""Stable Diffusion 1.x: load it from the Hub or a folder, or build a tiny one offline.

Every model the kit uses is a normal diffusers pipeline folder, whatever its size: the
study's ``CompVis/stable-diffusion-v1-4`` from the Hub, the miniature ToyWorld model, or
the tiny random model that tests use. One code path loads them all.
"""

from __future__ import annotations

import gc
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from helpers.base.home import hub_cache_dir
from helpers.base.paths import DATA_DIR, TOKENIZER_DIR, runs_dir
from helpers.base.storage import CHECKPOINTS, COMPARISONS_DIR, SAMPLES_DIR
from helpers.errors import LearnerError
from helpers.profiles import TINY_MODEL, TOY_MODEL

log = logging.getLogger(__name__)

TOY_MODEL_DIR = DATA_DIR / "toyworld" / "model"


class ModelUnavailableError(LearnerError, RuntimeError):
    """A model could not be found locally nor reached on the Hub."""


@dataclass(frozen=True)
class TinySpec:
    """Sizes of a miniature Stable Diffusion; the defaults match diffusers' own test model."""

    unet_channels: tuple[int, ...] = (32, 64)
    vae_channels: tuple[int, ...] = (32, 64)
    layers_per_block: int = 2
    text_hidden: int = 32
    text_layers: int = 2
    text_heads: int = 4
    attention_head_dim: int = 8
    latent_channels: int = 4
    sample_size: int = 32  # image size in pixels the model is built for

    @property
    def vae_scale(self) -> int:
        """Pixels per latent cell (8 in Stable Diffusion; 2 for two VAE blocks)."""
        return 2 ** (len(self.vae_channels) - 1)


def build_tiny_components(spec: TinySpec = TinySpec(), seed: int = 0) -> dict:
    """Randomly initialised Stable Diffusion parts, built from the same classes as the real one.

    Returns:
        ``dict`` with ``vae``, ``text_encoder``, ``tokenizer``, ``unet`` and ``scheduler``.
    """
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    torch.manual_seed(seed)
    n = len(spec.unet_channels)
    unet = UNet2DConditionModel(
        sample_size=spec.sample_size // spec.vae_scale,
        in_channels=spec.latent_channels,
        out_channels=spec.latent_channels,
        block_out_channels=spec.unet_channels,
        layers_per_block=spec.layers_per_block,
        down_block_types=("DownBlock2D",) + ("CrossAttnDownBlock2D",) * (n - 1),
        up_block_types=("CrossAttnUpBlock2D",) * (n - 1) + ("UpBlock2D",),
        cross_attention_dim=spec.text_hidden,
        attention_head_dim=spec.attention_head_dim,
        norm_num_groups=min(32, spec.unet_channels[0]),
    )
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        block_out_channels=spec.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * len(spec.vae_channels),
        up_block_types=("UpDecoderBlock2D",) * len(spec.vae_channels),
        latent_channels=spec.latent_channels,
        norm_num_groups=min(32, spec.vae_channels[0]),
        sample_size=spec.sample_size,
    )
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=spec.text_hidden,
            intermediate_size=spec.text_hidden * 4,
            num_hidden_layers=spec.text_layers,
            num_attention_heads=spec.text_heads,
            max_position_embeddings=tokenizer.model_max_length,
            projection_dim=spec.text_hidden,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )
    # Stable Diffusion 1.x's own noise schedule and default sampler settings.
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    return {"vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "unet": unet, "scheduler": scheduler}


def save_pipeline(components: dict, out_dir: str | Path, extra: dict | None = None):
    """Assemble components into a ``StableDiffusionPipeline`` and save it as safetensors.

    Args:
        components: ``vae``, ``text_encoder``, ``tokenizer``, ``unet``, ``scheduler``.
        out_dir: the pipeline folder to write.
        extra: optional JSON-able facts saved to ``kit_model.json`` beside the weights.
    """
    import json

    from diffusers import StableDiffusionPipeline

    pipe = StableDiffusionPipeline(
        **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
    )
    pipe.save_pretrained(out_dir, safe_serialization=True)
    if extra is not None:
        (Path(out_dir) / "kit_model.json").write_text(json.dumps(extra, indent=2) + "\n")
    return pipe


def build_tiny_model(out_dir: str | Path, spec: TinySpec = TinySpec(), seed: int = 0) -> Path:
    """Build the tiny random model and save it as a pipeline folder (``python -m helpers tiny-model``)."""
    out_dir = Path(out_dir)
    components = build_tiny_components(spec, seed)
    facts = {"kind": "tiny random Stable Diffusion", "seed": seed, "spec": asdict(spec)}
    save_pipeline(components, out_dir, extra=facts)
    return out_dir


WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt")


NOT_MODEL_FILES = ("kit_model.json", "weights_location.json")  # notes beside a model, not the model


def model_fingerprint(name_or_path: str) -> str:
    """What identifies a local model's weights, so that runs and class images made from other weights are not reused.

    For a folder (``kit:`` models included): a hash over every weight, config and tokenizer
    file's name, size, first and last MiB (cheap even for 4 GB of Stable Diffusion). For a
    Hub id: "" (the id names the weights; pin a revision by downloading to a folder).
    """
    import hashlib

    try:
        folder = Path(resolve_model(name_or_path))
    except ModelUnavailableError:
        return ""
    if not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if not path.is_file() or path.suffix not in WEIGHT_SUFFIXES or path.name in NOT_MODEL_FILES:
            continue
        if rel.parts[0] in ("checkpoint", CHECKPOINTS, "logs", SAMPLES_DIR, COMPARISONS_DIR):  # not the model
            continue
        size = path.stat().st_size
        digest.update(f"{rel.as_posix()}:{size}".encode())
        with open(path, "rb") as f:
            digest.update(f.read(1 << 20))
            f.seek(max(0, size - (1 << 20)))
            digest.update(f.read())
    return digest.hexdigest()[:16]


def resolve_model(name_or_path: str) -> str:
    """Turn a model reference into something ``from_pretrained`` takes.

    ``kit:tiny-sd`` is built on first use under ``runs/models``; ``kit:toyworld`` is the
    shipped miniature model; anything else (a Hub id or a folder) passes through.
    """
    if name_or_path == TINY_MODEL:
        folder = runs_dir() / "models" / "tiny-sd"
        if not (folder / "model_index.json").exists():
            log.info("Building the tiny random model in %s", folder)
            build_tiny_model(folder)
        return str(folder)
    if name_or_path == TOY_MODEL:
        if not (TOY_MODEL_DIR / "model_index.json").exists():
            raise ModelUnavailableError(
                f"The ToyWorld model is not in {TOY_MODEL_DIR}. Build it with "
                "`python -m helpers toyworld pretrain data/toyworld/model`, or use the tiny random "
                f"model instead (profile override pretrained_model_name_or_path='{TINY_MODEL}')."
            )
        return str(TOY_MODEL_DIR)
    path = Path(name_or_path).expanduser()
    if path.exists() and not (path / "model_index.json").exists() and parts_base(path) is None:
        raise ModelUnavailableError(
            f"{path} exists but is not a diffusers pipeline folder (no model_index.json). Point to the "
            "folder that holds model_index.json, unet/, vae/, text_encoder/ and tokenizer/."
        )
    return str(path) if path.exists() else name_or_path


PARTS_NOTE = "base_model.json"  # a folder of trained parts names the base model they go into
PART_NAMES = ("unet", "text_encoder", "tokenizer")


def parts_base(folder: str | Path) -> str | None:
    """The base model of a folder that holds only some parts of a model (a run's trained parts), else None."""
    folder = Path(folder)
    note = folder / PARTS_NOTE
    if (folder / "model_index.json").exists() or not note.is_file():
        return None
    if not any((folder / name).is_dir() for name in PART_NAMES):
        return None  # a LoRA run's note: its adapter is loaded by helpers.train.lora
    return json.loads(note.read_text())["base_model"]


def write_parts_note(folder: Path, base_model: str, parts: list[str], dtype: str) -> Path:
    """``base_model.json`` beside trained parts: the base model they go into, its fingerprint, the parts and dtype."""
    note = {"base_model": base_model, "base_model_fingerprint": model_fingerprint(base_model),
            "trained_parts": parts, "dtype": dtype}
    path = Path(folder) / PARTS_NOTE
    path.write_text(json.dumps(note, indent=2) + "\n")
    return path


def warn_if_base_changed(note: dict) -> None:
    """Print a warning when the base model a run's note names no longer has the weights the run was trained on.

    Args:
        note: a run's ``base_model.json`` (trained parts or a LoRA adapter), read as a dict.
    """
    base, trained_on = note["base_model"], note.get("base_model_fingerprint")
    fingerprint = model_fingerprint(base)
    if trained_on and fingerprint and fingerprint != trained_on:
        print(f"Warning: the weights of {base} changed since this run was trained on them; its images will "
              "differ from the run's samples.")


def load_parts(folder: Path, torch_dtype: torch.dtype | None = None, suffix: str = "") -> dict:
    """The parts saved in ``folder`` (``unet``, ``text_encoder``, ``tokenizer``; ``suffix="_ema"`` for averages)."""
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    loaders = {"unet": UNet2DConditionModel.from_pretrained, "text_encoder": CLIPTextModel.from_pretrained}
    parts = {}
    for name, load in loaders.items():
        if (folder / f"{name}{suffix}").is_dir():
            parts[name] = load(folder / f"{name}{suffix}", **dtype_kwargs(torch_dtype))
    if (folder / "tokenizer").is_dir():
        parts["tokenizer"] = CLIPTokenizer.from_pretrained(folder / "tokenizer")
    return parts


def check_model_reachable(name_or_path: str) -> None:
    """Fail now, with advice, when the base model can be neither found on disk nor reached on the Hub."""
    path = resolve_model(name_or_path)
    if Path(path).is_dir():
        return
    from huggingface_hub import hf_hub_download  # only for Hub ids

    try:
        hf_hub_download(path, "model_index.json")  # a few hundred bytes; cached for the real download
    except Exception as err:
        raise _unavailable(name_or_path, err) from err


def local_folder(name_or_path: str) -> Path | None:
    """The folder on disk that holds a model: its own folder, or a Hub id's cached copy; None when there is none."""
    try:
        resolved = resolve_model(name_or_path)
    except ModelUnavailableError:
        return None
    if Path(resolved).is_dir():
        return Path(resolved)
    from huggingface_hub import snapshot_download  # only for Hub ids

    try:
        return Path(snapshot_download(resolved, local_files_only=True, **hub_kwargs()))
    except Exception:  # noqa: BLE001 (not in the cache, or not a valid id: either way nothing local)
        return None


# Stable Diffusion 1.x's weight files in float32 (what a run saves), for a Hub model not downloaded yet
SD1_PART_BYTES = {"unet": 3_438_167_536, "text_encoder": 492_265_168, "vae": 334_643_268}


def model_bytes(name_or_path: str, parts: list[str] | None = None) -> int:
    """Bytes of a model's weight files (all, or those of ``parts`` such as ``["unet"]``).

    A local folder (or a Hub model already in the cache) is measured; a Hub model not downloaded
    yet is taken to be Stable Diffusion 1.x in float32 (:data:`SD1_PART_BYTES`).
    """
    folder = local_folder(name_or_path)
    if folder is None:
        return sum(v for k, v in SD1_PART_BYTES.items() if parts is None or k in parts)
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix in (".safetensors", ".bin")]
    keep = [p for p in files if parts is None or p.relative_to(folder).parts[0] in parts]
    return sum(p.stat().st_size for p in keep)


def download_bytes(name_or_path: str) -> int:
    """What loading the model will download into the course home's cache first: 0 when it is on disk."""
    return 0 if local_folder(name_or_path) is not None else model_bytes(name_or_path)


def _unavailable(name: str, err: Exception) -> ModelUnavailableError:
    return ModelUnavailableError(
        f"Could not load {name!r}: {type(err).__name__}: {err}\n"
        "If this is a Hub id: check the spelling, your internet connection and, for gated models, "
        "`huggingface-cli login`. Offline, use a local pipeline folder, the tiny model "
        f"(`python -m helpers tiny-model DIR` or '{TINY_MODEL}'), or the ToyWorld model "
        f"('{TOY_MODEL}', the `cpu` profile)."
    )


def hub_kwargs() -> dict:
    """``{"cache_dir": ...}``: Hub downloads go to the course home's cache (:func:`helpers.base.home.hub_cache_dir`)."""
    cache = hub_cache_dir()
    return {"cache_dir": str(cache)} if cache else {}


def dtype_kwargs(torch_dtype: torch.dtype | None) -> dict:
    """``{"torch_dtype": ...}`` only for a non-default dtype (newer diffusers warn on every ``torch_dtype``)."""
    return {} if torch_dtype in (None, torch.float32) else {"torch_dtype": torch_dtype}


def load_pipeline(name_or_path: str, torch_dtype: torch.dtype | None = None, device: str | None = None):
    """Load a Stable Diffusion 1.x pipeline (safetensors only, no remote code, no safety checker).

    Args:
        name_or_path: a Hub id, a pipeline folder, or a ``kit:`` reference.
        torch_dtype: e.g. ``torch.float16`` on a GPU; None keeps float32.
        device: where to move it; None leaves it on the CPU.
    """
    from diffusers import StableDiffusionPipeline

    source = resolve_model(name_or_path)
    base = parts_base(source)
    if base is not None:  # trained parts: the base model with them put in
        pipe = load_pipeline(base, torch_dtype=torch_dtype)
        for name, part in load_parts(Path(source), torch_dtype).items():
            setattr(pipe, name, part)
        return pipe.to(device) if device else pipe
    try:
        pipe = StableDiffusionPipeline.from_pretrained(
            source,
            **dtype_kwargs(torch_dtype),
            **hub_kwargs(),
            use_safetensors=True,
            safety_checker=None,
            feature_extractor=None,
            requires_safety_checker=False,
        )
    except (OSError, ValueError) as err:
        raise _unavailable(name_or_path, err) from err
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device) if device else pipe


def load_components(name_or_path: str) -> dict:
    """The parts a training run needs, each loaded from its subfolder in float32.

    Returns:
        ``dict`` with ``tokenizer``, ``text_encoder``, ``vae``, ``unet`` and ``noise_scheduler``
        (a ``DDPMScheduler`` built from the model's scheduler config, as in training).
    """
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    source, hub = resolve_model(name_or_path), hub_kwargs()
    base = parts_base(source)
    if base is not None:  # trained parts: the base model's components with them put in
        return {**load_components(base), **load_parts(Path(source))}
    try:
        return {
            "tokenizer": CLIPTokenizer.from_pretrained(source, subfolder="tokenizer", **hub),
            "text_encoder": CLIPTextModel.from_pretrained(source, subfolder="text_encoder", use_safetensors=True, **hub),
            "vae": AutoencoderKL.from_pretrained(source, subfolder="vae", use_safetensors=True, **hub),
            "unet": UNet2DConditionModel.from_pretrained(source, subfolder="unet", use_safetensors=True, **hub),
            "noise_scheduler": DDPMScheduler.from_pretrained(source, subfolder="scheduler", **hub),
        }
    except (OSError, ValueError) as err:
        raise _unavailable(name_or_path, err) from err


def free_memory() -> None:
    """Give back the memory of models no longer referenced (after ``del pipe``): Python's garbage, CUDA's cache.

    The same as ``diffusers.training_utils.free_memory`` (diffusers 0.31 and later); importing that
    module loads bitsandbytes, which prints a warning on a CPU, so the kit keeps these three lines.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
