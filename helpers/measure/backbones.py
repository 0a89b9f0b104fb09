"""The DreamBooth paper's measures on real models: DINO, CLIP-I, CLIP-T, PRES and DIV.

The paper (Ruiz et al. 2022) judges a fine-tuned model with two pretrained backbones:

=======  ======================================================================  =====================
measure  what it averages                                                        table column
=======  ======================================================================  =====================
DINO     cosine similarity of DINO ViT-S/16 embeddings, generated vs real        subject_fidelity
CLIP-I   the same with CLIP image embeddings                                     subject_similarity
CLIP-T   cosine similarity of each image's CLIP embedding and its prompt's       context_fidelity,
                                                                                 attribute_fidelity
PRES     DINO similarity of plain class-prompt images to the real subject        language_drift
DIV      1 - DINO cosine between images of one prompt ("DIV, DINO-based")        diversity
(copy)   the DINO similarity of each image to its nearest real photo             copying
=======  ======================================================================  =====================

The paper's DIV is an LPIPS distance; the LPIPS package needs torchvision, which the kit
does not install, so diversity here is measured with DINO embeddings and named "DIV, DINO-based".

The columns are named as in ToyWorld's table and read the same images
(:func:`helpers.toyworld.metrics.score_row`): DINO, CLIP-I and copying the instance and
context images, CLIP-T the context and the attribute images apart, DIV the instance images,
so a figure gets one table on every profile. Every cell is a mean with its count and a
bootstrap 95% interval (:mod:`helpers.base.stats`). The backbones are ordinary transformers
models: a Hub id is downloaded once into ``runs/models/hub``; a local folder, or one of
the tiny random backbones the tests and the ``smoke`` profile use (``kit:tiny-dino``,
``kit:tiny-clip``), loads through the same code.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from helpers.base.home import hub_cache_dir
from helpers.base.paths import TOKENIZER_DIR, runs_dir
from helpers.base.stats import Estimate, mean_of, within_prompt_distance
from helpers.train.models import ModelUnavailableError
from helpers.train.prompts import role_images

DINO_MODEL = "facebook/dino-vits16"
CLIP_MODEL = "openai/clip-vit-base-patch32"
TINY_DINO = "kit:tiny-dino"
TINY_CLIP = "kit:tiny-clip"
# The DINO repository's main branch holds only a pickled checkpoint; this commit is the
# Hub's safetensors conversion of the same weights.
HUB_REVISIONS = {DINO_MODEL: "a7a4d161f5c0bd70478c05ca5777ec7cd8848021"}
MODEL_TYPES = {"dino": "vit", "clip": "clip"}  # what a backbone's config.json must say

# Ruiz et al. 2022, Table 1: 30 subjects x 25 prompts x 4 images per method (3,000 images);
# no intervals were published.
PAPER_TABLE_1 = {
    "real images": {"DINO": 0.774, "CLIP-I": 0.885},
    "DreamBooth (Stable Diffusion)": {"DINO": 0.668, "CLIP-I": 0.803, "CLIP-T": 0.305},
    "Textual Inversion (Stable Diffusion)": {"DINO": 0.569, "CLIP-I": 0.780, "CLIP-T": 0.255},
}
PAPER_TABLE_1_IMAGES = 30 * 25 * 4  # generated images behind each method's row


# ------------------------------------------------------------------------------------------- backbones


@dataclass
class Backbone:
    """A loaded backbone: its model, image processor and (CLIP only) tokenizer."""

    name: str
    kind: str  # "dino" or "clip"
    model: torch.nn.Module
    processor: Any
    tokenizer: Any = None

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device


@dataclass
class Backbones:
    """The two backbones a score table needs."""

    dino: Backbone
    clip: Backbone

    @contextmanager
    def on(self, device: str | torch.device | None = None) -> Iterator[Backbones]:
        """Move both models to ``device`` (the GPU when there is one) for a block, then back to the CPU."""
        device = device or measure_device()
        for b in (self.dino, self.clip):
            b.model.to(device)
        try:
            yield self
        finally:
            for b in (self.dino, self.clip):
                b.model.to("cpu")
            if torch.cuda.is_available():
                torch.cuda.empty_cache()


def measure_device() -> str:
    """Where to run the backbones: ``"cuda"`` when there is a GPU, else ``"cpu"``."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def backbone_cache_dir() -> Path:
    """Where Hub backbones are downloaded to: the course home's Hub cache (or ``models/hub`` there)."""
    return hub_cache_dir() or runs_dir() / "models" / "hub"


def _seeded(seed: int, build):
    """``build()`` under its own random seed, leaving the caller's random state as it was."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return build()


def _pil_processor(name: str):
    """The image-processor class ``name``, in its PIL version where transformers has one (no torchvision needed)."""
    import transformers

    return getattr(transformers, f"{name}Pil", None) or getattr(transformers, name)


@dataclass(frozen=True)
class BackboneShape:
    """The size of a randomly initialised backbone: tiny for tests, or the paper's backbones' own."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    patch: int
    image_size: int
    text_hidden: int = 0  # CLIP only; 0: the same as ``hidden``
    projection: int = 16


TINY_SHAPE = BackboneShape(hidden=32, layers=2, heads=4, intermediate=64, patch=8, image_size=32)
DINO_VITS16_SHAPE = BackboneShape(hidden=384, layers=12, heads=6, intermediate=1536, patch=16, image_size=224)
CLIP_B32_SHAPE = BackboneShape(hidden=768, layers=12, heads=12, intermediate=3072, patch=32, image_size=224,
                               text_hidden=512, projection=512)


def build_tiny_dino(out_dir: str | Path, seed: int = 0, image_size: int = 32,
                    shape: BackboneShape = TINY_SHAPE) -> Path:
    """A random DINO-shaped ViT saved as a transformers folder (tiny: tests and ``smoke``; or full-size).

    ``shape=DINO_VITS16_SHAPE`` gives the size of the paper's DINO ViT-S/16 (random weights), for
    checking memory and speed on a GPU without downloading anything.
    """
    from transformers import ViTConfig, ViTModel

    image_size = shape.image_size if shape is not TINY_SHAPE else image_size
    config = ViTConfig(hidden_size=shape.hidden, num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                       intermediate_size=shape.intermediate, image_size=image_size, patch_size=shape.patch)
    model = _seeded(seed, lambda: ViTModel(config, add_pooling_layer=False))
    processor = _pil_processor("ViTImageProcessor")(
        size={"height": image_size, "width": image_size}, image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225])
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    return Path(out_dir)


def build_tiny_clip(out_dir: str | Path, seed: int = 0, image_size: int = 32,
                    shape: BackboneShape = TINY_SHAPE) -> Path:
    """A random CLIP with the kit's tokenizer saved as a transformers folder (tiny, or ``CLIP_B32_SHAPE``)."""
    from transformers import CLIPConfig, CLIPModel, CLIPTokenizer

    image_size = shape.image_size if shape is not TINY_SHAPE else image_size
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
    text_hidden = shape.text_hidden or shape.hidden
    text = {"hidden_size": text_hidden, "intermediate_size": 4 * text_hidden if shape.text_hidden else shape.intermediate,
            "num_hidden_layers": shape.layers, "num_attention_heads": max(1, text_hidden // 64) if shape.text_hidden
            else shape.heads, "vocab_size": len(tokenizer), "max_position_embeddings": tokenizer.model_max_length,
            "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
            "pad_token_id": tokenizer.pad_token_id}
    vision = {"hidden_size": shape.hidden, "intermediate_size": shape.intermediate, "num_hidden_layers": shape.layers,
              "num_attention_heads": shape.heads, "image_size": image_size, "patch_size": shape.patch}
    config = CLIPConfig(text_config=text, vision_config=vision, projection_dim=shape.projection)
    model = _seeded(seed, lambda: CLIPModel(config))
    processor = _pil_processor("CLIPImageProcessor")(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size})
    model.save_pretrained(out_dir, safe_serialization=True)
    processor.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return Path(out_dir)


TINY_BUILDERS = {TINY_DINO: ("tiny-dino", build_tiny_dino), TINY_CLIP: ("tiny-clip", build_tiny_clip)}


def resolve_backbone(name_or_path: str) -> str:
    """A Hub id passes through; a folder must hold ``config.json``; ``kit:tiny-*`` is built on first use."""
    if name_or_path in TINY_BUILDERS:
        folder_name, build = TINY_BUILDERS[name_or_path]
        folder = runs_dir() / "models" / folder_name
        if not (folder / "config.json").exists():
            build(folder)
        return str(folder)
    path = Path(name_or_path).expanduser()
    if path.exists() and not (path / "config.json").exists():
        raise ModelUnavailableError(
            f"{path} exists but is not a transformers model folder (no config.json). Point to the folder "
            "that holds config.json, model.safetensors and preprocessor_config.json (what save_pretrained writes)."
        )
    return str(path) if path.exists() else name_or_path


def _unavailable(kind: str, name: str, source: str, err: Exception) -> ModelUnavailableError:
    from huggingface_hub import constants

    needs = "config.json, model.safetensors and preprocessor_config.json" + (" and the tokenizer" if kind == "clip" else "")
    head = f"Could not load the {kind.upper()} backbone {name!r}: {type(err).__name__}: {err}\n"
    if Path(source).exists():
        return ModelUnavailableError(head + f"The folder must hold {needs} (what save_pretrained writes).")
    cache = backbone_cache_dir()
    where = "You are offline (HF_HUB_OFFLINE=1) and it is not" if constants.HF_HUB_OFFLINE else "It is not"
    return ModelUnavailableError(
        head + f"{where} in the course's cache ({cache}). Run this once with internet to download it there "
        f"(check the Hub id's spelling), or pass a local folder that holds {needs}. "
        f"Offline tests use the tiny random backbones '{TINY_DINO}' and '{TINY_CLIP}'."
    )


def _hub_kwargs(name: str) -> dict:
    return {"cache_dir": str(backbone_cache_dir()), "revision": HUB_REVISIONS.get(name)}


def _check_type(kind: str, name: str, source: str) -> None:
    from transformers import AutoConfig

    model_type = AutoConfig.from_pretrained(source, **_hub_kwargs(name)).model_type
    if model_type != MODEL_TYPES[kind]:
        raise ModelUnavailableError(
            f"{name!r} is a {model_type!r} model, not a {kind.upper()} backbone (config model_type "
            f"{MODEL_TYPES[kind]!r}). Pass e.g. {DINO_MODEL!r} for DINO and {CLIP_MODEL!r} for CLIP."
        )


@functools.lru_cache(maxsize=4)
def load_backbone(kind: str, name_or_path: str) -> Backbone:
    """Load a DINO (``kind="dino"``) or CLIP (``"clip"``) backbone on the CPU, in eval mode (cached).

    Args:
        kind: ``"dino"`` (a ``ViTModel``, its CLS embedding) or ``"clip"`` (a ``CLIPModel``).
        name_or_path: a Hub id, a local folder or ``kit:tiny-dino`` / ``kit:tiny-clip``.
    """
    from transformers import AutoImageProcessor, CLIPModel, CLIPTokenizer, ViTModel

    if kind not in MODEL_TYPES:
        raise ValueError(f"kind must be one of {sorted(MODEL_TYPES)}; got {kind!r}.")
    source = resolve_backbone(name_or_path)
    hub = _hub_kwargs(name_or_path)
    try:
        _check_type(kind, name_or_path, source)
        processor = AutoImageProcessor.from_pretrained(source, **hub)
        if kind == "dino":
            model, tokenizer = ViTModel.from_pretrained(source, add_pooling_layer=False, use_safetensors=True, **hub), None
        else:
            model = CLIPModel.from_pretrained(source, use_safetensors=True, **hub)
            tokenizer = CLIPTokenizer.from_pretrained(source, **hub)
    except (OSError, ValueError) as err:
        raise _unavailable(kind, name_or_path, source, err) from err
    return Backbone(name_or_path, kind, model.eval().requires_grad_(False), processor, tokenizer)


def load_backbones(dino: str = DINO_MODEL, clip: str = CLIP_MODEL) -> Backbones:
    """Both backbones a score table needs (the paper's by default), on the CPU until used."""
    return Backbones(load_backbone("dino", dino), load_backbone("clip", clip))


# ------------------------------------------------------------------------------------------- embeddings


def _image_features(backbone: Backbone, pixels: torch.Tensor) -> torch.Tensor:
    if backbone.kind == "dino":  # the CLS token after the last layer norm, as DINO's own evaluations use
        return backbone.model(pixel_values=pixels).last_hidden_state[:, 0]
    model = backbone.model
    return model.visual_projection(model.vision_model(pixel_values=pixels).pooler_output)


@torch.no_grad()
def embed_images(backbone: Backbone, images: Sequence[Image.Image], batch_size: int = 32) -> torch.Tensor:
    """L2-normalised image embeddings ``(n, d)`` on the CPU, computed in batches on the backbone's device."""
    chunks = []
    for start in range(0, len(images), batch_size):
        batch = [im.convert("RGB") for im in images[start:start + batch_size]]
        pixels = backbone.processor(images=batch, return_tensors="pt")["pixel_values"]
        chunks.append(_image_features(backbone, pixels.to(backbone.device)).float().cpu())
    return F.normalize(torch.cat(chunks), dim=1) if chunks else torch.empty(0, 0)


@torch.no_grad()
def embed_texts(backbone: Backbone, texts: Sequence[str], batch_size: int = 64) -> torch.Tensor:
    """L2-normalised CLIP text embeddings ``(n, d)`` on the CPU."""
    if backbone.kind != "clip":
        raise ValueError(f"Only a CLIP backbone embeds text; {backbone.name!r} is {backbone.kind.upper()}.")
    model, tok, chunks = backbone.model, backbone.tokenizer, []
    for start in range(0, len(texts), batch_size):
        ids = tok(list(texts[start:start + batch_size]), padding=True, truncation=True,
                  max_length=tok.model_max_length, return_tensors="pt").to(backbone.device)
        pooled = model.text_model(input_ids=ids["input_ids"], attention_mask=ids["attention_mask"]).pooler_output
        chunks.append(model.text_projection(pooled).float().cpu())
    return F.normalize(torch.cat(chunks), dim=1) if chunks else torch.empty(0, 0)


# ------------------------------------------------------------------------------------------- measures


def cosine_to_references(embeddings: torch.Tensor, reference_embeddings: torch.Tensor) -> list[float]:
    """Per embedded image: its mean cosine similarity to the embedded references (rows L2-normalised)."""
    if len(embeddings) == 0 or len(reference_embeddings) == 0:
        return []
    return (embeddings @ reference_embeddings.T).mean(dim=1).tolist()


def clip_text(prompt: str, identifier: str | None = None) -> str:
    """The prompt CLIP-T compares with: without the rare-token identifier, which means nothing to CLIP.

    ``clip_text("a photo of sks dog", "sks")`` -> ``"a photo of dog"``.
    """
    return " ".join(w for w in prompt.split() if w != identifier) if identifier else prompt


# ------------------------------------------------------------------------------------------- score tables


def _clip_t(backbones: Backbones, images: list[Image.Image], prompts: list[str], identifier: str | None,
            seed: int) -> Estimate:
    texts = embed_texts(backbones.clip, [clip_text(p, identifier) for p in prompts])
    return mean_of((embed_images(backbones.clip, images) * texts).sum(dim=1).tolist(), seed)


def backbone_scores(
    images_by_prompt: Mapping[str, Sequence[Image.Image]],
    references: Sequence[Image.Image],
    roles: Mapping[str, Sequence[str]],
    identifier: str | None = "sks",
    backbones: Backbones | None = None,
    seed: int = 0,
) -> dict[str, Estimate]:
    """The measures of one finished run, ``{column: Estimate}``, as ToyWorld's table has them.

    Args:
        images_by_prompt: the run's generations per prompt.
        references: the real subject photos.
        roles: the prompts by role, as :func:`helpers.train.prompts.prompt_roles` sorts them:
            ``instance`` and ``context`` images show the subject (DINO, CLIP-I, copying),
            ``context`` and ``attribute`` images are compared with their prompt (CLIP-T, each
            role its own column), ``class`` images give ``language_drift`` (PRES), and the
            ``instance`` images give diversity.
        identifier: the rare token, left out of prompts for CLIP-T.
        backbones: from :func:`load_backbones`; None loads the paper's.
        seed: the bootstrap's seed.
    """
    if not references:
        raise ValueError("Give the real subject photos as references: the measures compare generations with them.")
    backbones = backbones or load_backbones()
    shown, _ = role_images(images_by_prompt, roles, "instance", "context")
    row = {}
    with backbones.on():
        dino_refs, clip_refs = embed_images(backbones.dino, references), embed_images(backbones.clip, references)
        if shown:
            to_refs = embed_images(backbones.dino, shown) @ dino_refs.T
            row["subject_fidelity"] = mean_of(to_refs.mean(dim=1).tolist(), seed)
            row["subject_similarity"] = mean_of(cosine_to_references(embed_images(backbones.clip, shown), clip_refs), seed)
        for role in ("context", "attribute"):
            images, prompts = role_images(images_by_prompt, roles, role)
            if images:
                row[f"{role}_fidelity"] = _clip_t(backbones, images, prompts, identifier, seed)
        drift, _ = role_images(images_by_prompt, roles, "class")
        if drift:
            row["language_drift"] = mean_of(cosine_to_references(embed_images(backbones.dino, drift), dino_refs), seed)
        own, own_prompts = role_images(images_by_prompt, roles, "instance")
        if own:
            row["diversity"] = mean_of(within_prompt_distance(embed_images(backbones.dino, own), own_prompts), seed)
        if shown:
            row["copying"] = mean_of(to_refs.max(dim=1).values.tolist(), seed)
    return row


def backbone_table(
    arms: Mapping[str, Mapping[str, Sequence[Image.Image]]],
    references: Sequence[Image.Image],
    roles: Mapping[str, Sequence[str]],
    identifier: str | None = "sks",
    backbones: Backbones | None = None,
    seed: int = 0,
) -> dict[str, dict[str, Estimate]]:
    """The score table of an experiment, ``{arm label: {column: Estimate}}``; see :func:`backbone_scores`."""
    backbones = backbones or load_backbones()
    return {label: backbone_scores(by_prompt, references, roles, identifier, backbones, seed)
            for label, by_prompt in arms.items()}
