"""The DreamBooth paper's measures, computed with the ToyWorld evaluator instead of CLIP and DINO.

=====================  =====================================================  ===================
ToyWorld measure       what it counts                                         paper counterpart
=====================  =====================================================  ===================
subject_fidelity       share of subject images recognised as the subject      DINO
subject_similarity     mean cosine similarity of embeddings to the photos     CLIP-I
context_fidelity       share of new-place images showing that background     CLIP-T
attribute_fidelity     share of changed-subject images showing the change     CLIP-T
language_drift         share of plain class-prompt images that are the subject  PRES
diversity              mean distance (1 - cosine) between images of a prompt  DIV
copying                mean similarity to the nearest photo                   (memorisation)
=====================  =====================================================  ===================

Every function takes PIL images (any size; they are resized to 64 px). :func:`score_row`
computes them all for one arm.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from helpers.base.paths import DATA_DIR
from helpers.base.stats import wilson_share, within_prompt_distance
from helpers.toyworld import evaluator as ev
from helpers.toyworld import feature_check, world
from helpers.toyworld.subjects import SUBJECTS
from helpers.train.models import load_pipeline
from helpers.train.prompts import role_images
from helpers.train.sampling import generate, start_mean, use_scheduler

EVALUATOR_DIR = DATA_DIR / "toyworld" / "evaluator"
SUBJECT_ROLES = ("instance", "context")  # the prompts whose images show the subject as trained
HELDOUT_SEEDS = 9_000_000  # base-model evaluation scenes; training used seeds below 24,000


@functools.lru_cache(maxsize=2)
def load_evaluator(folder: str | Path = EVALUATOR_DIR) -> ev.Evaluator:
    """The shipped evaluator (loaded once per folder)."""
    path = Path(folder)
    if not (path / "evaluator.safetensors").exists():
        raise FileNotFoundError(
            f"No evaluator in {path}; train one with `python -m helpers toyworld train-evaluator`."
        )
    return ev.load(path)


def _model(model: ev.Evaluator | None) -> ev.Evaluator:
    return model if model is not None else load_evaluator()


@torch.no_grad()
def predict(images: list, model: ev.Evaluator | None = None) -> list[dict]:
    """What the evaluator sees in each image: one dict of attribute values per image."""
    if not images:
        return []
    logits = _model(model)(ev.to_batch(images))
    idx = {k: v.argmax(1).tolist() for k, v in logits.items()}
    return [{k: ev.HEADS[k][idx[k][i]] for k in ev.HEADS} for i in range(len(images))]


@torch.no_grad()
def embed(images: list, model: ev.Evaluator | None = None) -> torch.Tensor:
    """L2-normalised evaluator embeddings ``(n, 128)``."""
    return F.normalize(_model(model).embed(ev.to_batch(images)), dim=1)


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def _matches(pred: dict, wanted: dict) -> bool:
    """Whether a prediction shows every wanted attribute (face accessories only for faces)."""
    return all(pred[k] == v for k, v in wanted.items() if k not in ev.FACE_ONLY or pred["cls"] == "face")


def subject_fidelity(images: list, subject: str, model: ev.Evaluator | None = None) -> float:
    """Share of images recognised as ``subject`` (a key of ``subjects.SUBJECTS``)."""
    preds = predict(images, model)
    return sum(p["subject"] == subject for p in preds) / max(1, len(preds))


def prompt_fidelity(
    images: list,
    prompts: list[str] | str,
    model: ev.Evaluator | None = None,
    keys: tuple[str, ...] | None = None,
) -> float:
    """Share of images that show what their prompt asks for (class, colour, background, accessories).

    Args:
        images: the generations.
        prompts: one prompt per image, or one prompt for all.
        keys: only check these attributes, e.g. ``("background",)`` for recontextualisation.
    """
    if isinstance(prompts, str):
        prompts = [prompts] * len(images)
    preds = predict(images, model)
    hits = 0
    for pred, prompt in zip(preds, prompts):
        wanted = world.parse_prompt(prompt)
        if keys is not None:
            wanted = {k: v for k, v in wanted.items() if k in keys}
        hits += _matches(pred, wanted)
    return hits / max(1, len(preds))


def language_drift(class_images: list, subject: str, model: ev.Evaluator | None = None) -> float:
    """Share of plain class-prompt generations ("a photo of a star") that show the subject: 0 is no drift."""
    return subject_fidelity(class_images, subject, model)


def score_row(images: Mapping[str, Sequence], roles: Mapping[str, Sequence[str]], references: Sequence,
              subject: str, model: ev.Evaluator | None = None) -> dict:
    """Every ToyWorld measure of one arm: the findings' row and, as estimates, a notebook's table row.

    Args:
        images: the arm's generations, ``{prompt: images}``.
        roles: the prompts by role (``instance``, ``context``, ``attribute``, ``class``), as
            :func:`helpers.toyworld.subjects.scoring_prompts` or
            :func:`helpers.train.prompts.prompt_roles` give them; a role may be missing or empty.
        references: the subject's photos.
        subject: the subject's name (a key of ``subjects.SUBJECTS``).

    Returns:
        ``{measure: value}`` (a share of images, or a mean over images), with ``n`` the number
        of images behind each and ``per_image`` the values the means average. Subject
        fidelity, similarity and copying read the instance and context images; the context
        share checks the background, the attribute share the colour or glasses; diversity is
        :func:`~helpers.base.stats.within_prompt_distance` over the instance images.
    """

    own, own_prompts = role_images(images, roles, "instance")
    shown, _ = role_images(images, roles, *SUBJECT_ROLES)
    ctx, ctx_prompts = role_images(images, roles, "context")
    attr, attr_prompts = role_images(images, roles, "attribute")
    cls, cls_prompts = role_images(images, roles, "class")
    refs_e = embed(references, model)
    shown_e = embed(shown, model) if shown else refs_e[:0]
    own_e = embed(own, model) if own else refs_e[:0]
    to_refs = shown_e @ refs_e.T
    per_image = {
        "subject_similarity": to_refs.mean(dim=1).tolist(),
        "copying": to_refs.max(dim=1).values.tolist() if shown else [],
        "diversity": within_prompt_distance(own_e, own_prompts),
    }
    row = {
        "subject_fidelity": subject_fidelity(shown, subject, model),
        "context_fidelity": prompt_fidelity(ctx, ctx_prompts, model, keys=("background",)),
        "attribute_fidelity": prompt_fidelity(attr, attr_prompts, model, keys=("colour", "glasses")),
        "language_drift": language_drift(cls, subject, model),
        "class_fidelity": prompt_fidelity(cls, cls_prompts, model, keys=("cls",)),
        **{k: _mean(v) for k, v in per_image.items()},
    }
    row["n"] = {"subject_fidelity": len(shown), "context_fidelity": len(ctx), "attribute_fidelity": len(attr),
                "language_drift": len(cls), "class_fidelity": len(cls), "subject_similarity": len(shown),
                "copying": len(shown), "diversity": len(per_image["diversity"])}
    row["per_image"] = per_image
    return row


def attribute_accuracy(
    images: list, scenes: list[dict], model: ev.Evaluator | None = None
) -> dict[str, float]:
    """Per-attribute accuracy of images against the scenes they were asked to show."""
    preds = predict(images, model)
    out = {}
    for key in ("cls", "colour", "background", "glasses", "hat"):
        pairs = [
            (p[key], s[key]) for p, s in zip(preds, scenes) if key not in ev.FACE_ONLY or s["cls"] == "face"
        ]
        if pairs:
            out[key] = sum(a == b for a, b in pairs) / len(pairs)
    out["all"] = sum(
        _matches(p, {k: s[k] for k in ("cls", "colour", "background")}) for p, s in zip(preds, scenes)
    )
    out["all"] /= max(1, len(preds))
    return out


def heldout_scenes(n: int, start: int = HELDOUT_SEEDS) -> list[dict]:
    """Random scenes from seeds far from the training range, for judging a base model."""
    return [world.sample_scene(start + i) for i in range(n)]


def _pretraining_recipe(model_path: str | Path) -> dict:
    """The recipe a model was pretrained with (``config`` of its ``kit_model.json``; empty if unknown)."""
    import json

    facts = Path(model_path) / "kit_model.json"
    return json.loads(facts.read_text()).get("config", {}) if facts.exists() else {}


def training_scene_count(model_path: str | Path) -> int:
    """How many scenes the model was pretrained on (from its ``kit_model.json``; 0 if unknown)."""
    return int(_pretraining_recipe(model_path).get("n_images", 0))


def training_captions(model_path: str | Path) -> set[str]:
    """The captions the model was pretrained on, open ones included (empty if unknown).

    A model made before open captions records no share: all its captions were full ones.
    """
    recipe = _pretraining_recipe(model_path)
    share = float(recipe.get("open_caption_share", 0.0))
    return {world.training_caption(world.sample_scene(i), share) for i in range(int(recipe.get("n_images", 0)))}


def evaluate_base_model(
    model_path: str | Path,
    n_prompts: int = 64,
    steps: int = 25,
    guidance: float = 7.5,
    seed: int = 0,
    grid_path: str | Path | None = None,
    batch: int = 16,
    scheduler: str | None = None,
    data_mean: bool = True,
) -> dict:
    """Generate one image per held-out caption and score class, colour and background accuracy.

    Args:
        model_path: a pipeline folder (or ``kit:toyworld``).
        n_prompts: how many held-out scenes (their captions are the prompts).
        steps: sampling steps.
        guidance: classifier-free guidance scale.
        seed: image i starts from the noise of seed ``seed + i``.
        grid_path: also save the generations there as a grid PNG.
        batch: prompts per pipeline call.
        scheduler: a key of ``helpers.train.sampling.SCHEDULERS``; None keeps the model's own.
        data_mean: start from noise with the data's mean (``helpers.train.sampling.initial_latents``).
    """
    from PIL import Image

    pipe = load_pipeline(str(model_path))
    if scheduler is not None:
        use_scheduler(pipe, scheduler)
    pipe.set_progress_bar_config(disable=True)
    scenes = heldout_scenes(n_prompts)
    prompts = [world.caption(s) for s in scenes]
    seen = training_captions(model_path)
    images = generate(
        pipe, prompts, seeds=seed, num_inference_steps=steps, guidance_scale=guidance, batch_size=batch,
        progress=False, data_mean=data_mean,
    ).images
    report = {
        "prompts": n_prompts,
        "steps": steps,
        "guidance": guidance,
        "scheduler": type(pipe.scheduler).__name__,
        "start": "data mean" if data_mean and start_mean(pipe) is not None else "plain noise",
        "accuracy": attribute_accuracy(images, scenes),
        "reference_accuracy_on_renders": attribute_accuracy([world.render(s) for s in scenes], scenes),
        "diversity": _mean(within_prompt_distance(embed(images), ["any caption"] * len(images))),  # across captions
        "captions_not_in_training": sum(p not in seen for p in prompts) / max(1, len(prompts)),
    }
    if grid_path is not None:
        cols = 8
        grid = Image.new("RGB", (cols * 64, ((len(images) + cols - 1) // cols) * 64))
        for k, im in enumerate(images):
            grid.paste(im.resize((64, 64)), ((k % cols) * 64, (k // cols) * 64))
        Path(grid_path).parent.mkdir(parents=True, exist_ok=True)
        grid.save(grid_path)
    return report


# ---- the evaluator against the pixel check (helpers.toyworld.feature_check) ------------------------------------------------------------


def cohen_kappa(both_yes: int, evaluator_only: int, pixel_only: int, both_no: int) -> float:
    """Cohen's kappa of two yes/no raters from their 2x2 counts (nan when chance agreement is 1)."""
    n = both_yes + evaluator_only + pixel_only + both_no
    if n == 0:
        return float("nan")
    observed = (both_yes + both_no) / n
    yes_a, yes_b = (both_yes + evaluator_only) / n, (both_yes + pixel_only) / n
    chance = yes_a * yes_b + (1 - yes_a) * (1 - yes_b)
    return float("nan") if chance >= 1 else round((observed - chance) / (1 - chance), 12) + 0.0  # never -0.0


def agreement(images: list, subject: str, model: ev.Evaluator | None = None) -> dict:
    """How often the evaluator's subject decision and the pixel check agree on ``images``.

    Args:
        images: PIL images or arrays, e.g. generations of "a photo of sks star".
        subject: a key of ``subjects.SUBJECTS``.
        model: an evaluator; None loads the shipped one.

    Returns:
        ``images``, ``both_yes``, ``both_no``, ``evaluator_only``, ``pixel_only``, ``agreement`` (a
        :class:`helpers.base.stats.Estimate` with its Wilson interval), ``kappa``, the two yes-shares
        ``evaluator_yes`` and ``pixel_yes``, and ``per_image`` (the two decisions per image).
    """
    if subject not in SUBJECTS:
        raise KeyError(f"Unknown subject {subject!r}; choose one of {sorted(SUBJECTS)}.")
    pil = [im if isinstance(im, Image.Image) else Image.fromarray(np.asarray(im, np.uint8)) for im in images]
    said = [p["subject"] == subject for p in predict(pil, model)]
    seen = [feature_check.check(im, subject).visible for im in pil]
    counts = {
        "both_yes": sum(a and b for a, b in zip(said, seen)),
        "both_no": sum(not a and not b for a, b in zip(said, seen)),
        "evaluator_only": sum(a and not b for a, b in zip(said, seen)),
        "pixel_only": sum(b and not a for a, b in zip(said, seen)),
    }
    n = len(pil)
    return {
        "subject": subject,
        "images": n,
        **counts,
        "agreement": wilson_share(counts["both_yes"] + counts["both_no"], n),
        "kappa": cohen_kappa(counts["both_yes"], counts["evaluator_only"], counts["pixel_only"], counts["both_no"]),
        "evaluator_yes": wilson_share(sum(said), n),
        "pixel_yes": wilson_share(sum(seen), n),
        "per_image": list(zip(said, seen)),
    }
