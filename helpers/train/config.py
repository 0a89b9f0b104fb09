"""One training configuration: diffusers' training-script names, the study's defaults, YAML in and out.

A run is described by a :class:`TrainConfig`. It is written next to the weights, so a
run folder always says how it was made, and its :func:`config_hash` (the fields that
change the result, plus the subject photos) tells whether an existing run can be reused.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

import yaml

from helpers.base.fields import TYPE_WORDS, Field, FieldError, check_fields
from helpers.base.paths import runs_dir
from helpers.train.data import IMAGE_SUFFIXES
from helpers.train.models import model_fingerprint
from helpers.train.sampling import SCHEDULERS


class ConfigError(FieldError):
    """A configuration value or key that the kit cannot use."""


# The learning-rate schedules of diffusers' ``get_scheduler`` that need no extra settings.
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
PRECISIONS = ("no", "fp16", "bf16")
AT_LEAST_1, AT_LEAST_0 = Field(low=1), Field(low=0)
FRACTION = Field(low=0, high=1, high_open=True)  # Adam's betas

# The valid values of every TrainConfig field beyond its type (a field not named takes any value of its type):
# the one declaration that TrainConfig's check, the command line and the fuzz tests read.
TRAIN_FIELDS: dict[str, Field] = {
    "pretrained_model_name_or_path": Field(nonempty=True, path="dir", advice="a Hub id or a pipeline folder"),
    "instance_data_dir": Field(path="dir", advice="the folder of the subject's photos"),
    "instance_prompt": Field(nonempty=True, advice="e.g. 'a photo of sks dog'"),
    "class_data_dir": Field(path="dir", advice="a folder for the class images, or empty"),
    "prior_loss_weight": Field(low=0, advice="the study used 1.0"),
    "num_class_images": AT_LEAST_1,
    "sample_batch_size": AT_LEAST_1,
    "class_scheduler": Field(choices=tuple(SCHEDULERS)),
    "class_inference_steps": AT_LEAST_1,
    "resolution": Field(low=8, multiple_of=8, advice="the VAE halves the image 3 times; 512 for Stable Diffusion"),
    "train_batch_size": AT_LEAST_1,
    "max_train_steps": AT_LEAST_1,
    "learning_rate": Field(low=0, low_open=True, high=1, advice="the study used 1e-6 to 5e-6"),
    "lr_scheduler": Field(choices=LR_SCHEDULERS),
    "lr_warmup_steps": AT_LEAST_0,
    "adam_beta1": FRACTION,
    "adam_beta2": FRACTION,
    "adam_weight_decay": AT_LEAST_0,
    "adam_epsilon": Field(low=0, low_open=True, advice="1e-8 is the usual value"),
    "max_grad_norm": Field(low=0, low_open=True, advice="1.0 is the usual value"),
    "mixed_precision": Field(choices=PRECISIONS),
    "gradient_accumulation_steps": AT_LEAST_1,
    "ema_decay": Field(low=0, high=1, advice="0.9999 is the usual value"),
    "seed": Field(low=0, high=2**32 - 1),
    "checkpointing_steps": Field(low=0, advice="0: no intermediate checkpoints"),
    "checkpoints_total_limit": Field(low=0, advice="0 keeps every checkpoint"),
    "validation_prompts": Field(nonempty=False),
    "validation_steps": Field(low=0, advice="0: samples only at the end"),
    "validation_seeds": Field(low=0, high=2**32 - 1),
    "validation_inference_steps": AT_LEAST_1,
    "rank": Field(low=1, advice="4 is diffusers' default, 16-64 is common"),
    "lora_alpha": Field(low=0, low_open=True, advice="or null to use the rank"),
    "output_dir": Field(path="dir", advice="empty: a folder named after the configuration"),
}


def check_config(config, fields: dict[str, Field]) -> None:
    """Check every field of ``config`` against its declaration (types first); a :class:`ConfigError` names the field."""
    try:
        check_fields(config, fields, _hints(type(config)))
    except FieldError as err:
        raise ConfigError(str(err)) from None


def _hints(cls: type) -> dict:
    """The resolved annotations of a config class's fields, in field order."""
    hints = get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


class ConfigMixin:
    """Dict and YAML plumbing shared by the kit's configuration dataclasses."""

    def to_dict(self) -> dict:
        """Plain dict of every field (YAML- and JSON-able)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict):
        """Build from a dict; an unknown key is an error that names it and the nearest valid key."""
        return _from_dict(cls, values)

    def replace(self, **changes):
        """A copy with some fields changed (unknown names are an error)."""
        return self.from_dict({**self.to_dict(), **changes})


@dataclass
class TrainConfig(ConfigMixin):
    """DreamBooth settings; names follow diffusers' ``train_dreambooth.py``, defaults follow the study.

    The study (Nov 2022) trained Stable Diffusion v1-4 at 512 px, batch 4 for objects
    (2 for faces), learning rate 1e-6 to 5e-6 without scaling, a constant schedule,
    400 steps for objects and 1200 for faces, with prior preservation weight 1.0.
    """

    pretrained_model_name_or_path: str = "CompVis/stable-diffusion-v1-4"
    instance_data_dir: str = ""
    instance_prompt: str = "a photo of sks dog"
    class_data_dir: str = ""  # empty: a folder under runs/class_images named after prompt and model
    class_prompt: str = ""  # empty: the instance prompt without its identifier ("a photo of dog")
    with_prior_preservation: bool = False  # as in the training script; the study used it for faces
    prior_loss_weight: float = 1.0
    num_class_images: int = 200
    sample_batch_size: int = 4
    class_scheduler: str = "dpm++"  # sampler for class images ("pndm" is the script's default)
    class_inference_steps: int = 25  # the script uses 50 PNDM steps
    resolution: int = 512
    center_crop: bool = True
    random_flip: bool = False
    train_batch_size: int = 4
    max_train_steps: int = 400
    learning_rate: float = 2e-6
    scale_lr: bool = False
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    train_text_encoder: bool = False
    use_8bit_adam: bool = False
    mixed_precision: str = "no"  # "no", "fp16" or "bf16"
    gradient_accumulation_steps: int = 1
    gradient_checkpointing: bool = False
    use_ema: bool = False
    ema_decay: float = 0.9999
    seed: int = 0
    checkpointing_steps: int = 0  # 0: no intermediate checkpoints
    checkpoints_total_limit: int = 2
    resume_from_checkpoint: str = ""  # "latest", a checkpoint folder name, or empty
    validation_prompts: list[str] = field(default_factory=list)
    validation_steps: int = 0  # 0: samples only at the end
    validation_seeds: list[int] = field(default_factory=lambda: [0, 1])
    validation_inference_steps: int = 25
    cache_latents: bool = True  # encode every training image once instead of every step
    cache_text_embeddings: bool = True  # with a frozen text encoder: encode each prompt once
    save_fp16: bool = False  # also export the final pipeline in float16 (fp16 variant)
    # Save only what was trained (the UNet, and the text encoder when trained) beside a note naming the
    # base model, instead of a whole pipeline; in float16 alone with save_fp16 (the gpu profile's Drive budget).
    save_trained_parts: bool = False
    use_lora: bool = False  # train a LoRA adapter on the attention projections instead of every weight
    rank: int = 4  # LoRA rank (diffusers' train_dreambooth_lora.py default)
    lora_alpha: int | None = None  # LoRA scale numerator (alpha / rank); None: equal to rank
    output_dir: str = ""  # empty: runs/train/<name>-<hash>

    def __post_init__(self) -> None:
        """Check values a learner may get wrong (:data:`TRAIN_FIELDS`), with a message that says what to do."""
        check_config(self, TRAIN_FIELDS)
        if self.use_lora:
            check_lora_settings(self)
        if self.with_prior_preservation:
            class_prompt_of(self)  # a class prompt is given, or can be derived from the instance prompt
        resume = self.resume_from_checkpoint
        if resume and resume != "latest" and not resume.startswith("checkpoint-"):
            raise ConfigError(
                f"resume_from_checkpoint={resume!r}: use 'latest' or a folder name like 'checkpoint-200' "
                "inside the run's checkpoints/ folder."
            )


def check_lora_settings(config: TrainConfig) -> None:
    """Refuse LoRA settings that cannot work together, with what to change (ranges: :data:`TRAIN_FIELDS`)."""
    if config.use_ema:
        raise ConfigError(
            "use_ema with use_lora: the kit's EMA averages whole models, and a LoRA run saves only its "
            "adapter. Set use_ema: false (LoRA runs do not use it), or use_lora: false to average a full run."
        )
    if config.save_fp16:
        raise ConfigError(
            "save_fp16 with use_lora: it writes a float16 copy of the whole pipeline, and a LoRA run saves "
            "only its adapter (a few MB). Set save_fp16: false; load_trained_pipeline takes a torch_dtype."
        )


def effective_lora_alpha(config) -> int:
    """The LoRA alpha a run uses: ``lora_alpha``, or the rank when it is None (adapter scale alpha / rank = 1)."""
    return config.rank if config.lora_alpha is None else config.lora_alpha


def derive_class_prompt(instance_prompt: str) -> str:
    """The instance prompt without its identifier: ``"a photo of sks toy"`` -> ``"a photo of toy"``.

    The identifier is ``sks`` (the kit's and the study's) or a ``<placeholder>`` token.
    """
    words = instance_prompt.split()
    kept = [w for w in words if w != "sks" and not (w.startswith("<") and w.endswith(">"))]
    if len(kept) == len(words) or not kept:
        raise ConfigError(
            f"with_prior_preservation needs a class_prompt: it cannot be derived from {instance_prompt!r}, "
            "which has no identifier ('sks' or a <token>). Set class_prompt, e.g. 'a photo of dog'."
        )
    return " ".join(kept)


def class_prompt_of(config) -> str:
    """The class prompt a run uses: ``config.class_prompt``, or one derived from the instance prompt."""
    return config.class_prompt or derive_class_prompt(config.instance_prompt)


# Fields that do not change the trained weights: two configs that differ only here are the same run.
NOT_IN_HASH = {
    "output_dir",
    "resume_from_checkpoint",
    "checkpointing_steps",
    "checkpoints_total_limit",
    "validation_prompts",
    "validation_steps",
    "validation_seeds",
    "validation_inference_steps",
    "cache_latents",
    "cache_text_embeddings",
    "save_fp16",
    "save_trained_parts",
    "class_data_dir",
    "sample_batch_size",
}


# Fields of a LoRA run; a full fine-tuning run's hash leaves them out.
LORA_FIELDS = ("use_lora", "rank", "lora_alpha")


def _coerce(name: str, value: Any, hint: Any) -> Any:
    """Convert a YAML or command-line value to the field's type, or say what was expected.

    Text is parsed (``"800"`` from ``--set``); values YAML already typed must have the field's
    type (a list or a mapping for a number is an error, not converted).
    """
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):  # ``int | None``: None (or "null" on the command line) stays None
        if type(None) in get_args(hint) and (value is None or str(value).lower() in ("none", "null", "")):
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
        origin = get_origin(hint)
    try:
        if origin is list:
            if isinstance(value, str):
                value = yaml.safe_load(value) if value.strip().startswith("[") else [value] if value else []
            if not isinstance(value, (list, tuple)):
                raise TypeError(value)
            (inner,) = get_args(hint) or (str,)
            return [_coerce(f"{name}[{i}]", v, inner) for i, v in enumerate(value)]
        if isinstance(value, (list, tuple, dict)):
            raise TypeError(value)
        if hint is bool:
            if isinstance(value, str):
                if value.lower() in ("true", "yes", "1", "on"):
                    return True
                if value.lower() in ("false", "no", "0", "off"):
                    return False
                raise ValueError(value)
            if isinstance(value, bool) or value in (0, 1):
                return bool(value)
            raise ValueError(value)
        if hint is str:
            if value is None:
                return ""
            if not isinstance(value, str):  # a YAML number or true for a prompt or a path: quote it
                raise TypeError(value)
            return value
        if isinstance(value, bool):  # YAML's yes/no for a number
            raise TypeError(value)
        if hint is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return hint(value)
    except (TypeError, ValueError, OverflowError, yaml.YAMLError) as err:
        raise ConfigError(f"{name}={value!r} is not {_type_words(hint)}.") from err


def _type_words(hint: Any) -> str:
    """``int`` -> "a whole number such as 400 (no quotes)": how a message names a type."""
    return TYPE_WORDS.get(hint, f"a valid {getattr(hint, '__name__', hint)}")


def _from_dict(cls: type, values: dict):
    """Shared by the config classes: check keys, coerce types, construct."""
    valid = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in valid:
            close = difflib.get_close_matches(str(key), valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise ConfigError(
                f"Unknown configuration key {key!r}.{hint} Valid keys: {', '.join(sorted(valid))}."
            )
    hints = get_type_hints(cls)
    return cls(**{k: _coerce(k, v, hints[k]) for k, v in values.items()})


def save_config(config, path: str | Path) -> Path:
    """Write a config as YAML (keys in field order)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path


def load_config(path: str | Path, cls: type = TrainConfig, overrides: list[str] | None = None):
    """Read a YAML config, then apply ``key=value`` overrides (as ``--set`` on the command line)."""
    path = Path(path).expanduser()
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "does not exist"
        raise ConfigError(f"Config file {path} {what}. Give a .yaml file (configs/ holds examples).")
    values = read_yaml(path) or {}
    if not isinstance(values, dict):
        raise ConfigError(f"{path} must hold a mapping of key: value lines, not {type(values).__name__}.")
    values.update(parse_overrides(overrides or []))
    return _from_dict(cls, values)


def read_yaml(path: Path) -> Any:
    """The YAML in ``path``; a syntax error is a :class:`ConfigError` that names the line to fix."""
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{path} is not a text file: give the .yaml settings file.") from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "not valid YAML"
        raise ConfigError(
            f"{path} is not valid YAML{where}: {problem}. Fix that line (each line is `key: value`; close "
            "every bracket and quote)."
        ) from None


def parse_overrides(items: list[str]) -> dict[str, str]:
    """``["key=value", ...]`` -> dict (values stay strings; the config converts them)."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: write it as key=value, e.g. --set max_train_steps=800.")
        out[key.strip()] = value.strip()
    return out


def config_for_profile(profile, learning_rate: float, max_train_steps: int, faces: bool = False, **changes):
    """A :class:`TrainConfig` for a profile, from the study's full-scale values: the one place that maps them.

    Every run of the course is checkpointed as the profile says and resumes from its last
    checkpoint (``resume_from_checkpoint: latest``); neither changes the run's hash, so a
    notebook re-run after a disconnect continues the interrupted run.

    Args:
        profile: a :class:`helpers.profiles.Profile` (``get_profile()``).
        learning_rate, max_train_steps: the study's values (e.g. 2e-6 and 400); the profile scales them.
        faces: use the study's face batch size (2) instead of the object one (4).
        **changes: any other field, e.g. ``instance_data_dir=...``.
    """
    values = {
        "pretrained_model_name_or_path": profile.pretrained_model_name_or_path,
        "resolution": profile.resolution,
        "learning_rate": profile.lr(learning_rate),
        "max_train_steps": profile.steps(max_train_steps),
        "train_batch_size": profile.train_batch_size_faces if faces else profile.train_batch_size_objects,
        "num_class_images": profile.num_class_images,
        "sample_batch_size": profile.sample_batch_size,
        "class_inference_steps": profile.class_inference_steps,
        "validation_inference_steps": profile.num_inference_steps,
        "mixed_precision": profile.mixed_precision,
        "use_8bit_adam": profile.use_8bit_adam,
        "gradient_checkpointing": profile.gradient_checkpointing,
        "checkpointing_steps": profile.checkpointing_steps,
        "checkpoints_total_limit": profile.checkpoints_total_limit,
        "resume_from_checkpoint": "latest",
    }
    if not changes.get("use_lora"):  # a LoRA run saves its adapter alone anyway
        values.update(save_trained_parts=profile.save_trained_parts, save_fp16=profile.save_fp16)
    return TrainConfig.from_dict({**values, **changes})


def files_fingerprint(folder: str | Path) -> str:
    """SHA-256 over the names and bytes of the images in ``folder`` ("" when there is no folder)."""
    folder = Path(folder)
    if not str(folder) or not folder.is_dir():
        return ""
    digest = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def config_hash(config, exclude: set[str] = NOT_IN_HASH) -> str:
    """Short hash of everything that changes the result: the config fields, the base model's weights and the photos.

    Output paths, checkpoint/validation settings and caching switches are left out,
    so changing them does not cause a retrain; so are the prior-preservation settings when it is
    off, and the LoRA settings when ``use_lora`` is off (a full run's hash is the one it had before LoRA).
    """
    values = {k: v for k, v in config.to_dict().items() if k not in exclude}
    if values.get("pretrained_model_name_or_path"):  # the weights, not only the name, define the start
        values["model_fingerprint"] = model_fingerprint(values["pretrained_model_name_or_path"])
        values["pretrained_model_name_or_path"] = model_identity(values["pretrained_model_name_or_path"],
                                                                 values["model_fingerprint"])
    for name in [
        k for k in values if k.endswith("_data_dir")
    ]:  # the photos, not the path, define the subject
        values[name] = files_fingerprint(values[name]) if values[name] else ""
    if not getattr(config, "with_prior_preservation", True):
        for name in (
            "class_prompt",
            "prior_loss_weight",
            "num_class_images",
            "class_scheduler",
            "class_inference_steps",
        ):
            values.pop(name, None)
    if not values.get("use_lora", True):  # full fine-tuning: runs made before LoRA existed keep their hash
        for name in LORA_FIELDS:
            values.pop(name, None)
    elif "lora_alpha" in values:  # None and the rank train the same adapter
        values["lora_alpha"] = effective_lora_alpha(config)
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()[:12]


def model_identity(name: str, fingerprint: str) -> str:
    """How a base model enters a hash beside its fingerprint: a local folder by its weights alone ("").

    A folder (a textual-inversion run, a workshop pack unpacked elsewhere) holds the same weights
    wherever it lies; a Hub id or a ``kit:`` model keeps its name.
    """
    return "" if fingerprint and is_local_path(name) else name


def is_local_path(name: str) -> bool:
    """True for a folder named by its path (absolute, or starting with ./ ~ ../), not a Hub id or a ``kit:`` model."""
    return name.startswith(("/", "./", "../", "~")) or bool(re.match(r"^[A-Za-z]:[\\/]", name))


def slugify(text: str, max_len: int = 40) -> str:
    """``"a photo of sks dog"`` -> ``"a-photo-of-sks-dog"`` (safe in file names)."""
    slug = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return slug[:max_len].strip("-") or "run"


def resolve_output_dir(config, kind: str = "train") -> Path:
    """``config.output_dir``, or ``runs/<kind>/<instance-prompt>-<hash>`` when it is empty."""
    if config.output_dir:
        return Path(config.output_dir).expanduser()
    name = slugify(getattr(config, "instance_prompt", "") or getattr(config, "placeholder_token", "run"))
    return runs_dir() / kind / f"{name}-{config_hash(config)}"
