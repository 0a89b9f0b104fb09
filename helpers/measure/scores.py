"""The measures under a figure: one table per comparison, on every profile.

Which judge scores the images depends on the subject, never on a branch in the notebook:

- a ToyWorld subject (the ``cpu`` profile) is judged by ToyWorld's evaluator, with the same
  row the findings use (:func:`helpers.toyworld.metrics.score_row`): the share of images it
  recognises as the subject, that show the new place or the new look their prompt asks for,
  and so on;
- any other subject (the real model on ``gpu``, the tiny model on ``smoke``) is judged by the
  DreamBooth paper's backbones (:mod:`helpers.measure.backbones`): DINO, CLIP-I, CLIP-T, PRES and a
  DINO-based diversity, with the profile's ``dino_model`` and ``clip_model``.

Both give a :class:`ScoreTable` with the same columns, read from the same images: the prompts
are sorted once by what they ask (:func:`helpers.train.prompts.prompt_roles`), so a figure has
one table on every profile. Each cell is an :class:`~helpers.base.stats.Estimate`: the value,
its 95% interval and the number of images it rests on. ``score_comparison(...)`` also saves the table in the course home
(``scores/<name>.json``) when given a ``name``, so ``course-kit findings-table`` can gather the
tables of a whole course into the README's findings table.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from helpers.base.paths import runs_dir
from helpers.base.stats import Estimate, format_table, mean_of, wilson_share
from helpers.measure import backbones as measures
from helpers.profiles import get_profile
from helpers.sample import Comparison
from helpers.toyworld import metrics
from helpers.toyworld.subjects import SUBJECTS
from helpers.train.models import ModelUnavailableError
from helpers.train.prompts import prompt_roles
from helpers.train.settings import TOY_SUBJECTS, Subject, subject_photos

# The columns of every score table, in order, and what each one means on either judge.
COLUMNS = ("subject_fidelity", "subject_similarity", "context_fidelity", "attribute_fidelity", "language_drift",
           "diversity", "copying")
TOYWORLD_HEADERS = {
    "subject_fidelity": "subject (share recognised)",
    "subject_similarity": "subject (evaluator cosine)",
    "context_fidelity": "new place (share shown)",
    "attribute_fidelity": "new look (share shown)",
    "language_drift": "drift (share)",
    "diversity": "diversity (evaluator)",
    "copying": "copying (evaluator)",
}
BACKBONE_HEADERS = {
    "subject_fidelity": "subject (DINO)",
    "subject_similarity": "subject (CLIP-I)",
    "context_fidelity": "new place (CLIP-T)",
    "attribute_fidelity": "new look (CLIP-T)",
    "language_drift": "drift (PRES)",
    "diversity": "diversity (DIV, DINO-based)",
    "copying": "copying (DINO)",
}
SHARE_COLUMNS = ("subject_fidelity", "context_fidelity", "attribute_fidelity", "language_drift")  # ToyWorld's counts
SCORES_DIR = "scores"  # inside the course home: one JSON per scored figure


@dataclass
class ScoreTable:
    """The measures of each arm of a figure, ``rows[label][column]``, and how they were taken.

    ``judge`` names what scored the images; ``note`` says why a table is empty (no photos,
    a backbone that could not be loaded). ``print(table)`` shows it with counts and intervals.
    """

    rows: dict[str, dict[str, Estimate]] = field(default_factory=dict)
    judge: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def columns(self) -> list[str]:
        """The columns some row fills, in :data:`COLUMNS` order."""
        return [c for c in COLUMNS if any(c in row for row in self.rows.values())]

    def __str__(self) -> str:
        return format_scores(self)

    def to_dict(self) -> dict:
        """A JSON-ready form: values, intervals and counts, no per-image samples."""
        cells = {label: {c: {"value": e.value, "low": e.low, "high": e.high, "n": e.n, "kind": e.kind}
                         for c, e in row.items()} for label, row in self.rows.items()}
        return {"judge": self.judge, "headers": self.headers, "note": self.note, "rows": cells}


def is_toyworld(subject: Subject) -> bool:
    """True when ``subject`` is a ToyWorld subject and the ToyWorld evaluator is there to score it."""
    shipped = Path(subject.folder).resolve().is_relative_to(TOY_SUBJECTS.resolve())
    return shipped and subject.name in SUBJECTS and (metrics.EVALUATOR_DIR / "evaluator.safetensors").exists()


def as_share(value: float, n: int) -> Estimate:
    """A share the evaluator computed over ``n`` images, with its count and 95% interval."""
    return wilson_share(round(value * n), n)


def reference_photos(subject: Subject) -> list[Image.Image]:
    """The subject's own photos, as the measures compare generations with them."""
    return subject_photos(subject)


# ------------------------------------------------------------------------------------- ToyWorld


def _toyworld_row(subject: Subject, by_prompt: Mapping[str, Sequence[Image.Image]], references,
                  roles: Mapping[str, list[str]], seed: int) -> dict[str, Estimate]:
    """One arm's ToyWorld measures: the findings' row (:func:`~helpers.toyworld.metrics.score_row`) as estimates."""
    measured = metrics.score_row(by_prompt, roles, references, subject.name)
    n, per_image = measured["n"], measured["per_image"]
    row = {c: as_share(measured[c], n[c]) for c in SHARE_COLUMNS if n[c]}
    row |= {c: mean_of(values, seed) for c, values in per_image.items() if values}
    return {c: row[c] for c in COLUMNS if c in row}


# ------------------------------------------------------------------------------------- one call


def _arms_of(comparison: Comparison) -> dict[str, dict[str, list[Image.Image]]]:
    return {label: {p: comparison.images(label, p) for p in comparison.prompts} for label in comparison.labels}


def score_arms(subject: Subject, arms: Mapping[str, Mapping[str, Sequence[Image.Image]]],
               class_prompt: str | None = None, profile=None, seed: int = 0,
               roles: Mapping[str, list[str]] | None = None) -> ScoreTable:
    """Score each arm's images, ``{label: {prompt: images}}``, with the judge that fits the subject.

    Args:
        subject: whose photos the images should show (ToyWorld's evaluator for a ToyWorld
            subject, else the profile's DINO and CLIP backbones).
        arms: the images of each arm by prompt.
        class_prompt: the plain class prompt; its images are scored for language drift only.
            Every other prompt is sorted by :func:`~helpers.train.prompts.prompt_roles`: the
            instance and context images show the subject, the context and attribute images
            are checked against what their prompt asks, diversity reads the instance images.
        profile: the profile whose backbones to use (None: the current one).
        seed: the bootstrap's seed.
        roles: the prompts by role, where :func:`~helpers.train.prompts.prompt_roles` would
            not know them (a new look for a subject of your own); None sorts them.

    Returns:
        A :class:`ScoreTable`; where the backbones cannot be loaded, an empty one whose note
        says why and what to do (the figure above it is still there).
    """
    try:
        references = reference_photos(subject)
    except Exception as err:  # noqa: BLE001 - any unreadable folder: the note says which
        return ScoreTable(note=f"(no measures: the subject's photos could not be read: {err})")
    roles = roles or prompt_roles(subject, [p for by_prompt in arms.values() for p in by_prompt], class_prompt)
    if is_toyworld(subject):
        rows = {label: _toyworld_row(subject, by_prompt, references, roles, seed) for label, by_prompt in arms.items()}
        return ScoreTable(rows, "ToyWorld evaluator", TOYWORLD_HEADERS)
    profile = profile or get_profile()
    try:
        backbones = measures.load_backbones(profile.dino_model, profile.clip_model)
    except ModelUnavailableError as err:
        judge = f"{profile.dino_model} + {profile.clip_model}"
        return ScoreTable(judge=judge, note=f"(no measures from {judge}: {str(err).splitlines()[-1]})")
    rows = measures.backbone_table(arms, references, roles, subject.identifier, backbones, seed)
    return ScoreTable(rows, f"{profile.dino_model} + {profile.clip_model}", BACKBONE_HEADERS)


def score_comparison(subject: Subject, comparison: Comparison, class_prompt: str | None = None,
                     name: str | None = None, profile=None, roles: Mapping[str, list[str]] | None = None) -> ScoreTable:
    """The measure table of a comparison figure, on every profile (see :func:`score_arms`).

    Args:
        name: where given (e.g. ``"01_learning_rate"``), the table is also saved as
            ``scores/<name>.json`` in the course home, for ``course-kit findings-table``.
    """
    table = score_arms(subject, _arms_of(comparison), class_prompt, profile, roles=roles)
    if name and table.rows:
        save_scores(table, name, subject, profile)
    return table


def save_scores(table: ScoreTable, name: str, subject: Subject, profile=None) -> Path:
    """Write a score table to ``scores/<name>.json`` in the course home, with its profile and subject."""
    folder = runs_dir() / SCORES_DIR
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    record = {"name": name, "profile": (profile or get_profile()).name, "subject": subject.name, **table.to_dict()}
    path.write_text(json.dumps(record, indent=2) + "\n")
    return path


def load_saved_scores(folder: str | Path | None = None) -> dict[str, dict]:
    """Every saved score table of a course home, ``{name: record}`` (see :func:`save_scores`)."""
    folder = Path(folder) if folder else runs_dir() / SCORES_DIR
    return {p.stem: json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))}


# ------------------------------------------------------------------------------------- printing


def _cell(value) -> str:
    return str(value) if isinstance(value, Estimate) else f"{value:.2f}"


def format_scores(scores: ScoreTable | dict | None) -> str:
    """A small text table of a :class:`ScoreTable` (or of ``{label: {column: value}}``).

    An estimate prints as ``0.75 [0.41, 0.93], n=8``: the value, its 95% interval, the images it
    rests on. A table without rows prints its note.
    """
    if isinstance(scores, ScoreTable):
        if not scores.rows:
            return scores.note or "(no measures)"
        text = format_table(scores.rows, scores.headers)
        return f"{text}\nscored by: {scores.judge}; 95% intervals, n = images"
    if not scores:
        return "(no ToyWorld measures: the subject is not a ToyWorld subject, or the evaluator is not built)"
    names = list(next(iter(scores.values())))
    width = max(len(k) for k in scores) + 2
    cells = {label: [_cell(row[n]) if n in row else "-" for n in names] for label, row in scores.items()}
    col = max(len(n) for n in names + [c for row in cells.values() for c in row]) + 2
    lines = [" " * width + "".join(f"{n:>{col}}" for n in names)]
    lines += [f"{label:<{width}}" + "".join(f"{c:>{col}}" for c in row) for label, row in cells.items()]
    return "\n".join(lines)
