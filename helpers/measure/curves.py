"""The sweet spot of notebook 01, measured: subject fidelity and the new place against training steps.

Each DreamBooth run saves a grid of validation samples every ``validation_steps`` updates
(:func:`helpers.figures.validation_samples` cuts them back into images). Scoring every saved
step of a run with the judge of :func:`helpers.measure.scores.score_arms` gives the study's central
picture without sampling anything again: likeness to the subject rises with the steps, and
once the model overfits, the prompt stops being followed. Each point rests on the few images
of one grid, so every point carries its count and 95% interval.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from PIL import Image

from helpers.base.stats import Estimate, format_table
from helpers.figures import validation_samples
from helpers.measure.scores import ScoreTable, score_arms
from helpers.train.settings import Subject

CURVE_COLUMNS = ("subject_fidelity", "context_fidelity")  # the two panels of the plot


@dataclass(frozen=True)
class CurvePoint:
    """One measure of one saved step of one run: the tidy form of the curves."""

    run: str  # the run's label, e.g. "high LR 5e-06"
    step: int  # training steps done when the grid was sampled
    column: str  # a score-table column, e.g. "subject_fidelity"
    estimate: Estimate


@dataclass
class StepScores:
    """Every saved step of several runs, scored: ``points``, and the judge's column names.

    ``note`` says why there are no points (a backbone that could not be loaded).
    ``print(scores)`` shows one row per run and step, with counts and intervals.
    """

    points: list[CurvePoint] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)
    judge: str = ""
    note: str = ""

    @property
    def runs(self) -> list[str]:
        """The run labels, in the order they were scored."""
        return list(dict.fromkeys(p.run for p in self.points))

    def series(self, run: str, column: str) -> tuple[list[int], list[Estimate]]:
        """The steps and estimates of one run's curve for one column, by step."""
        chosen = sorted((p.step, p.estimate) for p in self.points if p.run == run and p.column == column)
        return [s for s, _ in chosen], [e for _, e in chosen]

    def __str__(self) -> str:
        if not self.points:
            return self.note or "(no measures)"
        rows: dict[str, dict[str, Estimate]] = {}
        for p in sorted(self.points, key=lambda p: (self.runs.index(p.run), p.step)):
            rows.setdefault(f"{p.run}, step {p.step}", {})[p.column] = p.estimate
        return f"{format_table(rows, self.headers)}\nscored by: {self.judge}; 95% intervals, n = images"


def step_number(label: str, max_steps: int) -> int:
    """The training step of a grid label: ``"step 50"`` -> 50, ``"final"`` -> ``max_steps``."""
    if label == "final":
        return int(max_steps)
    if label.startswith("step ") and label[5:].isdigit():
        return int(label[5:])
    raise ValueError(f"'{label}' is not a grid label: expected 'step N' or 'final' (see validation_grids).")


def _max_steps(run: str | Path) -> int:
    config = yaml.safe_load((Path(run) / "config.yaml").read_text()) or {}
    return int(config.get("max_train_steps", 0))


def samples_by_step(run: str | Path) -> dict[int, dict[str, list[Image.Image]]]:
    """A run's validation images by training step, ``{50: {prompt: images}, ..., max_train_steps: ...}``.

    The final grid counts as step ``max_train_steps``; where a step grid was also saved at that
    step, that one is kept (both show the same weights).
    """
    samples = validation_samples(run)  # raises with what to do when the run saved none
    by_step: dict[int, dict[str, list[Image.Image]]] = {}
    max_steps = _max_steps(run)
    for label, by_prompt in samples.items():
        by_step.setdefault(step_number(label, max_steps), by_prompt)
    return by_step


def _points(run: str, table: ScoreTable) -> list[CurvePoint]:
    return [CurvePoint(run, int(arm), column, estimate)
            for arm, row in table.rows.items() for column, estimate in row.items()]


def score_steps(subject: Subject, runs: Mapping[str, str | Path], class_prompt: str | None = None,
                profile=None, seed: int = 0) -> StepScores:
    """Score every saved validation grid of each run with the judge that fits the subject.

    Args:
        subject: whose photos the samples should show (see :func:`helpers.measure.scores.score_arms`).
        runs: ``{label: run folder}``, e.g. the high- and the low-LR run of notebook 01.
        class_prompt: the plain class prompt, if the runs sampled it (scored for drift only).
        profile: the profile whose backbones to use (None: the current one).
        seed: the bootstrap's seed.

    Returns:
        One :class:`CurvePoint` per run, saved step and score column; no points and a note
        where the judge could not be loaded.

    Raises:
        FileNotFoundError: a run saved no validation grids (it was trained without them).
    """
    scores = StepScores()
    for label, folder in runs.items():
        arms = {str(step): by_prompt for step, by_prompt in samples_by_step(folder).items()}
        table = score_arms(subject, arms, class_prompt, profile, seed)
        if not table.rows:
            return StepScores(headers=table.headers, judge=table.judge, note=table.note)
        scores.points += _points(label, table)
        scores.headers, scores.judge = table.headers, table.judge
    return scores


# ------------------------------------------------------------------------------------------- plot


def _counts(scores: StepScores, run: str, columns: Sequence[str]) -> str:
    """``"n=4 images"``, or ``"n=2-4 images"`` where the run's points rest on different numbers of images."""
    ns = sorted({p.estimate.n for p in scores.points if p.run == run and p.column in columns})
    return f"n={ns[0]} image{'s' * (ns[0] != 1)}" if len(ns) == 1 else f"n={ns[0]}-{ns[-1]} images"


def _error_bars(estimates: Sequence[Estimate]) -> list[list[float]]:
    """Distances from each value down to its interval's low end and up to its high end (0 where none)."""
    def gap(a: float, b: float) -> float:
        return 0.0 if math.isnan(a) or math.isnan(b) else max(0.0, b - a)

    return [[gap(e.low, e.value) for e in estimates], [gap(e.value, e.high) for e in estimates]]


def _draw_column(ax, scores: StepScores, column: str, dodge: float) -> None:
    """One panel: a line with 95% interval bars per run, nudged sideways so the bars do not hide each other."""
    runs = scores.runs
    for i, run in enumerate(runs):
        steps, estimates = scores.series(run, column)
        if not steps:
            continue
        shift = dodge * (i - (len(runs) - 1) / 2)
        ax.errorbar([s + shift for s in steps], [e.value for e in estimates], yerr=_error_bars(estimates),
                    marker="o", capsize=3, label=f"{run} ({_counts(scores, run, [column])} per point)")
    ax.set_ylabel(scores.headers.get(column, column).replace(" (", "\n("), fontsize=9)
    if all(p.estimate.kind == "share" for p in scores.points if p.column == column):
        ax.set_ylim(-0.05, 1.05)
    ax.grid(alpha=0.3)


def plot_sweet_spot(scores: StepScores, columns: Sequence[str] = CURVE_COLUMNS, title: str | None = None):
    """Subject fidelity and the new place against training steps: one panel per column, one line per run.

    Each point is a saved validation grid, with its 95% interval; each panel's legend gives the
    number of images behind its points. Returns the matplotlib figure.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(columns), 1, figsize=(6.5, 2.4 * len(columns) + 0.8), sharex=True, squeeze=False)
    steps = sorted({p.step for p in scores.points})
    dodge = 0.012 * (steps[-1] if steps else 1)
    for ax, column in zip(axes[:, 0], columns):
        _draw_column(ax, scores, column, dodge)
    top, bottom = axes[0, 0], axes[-1, 0]
    if steps:
        bottom.set_xticks(steps)
        for ax in axes[:, 0]:  # each panel's own counts: its column may read fewer images
            ax.legend(fontsize=8)
    else:
        top.text(0.5, 0.5, scores.note or "(no measures)", ha="center", va="center", wrap=True, fontsize=8,
                 transform=top.transAxes)
    bottom.set_xlabel("training step (validation samples saved during training)")
    judge = f", scored by {scores.judge}" if scores.judge else ""
    fig.suptitle(f"{title + ': ' if title else ''}95% intervals{judge}", fontsize=10)
    fig.tight_layout()
    return fig
