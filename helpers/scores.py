"""The measures under a comparison: ToyWorld's evaluator judges each arm's images (``cpu`` profile)."""

from __future__ import annotations

from pathlib import Path

from .comparisons import Comparison
from .course import TOY_SUBJECTS, Subject
from .toyworld import metrics
from .toyworld.subjects import SUBJECTS


def is_toyworld(subject: Subject) -> bool:
    """True when ``subject`` is a ToyWorld subject and the ToyWorld evaluator is there to score it."""
    shipped = Path(subject.folder).resolve().is_relative_to(TOY_SUBJECTS.resolve())
    return shipped and subject.name in SUBJECTS and (metrics.EVALUATOR_DIR / "evaluator.safetensors").exists()


def toyworld_scores(subject: Subject, comparison: Comparison, class_prompt: str | None = None) -> dict | None:
    """ToyWorld's measures of each arm, ``{label: {measure: value}}``; None for other subjects.

    Subject fidelity counts images recognised as the subject, prompt fidelity images that
    show what their prompt asks for; with ``class_prompt``, the images of that prompt are
    scored for language drift instead (the share that show the subject: 0 is no drift).
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
            row["subject_fidelity"] = metrics.subject_fidelity(images, subject.name)
            row["prompt_fidelity"] = metrics.prompt_fidelity(images, prompts)
        if class_prompt is not None:
            row["language_drift"] = metrics.language_drift(comparison.images(label, class_prompt), subject.name)
        scores[label] = row
    return scores


def format_scores(scores: dict | None) -> str:
    """A small text table of :func:`toyworld_scores` (or a note when there are none)."""
    if not scores:
        return "(no ToyWorld measures: the subject is not a ToyWorld subject, or the evaluator is not built)"
    names = list(next(iter(scores.values())))
    width = max(len(k) for k in scores) + 2
    lines = [" " * width + "".join(f"{n:>18}" for n in names)]
    lines += [f"{label:<{width}}" + "".join(f"{row.get(n, float('nan')):>18.2f}" for n in names)
              for label, row in scores.items()]
    return "\n".join(lines)
