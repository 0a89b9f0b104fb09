"""The measures under a comparison: ToyWorld's evaluator judges each arm's images (``cpu`` profile)."""

from __future__ import annotations

from pathlib import Path

from .comparisons import Comparison
from .course import TOY_SUBJECTS, Subject
from .stats import Estimate, share
from .toyworld import metrics
from .toyworld.subjects import SUBJECTS


def is_toyworld(subject: Subject) -> bool:
    """True when ``subject`` is a ToyWorld subject and the ToyWorld evaluator is there to score it."""
    shipped = Path(subject.folder).resolve().is_relative_to(TOY_SUBJECTS.resolve())
    return shipped and subject.name in SUBJECTS and (metrics.EVALUATOR_DIR / "evaluator.safetensors").exists()


def toyworld_scores(subject: Subject, comparison: Comparison, class_prompt: str | None = None) -> dict | None:
    """ToyWorld's measures of each arm, ``{label: {measure: Estimate}}``; None for other subjects.

    Each measure is a share of images with its count and Wilson 95% interval. Subject fidelity
    counts images recognised as the subject, prompt fidelity images that show what their prompt
    asks for; with ``class_prompt``, the images of that prompt are scored for language drift
    instead (the share that show the subject: 0 is no drift).
    """
    if not is_toyworld(subject):
        return None
    scores = {}
    for label in comparison.labels:
        gen = comparison.generations[label]
        own = [(im, p) for im, p in zip(gen.images, gen.prompts) if p != class_prompt]
        row = {}
        if own:
            images, prompts = [im for im, _ in own], [p for _, p in own]
            row["subject_fidelity"] = as_share(metrics.subject_fidelity(images, subject.name), len(images))
            row["prompt_fidelity"] = as_share(metrics.prompt_fidelity(images, prompts), len(images))
        if class_prompt is not None:
            drift_images = comparison.images(label, class_prompt)
            row["language_drift"] = as_share(metrics.language_drift(drift_images, subject.name), len(drift_images))
        scores[label] = row
    return scores


def as_share(value: float, n: int) -> Estimate:
    """A share the evaluator computed over ``n`` images, with its count and 95% interval."""
    return share(round(value * n), n)


def _cell(value) -> str:
    return str(value) if isinstance(value, Estimate) else f"{value:.2f}"


def format_scores(scores: dict | None) -> str:
    """A small text table of :func:`toyworld_scores` (or a note when there are none).

    A share prints as ``0.75 [0.41, 0.93], n=8``: the value, its 95% interval, the images it rests on.
    """
    if not scores:
        return "(no ToyWorld measures: the subject is not a ToyWorld subject, or the evaluator is not built)"
    names = list(next(iter(scores.values())))
    width = max(len(k) for k in scores) + 2
    cells = {label: [_cell(row[n]) if n in row else "-" for n in names] for label, row in scores.items()}
    col = max(len(n) for n in names + [c for row in cells.values() for c in row]) + 2
    lines = [" " * width + "".join(f"{n:>{col}}" for n in names)]
    lines += [f"{label:<{width}}" + "".join(f"{c:>{col}}" for c in row) for label, row in cells.items()]
    return "\n".join(lines)
