"""Export a finished run for other tools: one Stable Diffusion checkpoint file, or a kohya-layout LoRA.

A finished full run is a diffusers pipeline folder. AUTOMATIC1111 and ComfyUI read Stable
Diffusion's original single-file layout instead: every weight in one file, named after the
original code's modules (``model.diffusion_model.input_blocks.1.0...`` for the UNet,
``first_stage_model.`` for the VAE, ``cond_stage_model.transformer.text_model.`` for the
text encoder). The renaming below is built from the model's own config (its number of
levels, layers per level and which levels attend to the prompt), so it holds for Stable
Diffusion's four levels and for the kit's two-level miniature models alike.

A LoRA adapter in diffusers' format is written in kohya's key layout (``lora_unet_...``,
``lora_te_...`` with ``.lora_down.weight``, ``.lora_up.weight`` and ``.alpha``), the LoRA
files those tools read.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from helpers.base.storage import LORA_FILE
from helpers.errors import LearnerError
from helpers.train.dreambooth import load_trained_pipeline
from helpers.train.models import dtype_kwargs

log = logging.getLogger(__name__)

UNET_PREFIX = "model.diffusion_model."
VAE_PREFIX = "first_stage_model."
TEXT_PREFIX = "cond_stage_model.transformer.text_model."
SD_SCALING_FACTOR = 0.18215  # the latent scale the UIs assume for every Stable Diffusion 1.x checkpoint

# Parts of one layer, diffusers name -> original name (the first dotted component after the block).
UNET_RESNET = {
    "norm1": "in_layers.0",
    "conv1": "in_layers.2",
    "time_emb_proj": "emb_layers.1",
    "norm2": "out_layers.0",
    "conv2": "out_layers.3",
    "conv_shortcut": "skip_connection",
}
VAE_RESNET = {"conv_shortcut": "nin_shortcut"}
VAE_ATTENTION = {"group_norm": "norm", "to_q": "q", "to_k": "k", "to_v": "v", "to_out.0": "proj_out"}

# A rule: (diffusers prefix, original prefix, renames of the part that follows).
Rule = tuple[str, str, dict[str, str]]


class ExportError(LearnerError, ValueError):
    """A run or model that cannot be exported as asked."""


# ------------------------------------------------------------------------------------- key mapping


def _layers(config: dict, levels: int) -> list[int]:
    """Layers per level from a config's ``layers_per_block`` (an int, or one int per level)."""
    value = config["layers_per_block"]
    return [int(value)] * levels if isinstance(value, int) else [int(v) for v in value]


def unet_rules(config: dict) -> list[Rule]:
    """How every UNet module is named in the original layout, derived from the UNet's config.

    The original UNet numbers its blocks in one running sequence: ``input_blocks`` (the first
    convolution, then each level's layers and its downsampler), ``middle_block`` (resnet,
    attention, resnet) and ``output_blocks`` (each level's layers, the upsampler riding on the
    last one: at position 1, or 2 when the level attends to the prompt).
    """
    unsupported = [k for k in ("class_embed_type", "addition_embed_type", "encoder_hid_dim") if config.get(k)]
    if unsupported or config.get("mid_block_type", "UNetMidBlock2DCrossAttn") != "UNetMidBlock2DCrossAttn":
        raise ExportError(
            f"This UNet ({', '.join(unsupported) or config.get('mid_block_type')}) is not a Stable Diffusion "
            "1.x/2.x UNet; the single-file export handles those only."
        )
    levels = len(config["block_out_channels"])
    layers = _layers(config, levels)
    rules: list[Rule] = [
        ("time_embedding.linear_1.", "time_embed.0.", {}),
        ("time_embedding.linear_2.", "time_embed.2.", {}),
        ("conv_in.", "input_blocks.0.0.", {}),
        ("conv_norm_out.", "out.0.", {}),
        ("conv_out.", "out.2.", {}),
        ("mid_block.resnets.0.", "middle_block.0.", UNET_RESNET),
        ("mid_block.attentions.0.", "middle_block.1.", {}),
        ("mid_block.resnets.1.", "middle_block.2.", UNET_RESNET),
    ]
    index = 1  # input block 0 is conv_in
    for level in range(levels):
        for j in range(layers[level]):
            rules.append((f"down_blocks.{level}.resnets.{j}.", f"input_blocks.{index}.0.", UNET_RESNET))
            rules.append((f"down_blocks.{level}.attentions.{j}.", f"input_blocks.{index}.1.", {}))
            index += 1
        if level < levels - 1:  # every level but the deepest halves the resolution
            rules.append((f"down_blocks.{level}.downsamplers.0.conv.", f"input_blocks.{index}.0.op.", {}))
            index += 1
    index = 0
    for level, block_type in enumerate(config["up_block_types"]):
        for j in range(layers[levels - 1 - level] + 1):  # up levels have one layer more
            rules.append((f"up_blocks.{level}.resnets.{j}.", f"output_blocks.{index}.0.", UNET_RESNET))
            rules.append((f"up_blocks.{level}.attentions.{j}.", f"output_blocks.{index}.1.", {}))
            index += 1
        if level < levels - 1:
            slot = 2 if "CrossAttn" in block_type else 1
            rules.append(
                (f"up_blocks.{level}.upsamplers.0.conv.", f"output_blocks.{index - 1}.{slot}.conv.", {})
            )
    return rules


def vae_rules(config: dict) -> list[Rule]:
    """How every VAE module is named in the original layout (the decoder's levels count down)."""
    levels = len(config["block_out_channels"])
    layers = _layers(config, levels)
    rules: list[Rule] = [
        ("encoder.conv_norm_out.", "encoder.norm_out.", {}),
        ("decoder.conv_norm_out.", "decoder.norm_out.", {}),
    ]
    for part in ("encoder", "decoder"):
        rules += [(f"{part}.{name}.", f"{part}.{name}.", {}) for name in ("conv_in", "conv_out")]
        rules += [
            (f"{part}.mid_block.resnets.{j}.", f"{part}.mid.block_{j + 1}.", VAE_RESNET) for j in (0, 1)
        ]
        rules.append((f"{part}.mid_block.attentions.0.", f"{part}.mid.attn_1.", VAE_ATTENTION))
    rules += [(f"{name}.", f"{name}.", {}) for name in ("quant_conv", "post_quant_conv")]
    for level in range(levels):
        for j in range(layers[level]):
            rules.append(
                (f"encoder.down_blocks.{level}.resnets.{j}.", f"encoder.down.{level}.block.{j}.", VAE_RESNET)
            )
        rules.append(
            (
                f"encoder.down_blocks.{level}.downsamplers.0.conv.",
                f"encoder.down.{level}.downsample.conv.",
                {},
            )
        )
        # The original decoder numbers its levels from the smallest resolution up.
        original = levels - 1 - level
        for j in range(layers[original] + 1):
            rules.append(
                (f"decoder.up_blocks.{level}.resnets.{j}.", f"decoder.up.{original}.block.{j}.", VAE_RESNET)
            )
        rules.append(
            (f"decoder.up_blocks.{level}.upsamplers.0.conv.", f"decoder.up.{original}.upsample.conv.", {})
        )
    return rules


def rename(key: str, rules: list[Rule]) -> str:
    """The original name of one diffusers weight name, by the longest rule that matches it."""
    matches = [rule for rule in rules if key.startswith(rule[0])]
    if not matches:
        raise ExportError(
            f"No original-layout name for the weight {key!r}: the export does not know this module."
        )
    source, target, parts = max(matches, key=lambda rule: len(rule[0]))
    rest = key[len(source) :]
    for old, new in parts.items():
        if rest.startswith(old + "."):
            rest = new + rest[len(old) :]
            break
    return target + rest


def convert_unet(state_dict: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """A diffusers UNet state dict under its original names (``model.diffusion_model.``)."""
    rules = unet_rules(config)
    return distinct({UNET_PREFIX + rename(k, rules): v for k, v in state_dict.items()}, state_dict)


def convert_vae(state_dict: dict[str, torch.Tensor], config: dict) -> dict[str, torch.Tensor]:
    """A diffusers VAE state dict under its original names; attention weights become 1x1 convolutions."""
    rules = vae_rules(config)
    out = {}
    for key, value in state_dict.items():
        new = VAE_PREFIX + rename(key, rules)
        if ".mid.attn_1." in new and new.endswith(".weight") and value.dim() == 2:
            value = value[:, :, None, None]  # the original attention projects with 1x1 convolutions
        out[new] = value
    return distinct(out, state_dict)


def distinct(converted: dict, original: dict) -> dict:
    """``converted``, after checking that no two weights were given the same name."""
    if len(converted) != len(original):
        raise ExportError(
            f"{len(original) - len(converted)} weights would overwrite others in the original layout; "
            "this model's structure is not one the export understands."
        )
    return converted


def convert_text_encoder(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A CLIP text encoder state dict under ``cond_stage_model.transformer.text_model.`` (plus position ids)."""
    out = {TEXT_PREFIX + k.removeprefix("text_model."): v for k, v in state_dict.items()}
    positions = out[TEXT_PREFIX + "embeddings.position_embedding.weight"].shape[0]
    out.setdefault(TEXT_PREFIX + "embeddings.position_ids", torch.arange(positions)[None])
    return out


# ---------------------------------------------------------------------------------------- run folders


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """Every tensor in a model folder's safetensors files (shards joined; fp16 variants skipped)."""
    from safetensors.torch import load_file

    files = [p for p in sorted(folder.glob("*.safetensors")) if len(p.name.split(".")) == 2]
    if not files:
        raise ExportError(
            f"{folder} holds no .safetensors weights; is this a finished run's pipeline folder?"
        )
    weights: dict[str, torch.Tensor] = {}
    for path in files:
        weights.update(load_file(path))
    return weights


def export_pipeline(run_dir: str | Path, out_dir: str | Path, half: bool = False, ema: bool = False) -> Path:
    """Write a finished run as a whole diffusers folder that ``StableDiffusionPipeline.from_pretrained`` loads.

    For a run that saved only its trained parts (the ``gpu`` profile) this puts them into their base
    model; a LoRA run's adapter is fused into the base weights. Use it to take a run out of the course.

    Args:
        run_dir: a finished run folder.
        out_dir: a new or empty folder.
        half: float16 weights (about 2 GB for Stable Diffusion 1.x instead of 4).
        ema: the EMA weights instead of the trained ones.
    """
    import torch as _torch

    out_dir = Path(out_dir)
    if out_dir.exists() and (not out_dir.is_dir() or any(out_dir.iterdir())):
        raise ExportError(f"{out_dir} exists and is not an empty folder: choose a new folder for the pipeline.")
    if not Path(run_dir).is_dir():
        raise ExportError(f"{run_dir} is not a folder: point to a finished run's folder.")
    pipe = load_trained_pipeline(run_dir, ema=ema, torch_dtype=_torch.float16 if half else None)
    if getattr(pipe, "get_active_adapters", None) and pipe.get_active_adapters():
        pipe.fuse_lora()
        pipe.unload_lora_weights()
    pipe.save_pretrained(out_dir, safe_serialization=True)
    return out_dir


def check_full_run(run_dir: Path) -> None:
    """Raise with advice when ``run_dir`` is not a finished full run (a pipeline folder)."""
    if (run_dir / "model_index.json").exists():
        return
    if (run_dir / "base_model.json").exists() and (run_dir / "unet").is_dir():
        raise ExportError(
            f"{run_dir} holds only the parts its run trained (the gpu profile saves them so). Write the whole "
            "model first with `python -m helpers export RUN --pipeline OUT`, then export OUT as one file."
        )
    if (run_dir / LORA_FILE).exists():
        raise ExportError(
            f"{run_dir} is a LoRA run (an adapter, not a whole model): export it with --kohya OUT.safetensors "
            "(export_kohya_lora), which AUTOMATIC1111 and ComfyUI load on top of the base model."
        )
    raise ExportError(
        f"{run_dir} is not a finished run (no model_index.json). Point to the run folder that holds unet/, "
        "vae/ and text_encoder/; an unfinished run can be resumed with resume_from_checkpoint: latest."
    )


def single_file_state_dict(
    run_dir: str | Path, half: bool = False, ema: bool = False
) -> dict[str, torch.Tensor]:
    """A run's UNet, VAE and text encoder as one state dict in Stable Diffusion's original layout.

    Args:
        run_dir: a finished full run (a diffusers pipeline folder).
        half: store floating-point weights in float16 (half the size, what the UIs use).
        ema: take the EMA weights (``unet_ema/``, and ``text_encoder_ema/`` when present).
    """
    run_dir = Path(run_dir)
    check_full_run(run_dir)
    unet_dir = run_dir / ("unet_ema" if ema else "unet")
    text_dir = (
        run_dir / "text_encoder_ema"
        if ema and (run_dir / "text_encoder_ema").is_dir()
        else run_dir / "text_encoder"
    )
    if ema and not unet_dir.is_dir():
        raise ExportError(f"{run_dir} has no unet_ema/: train with use_ema: true to get EMA weights.")

    def config(folder: Path) -> dict:
        return json.loads((folder / "config.json").read_text())

    state = {
        **convert_unet(read_weights(unet_dir), config(unet_dir)),
        **convert_vae(read_weights(run_dir / "vae"), config(run_dir / "vae")),
        **convert_text_encoder(read_weights(text_dir)),
    }
    if half:
        state = {k: v.half() if v.is_floating_point() else v for k, v in state.items()}
    return {k: v.contiguous() for k, v in state.items()}


def export_single_file(
    run_dir: str | Path, out_path: str | Path, half: bool = False, ema: bool = False
) -> Path:
    """Write a finished full run as one ``.safetensors`` checkpoint that AUTOMATIC1111 and ComfyUI load.

    Args:
        run_dir: a finished full run (a diffusers pipeline folder).
        out_path: the file to write (``.safetensors``).
        half: float16 weights (about 2 GB for Stable Diffusion 1.x instead of 4).
        ema: export the EMA weights instead of the trained ones.

    Returns:
        The path written. Load it back with ``StableDiffusionPipeline.from_single_file(out_path,
        config=run_dir)`` (see :func:`load_single_file`).
    """
    from safetensors.torch import save_file

    out_path = Path(out_path)
    if out_path.suffix != ".safetensors":
        raise ExportError(f"{out_path}: name the export *.safetensors (the UIs read that format safely).")
    state = single_file_state_dict(run_dir, half=half, ema=ema)
    scale = json.loads((Path(run_dir) / "vae" / "config.json").read_text()).get("scaling_factor")
    if scale is not None and abs(scale - SD_SCALING_FACTOR) > 1e-6:
        log.warning(
            "This model's VAE scales latents by %.4g, not Stable Diffusion's %s: the file holds weights only, so "
            "tools that assume Stable Diffusion's scale will draw it wrongly. diffusers reads the scale from "
            "config=RUN_FOLDER.",
            scale,
            SD_SCALING_FACTOR,
        )
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_path), metadata={"format": "pt"})
    return out_path


def load_single_file(path: str | Path, config_dir: str | Path, text_encoder=None, torch_dtype=None):
    """Load a single-file checkpoint with diffusers, offline, using a pipeline folder for the configs.

    Args:
        path: the ``.safetensors`` checkpoint.
        config_dir: a pipeline folder of the same architecture (the run itself, or its base model):
            diffusers reads every component's config, the tokenizer and the scheduler from it.
        text_encoder: a loaded text encoder to use; None builds it from the checkpoint's own
            weights (with transformers 5, diffusers 0.42 would load it empty, see
            :func:`text_encoder_from_single_file`).
        torch_dtype: e.g. ``torch.float16``; None keeps float32.
    """
    from diffusers import StableDiffusionPipeline

    if text_encoder is None:
        text_encoder = text_encoder_from_single_file(path, config_dir).to(torch_dtype or torch.float32)
    pipe = StableDiffusionPipeline.from_single_file(
        str(path),
        config=str(config_dir),
        text_encoder=text_encoder,
        local_files_only=True,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
        **dtype_kwargs(torch_dtype),
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def text_encoder_from_single_file(path: str | Path, config_dir: str | Path):
    """The CLIP text encoder stored in a single-file checkpoint, built from ``config_dir/text_encoder``'s config.

    diffusers 0.42 renames these weights to ``text_model.``-prefixed names that transformers 5's
    ``CLIPTextModel`` no longer has, so they would load as nothing; this reads them directly.
    """
    from safetensors import safe_open
    from transformers import CLIPTextConfig, CLIPTextModel

    model = CLIPTextModel(CLIPTextConfig.from_pretrained(Path(config_dir) / "text_encoder"))
    with safe_open(str(path), framework="pt") as f:
        names = [k for k in f.keys() if k.startswith(TEXT_PREFIX)]  # noqa: SIM118 (not iterable)
        weights = {k.removeprefix(TEXT_PREFIX): f.get_tensor(k) for k in names}
    weights.pop("embeddings.position_ids", None)
    expected = set(model.state_dict())
    if set(weights) != expected:
        raise ExportError(
            f"{path} does not hold this text encoder: {len(expected - set(weights))} weights missing, "
            f"{len(set(weights) - expected)} unexpected. Is config_dir the run (or base model) it was exported from?"
        )
    model.load_state_dict({k: v.float() for k, v in weights.items()})
    return model.eval()


# ------------------------------------------------------------------------------------------ kohya LoRA

KOHYA_PREFIXES = {"unet": "lora_unet_", "text_encoder": "lora_te_"}
PEFT_PARTS = {"lora_A": "lora_down", "lora_B": "lora_up"}  # peft's names -> kohya's


def lora_alpha(metadata: dict | None, component: str, module: str, rank: int) -> float:
    """A module's LoRA alpha from diffusers' adapter metadata (its pattern, else the adapter's); else ``rank``.

    Without metadata diffusers loads an adapter with alpha = rank (scale 1), so that is the default.
    """
    if not metadata:
        return float(rank)
    pattern = metadata.get(f"{component}.alpha_pattern") or {}
    for key, value in pattern.items():
        if module == key or module.endswith("." + key):
            return float(value)
    return float(metadata.get(f"{component}.lora_alpha", rank))


def kohya_module_name(component: str, module: str) -> str:
    """``("unet", "down_blocks.1.attentions.0...to_q")`` -> ``"lora_unet_down_blocks_1_attentions_0_..._to_q"``.

    Text-encoder names keep CLIP's ``text_model.`` level, as the UIs expect (transformers 5 drops it).
    """
    if component not in KOHYA_PREFIXES:
        raise ExportError(
            f"LoRA weights for {component!r}: the kohya layout here covers Stable Diffusion 1.x's "
            f"{' and '.join(KOHYA_PREFIXES)} only."
        )
    if component == "text_encoder" and not module.startswith("text_model."):
        module = "text_model." + module
    return KOHYA_PREFIXES[component] + module.replace(".", "_")


def read_lora_file(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None]:
    """An adapter file's tensors and diffusers' adapter metadata (None when the file has none)."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    with safe_open(str(path), framework="pt") as f:
        raw = (f.metadata() or {}).get("lora_adapter_metadata")
    return load_file(str(path)), json.loads(raw) if raw else None


def kohya_state_dict(lora: dict[str, torch.Tensor], metadata: dict | None = None) -> dict[str, torch.Tensor]:
    """A diffusers/peft LoRA state dict (``unet.<module>.lora_A.weight`` ...) in kohya's key layout.

    Args:
        lora: the adapter's tensors, keys prefixed by component (``unet.``, ``text_encoder.``).
        metadata: diffusers' adapter metadata (``unet.lora_alpha`` ...); None means alpha = rank.

    Returns:
        ``lora_unet_<module>.lora_down.weight`` / ``.lora_up.weight`` / ``.alpha`` (and ``lora_te_``).
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in lora.items():
        component, _, rest = key.partition(".")
        module, part, suffix = rest.rsplit(".", 2)
        if part not in PEFT_PARTS or suffix != "weight":
            raise ExportError(
                f"{key!r} is not a peft LoRA weight (<component>.<module>.lora_A.weight / lora_B.weight); "
                "save the adapter with diffusers' save_lora_weights."
            )
        name = kohya_module_name(component, module)
        out[f"{name}.{PEFT_PARTS[part]}.weight"] = value.contiguous()
        if part == "lora_A":  # rank = rows of the down projection
            alpha = lora_alpha(metadata, component, module, value.shape[0])
            out[f"{name}.alpha"] = torch.tensor(alpha, dtype=value.dtype)
    return out


def export_kohya_lora(run_dir: str | Path, out_path: str | Path, half: bool = False) -> Path:
    """Write a LoRA run's adapter in kohya's layout, the LoRA files AUTOMATIC1111 and ComfyUI read.

    Args:
        run_dir: a LoRA run folder (holds ``pytorch_lora_weights.safetensors``), or that file itself.
        out_path: the ``.safetensors`` file to write.
        half: store the weights in float16.
    """
    from safetensors.torch import save_file

    run_dir, out_path = Path(run_dir), Path(out_path)
    source = run_dir if run_dir.is_file() else run_dir / LORA_FILE
    if not source.exists():
        hint = " It is a full run: use --single-file." if (run_dir / "model_index.json").exists() else ""
        raise ExportError(f"{run_dir} holds no LoRA adapter ({LORA_FILE}).{hint}")
    if out_path.suffix != ".safetensors":
        raise ExportError(f"{out_path}: name the export *.safetensors (the UIs read that format safely).")
    state = kohya_state_dict(*read_lora_file(source))
    if half:
        state = {k: v.half() for k, v in state.items()}
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(out_path), metadata={"format": "pt"})
    return out_path


def kohya_names(pipe) -> dict[str, tuple[str, str]]:
    """Every kohya module name the pipeline's UNet and text encoder can carry -> (component, module)."""
    names = {}
    for component in KOHYA_PREFIXES:
        for module, _ in getattr(pipe, component).named_modules():
            if module:
                names[kohya_module_name(component, module)] = (component, module)
    return names


def read_kohya_lora(path: str | Path, pipe) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """A kohya-layout LoRA file back in diffusers/peft form, its module names resolved against ``pipe``.

    Returns:
        The state dict (``unet.<module>.lora_A.weight`` ...) and each module's alpha
        (``"unet.<module>"`` -> alpha).
    """
    from safetensors.torch import load_file

    names = kohya_names(pipe)
    state, alphas = {}, {}
    for key, value in load_file(str(path)).items():
        name, _, part = key.partition(".")
        if name not in names:
            raise ExportError(
                f"{path}: {name!r} names no module of this pipeline's UNet or text encoder; is it a LoRA for "
                "this base model (Stable Diffusion 1.x layout)?"
            )
        component, module = names[name]
        if part == "alpha":
            alphas[f"{component}.{module}"] = float(value)
            continue
        peft_part = {v: k for k, v in PEFT_PARTS.items()}.get(part.removesuffix(".weight"))
        if peft_part is None:
            raise ExportError(f"{path}: {key!r} is not a kohya LoRA weight (lora_down / lora_up / alpha).")
        state[f"{component}.{module}.{peft_part}.weight"] = value
    return state, alphas
