"""A model card for a finished run: what it was trained from, on what, how, and the terms it carries.

``write_model_card(run_dir)`` writes ``README.md`` into the run folder, the file the
Hugging Face Hub shows as the model's page. Everything in it is read from the folder:
the run's ``config.yaml``, its record ``run.json`` and its validation samples.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from helpers.base.storage import LORA_FILE, SAMPLES_DIR
from helpers.profiles import TINY_MODEL, TOY_MODEL
from helpers.train.config import LORA_FIELDS
from helpers.train.data import IMAGE_SUFFIXES

CARD_NAME = "README.md"
LICENSE_URL = "https://huggingface.co/spaces/CompVis/stable-diffusion-license"

# (label, config field), in the order the card lists them; fields a run does not have are skipped.
SETTINGS = [
    ("Training steps", "max_train_steps"),
    ("Learning rate", "learning_rate"),
    ("LR schedule", "lr_scheduler"),
    ("Batch size", "train_batch_size"),
    ("Gradient accumulation", "gradient_accumulation_steps"),
    ("Resolution (px)", "resolution"),
    ("Prior preservation", "with_prior_preservation"),
    ("Prior loss weight", "prior_loss_weight"),
    ("Class images", "num_class_images"),
    ("Text encoder trained", "train_text_encoder"),
    ("LoRA", "use_lora"),
    ("LoRA rank", "rank"),
    ("LoRA alpha", "lora_alpha"),
    ("Mixed precision", "mixed_precision"),
    ("8-bit Adam", "use_8bit_adam"),
    ("EMA", "use_ema"),
    ("Seed", "seed"),
]
PRIOR_FIELDS = {"prior_loss_weight", "num_class_images"}  # only meaningful with prior preservation

OPENRAIL_TERMS = f"""\
The base model is released under the **CreativeML OpenRAIL-M** licence ([full text]({LICENSE_URL})),
and a model fine-tuned from it carries the same terms. In short:

- You may use, change and share this model and the images it makes, commercially too.
- You may not use it for what the licence's use restrictions forbid: among them anything unlawful,
  harming or exploiting minors, content meant to harass, defame or discriminate, spreading false
  information to harm others, medical advice, or automated decisions that harm people's legal rights.
- Whoever you share the model with must receive the same restrictions and a copy of the licence.
- You are responsible for the images you make with it.

This summary is not the licence; read the full text before you share or sell anything."""

KIT_TERMS = """\
The base model was built from scratch by the DreamBooth course kit (no outside weights or images)
and is released under the Apache-2.0 licence, as the kit is. A model fine-tuned from Stable
Diffusion instead carries Stable Diffusion's CreativeML OpenRAIL-M terms."""

INTRO = "Write the instance prompt's rare identifier in a prompt to draw the subject."

CONSENT_NOTE = """\
If you train on photos of a person, do it only with that person's consent, and share the model
only with their permission: it can draw them anywhere, doing anything. Never use it to make
images that deceive, sexualise, harass or humiliate anyone; those uses are both harmful and
forbidden by the licence. The same holds for photos you do not own the rights to."""


def read_run(run_dir: Path) -> tuple[dict, dict]:
    """A run's configuration and record as plain dicts (the record is empty when the run has none)."""
    config_path = run_dir / "config.yaml"
    if not config_path.exists():
        raise FileNotFoundError(
            f"{run_dir} has no config.yaml: point to a run folder the kit trained (runs/train/...)."
        )
    config = yaml.safe_load(config_path.read_text()) or {}
    record_path = run_dir / "run.json"
    record = json.loads(record_path.read_text()) if record_path.exists() else {}
    return config, record


def kit_made(base_model: str) -> bool:
    """True for the kit's own base models (the tiny and ToyWorld ones), which Stable Diffusion's terms do not cover."""
    if base_model in (TINY_MODEL, TOY_MODEL):
        return True
    facts = Path(base_model).expanduser() / "kit_model.json"
    return facts.is_file()


def is_lora(run_dir: Path, config: dict) -> bool:
    """True for a LoRA run (an adapter on the base model rather than a whole model)."""
    return bool(config.get("use_lora")) or (run_dir / LORA_FILE).exists()


def card_metadata(config: dict, lora: bool) -> str:
    """The card's YAML header: licence, base model, tags and instance prompt (what the Hub indexes)."""
    from huggingface_hub import ModelCardData

    base = config.get("pretrained_model_name_or_path", "")
    kit = kit_made(base)
    tags = ["text-to-image", "diffusers", "dreambooth", "stable-diffusion"] + (["lora"] if lora else [])
    data = ModelCardData(
        license="apache-2.0" if kit else "creativeml-openrail-m",
        library_name="diffusers",
        base_model=None if kit or Path(base).expanduser().exists() else base,  # only a Hub id links
        tags=tags,
        instance_prompt=config.get("instance_prompt"),
        pipeline_tag="text-to-image",
    )
    return data.to_yaml()


def settings_table(config: dict) -> str:
    """The run's main training settings as a Markdown table (the full list is in ``config.yaml``)."""
    rows = ["| Setting | Value |", "|---|---|"]
    for label, field in SETTINGS:
        if field not in config:
            continue
        if field in PRIOR_FIELDS and not config.get("with_prior_preservation"):
            continue
        if field in LORA_FIELDS and not config.get("use_lora"):
            continue
        value = config.get("rank") if field == "lora_alpha" and config[field] is None else config[field]
        rows.append(f"| {label} | `{value}` |")  # lora_alpha None means "equal to the rank"
    return "\n".join(rows)


def count_images(folder: str) -> int | None:
    """How many images a data folder holds (None when it is not on this machine)."""
    path = Path(folder).expanduser() if folder else None
    if path is None or not path.is_dir():
        return None
    return sum(1 for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def sample_grid(run_dir: Path) -> Path | None:
    """The run's final validation grid (else its latest one), relative to the run folder; None without samples."""
    samples = run_dir / SAMPLES_DIR
    if (samples / "final.png").exists():
        return Path(SAMPLES_DIR, "final.png")
    steps = sorted(samples.glob("step-*.png")) if samples.is_dir() else []
    return steps[-1].relative_to(run_dir) if steps else None


def samples_section(run_dir: Path, config: dict) -> str:
    """The sample grid with what it shows, or how to get one."""
    grid = sample_grid(run_dir)
    if grid is None:
        return "This run saved no validation samples (set `validation_prompts` in the config to get a grid)."
    prompts, seeds = config.get("validation_prompts") or [], config.get("validation_seeds") or []
    lines = [f"![Validation samples]({grid.as_posix()})", ""]
    if prompts and seeds:
        lines.append(
            f"One row per prompt, one column per seed ({len(prompts)} prompts x {len(seeds)} seeds "
            f"= {len(prompts) * len(seeds)} images, one sample each), "
            f"{config.get('validation_inference_steps', '?')} sampler steps:"
        )
        lines += [""] + [f"{i + 1}. `{p}`" for i, p in enumerate(prompts)]
        lines += ["", f"Seeds: {', '.join(str(s) for s in seeds)}."]
    return "\n".join(lines)


def usage_section(config: dict, lora: bool) -> str:
    """How to load the model with diffusers, and where the single-file exports come from."""
    base = config.get("pretrained_model_name_or_path", "")
    prompt = config.get("instance_prompt", "a photo of sks dog")
    if lora:
        if base.startswith("kit:"):  # the course kit's own model: it resolves the name to a folder
            source = ("from helpers.train.models import resolve_model  # the course kit's own base model\n\n"
                      f'pipe = StableDiffusionPipeline.from_pretrained(resolve_model("{base}"))\n')
        elif Path(base).is_absolute() or Path(base).exists():  # a folder on the trainer's machine
            source = (f"# the base model the adapter was trained on (a local folder, {Path(base).name!r}, "
                      "when it was trained)\n"
                      'pipe = StableDiffusionPipeline.from_pretrained("<the base model\'s folder or Hub id>")\n')
        else:
            source = f'pipe = StableDiffusionPipeline.from_pretrained("{base}")\n'
        load = source + 'pipe.load_lora_weights("<this repository or folder>")'
        export = "`python -m helpers export RUN --kohya OUT.safetensors` writes the adapter for AUTOMATIC1111 or ComfyUI."
    else:
        load = 'pipe = StableDiffusionPipeline.from_pretrained("<this repository or folder>")'
        export = (
            "`python -m helpers export RUN --single-file OUT.safetensors --half` writes one checkpoint "
            "for AUTOMATIC1111 or ComfyUI."
        )
    code = f'from diffusers import StableDiffusionPipeline\n\n{load}\nimage = pipe("{prompt} on a beach").images[0]'
    return f"```python\n{code}\n```\n\n{export}"


def render_model_card(run_dir: str | Path) -> str:
    """The model card's Markdown for a finished run (see :func:`write_model_card`)."""
    run_dir = Path(run_dir)
    config, record = read_run(run_dir)
    lora = is_lora(run_dir, config)
    base = config.get("pretrained_model_name_or_path", "unknown")
    photos = count_images(config.get("instance_data_dir", ""))
    kind = "LoRA adapter" if lora else "fine-tuned model"
    shown = f"`{Path(base).name}` (a local folder)" if Path(base).is_absolute() else f"`{base}`"
    subject = [f"- **Base model:** {shown}", f"- **Instance prompt:** `{config.get('instance_prompt', '')}`"]
    if config.get("with_prior_preservation"):
        subject.append(f"- **Class prompt:** `{config.get('class_prompt', '')}` (prior preservation)")
    if photos is not None:
        subject.append(f"- **Subject photos:** {photos}")
    if record.get("wall_time_s") is not None:
        device = record.get("device_name") or record.get("device", "")
        subject.append(f"- **Training time:** {record['wall_time_s'] / 60:.1f} min on {device}")
    sections = [
        f"---\n{card_metadata(config, lora).rstrip()}\n---",
        f"# DreamBooth {kind}: `{config.get('instance_prompt', run_dir.name)}`",
        f"A DreamBooth {kind} trained with the DreamBooth course kit. {INTRO}",
        "\n".join(subject),
        "## Samples\n\n" + samples_section(run_dir, config),
        "## Training settings\n\n" + settings_table(config) + "\n\nEvery setting is in `config.yaml`.",
        "## Use it\n\n" + usage_section(config, lora),
        "## Licence\n\n" + (KIT_TERMS if kit_made(base) else OPENRAIL_TERMS),
        "## Photos of people\n\n" + CONSENT_NOTE,
    ]
    return "\n\n".join(sections) + "\n"


def write_model_card(run_dir: str | Path) -> Path:
    """Write the run's model card as ``README.md`` in the run folder (replacing an older one).

    Returns:
        The path of the card.
    """
    path = Path(run_dir) / CARD_NAME
    path.write_text(render_model_card(run_dir))
    return path
