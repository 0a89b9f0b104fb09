"""How much does a subject-fidelity number depend on which evaluator reads it?

The findings' subject fidelity is the share of generations the evaluator's subject head calls
"the subject". The evaluator is itself a trained network: train it again with another seed and
it draws its line between "dotted star" and "red star with smudges" a little elsewhere. This
benchmark measures how far, so that a goal such as "at least 0.7" is judged against the
evaluator's own spread and not only against the images' sampling noise.

Every evaluator given (the shipped one first, then ``--evaluators``, each trained with
``python -m helpers toyworld train-evaluator DIR --vae data/toyworld/model --pixel-labels
--wash 0.3 --seed S``, the shipped recipe with another seed) reads the same images:

(a) fresh renders of each subject and of the same object without its feature (as
    ``feature_agreement.py``), where the right answer is known;
(b) with ``--runs HOME``: the generations of each subject's goal arm (``findings.GOAL_ARMS``)
    for the given training seeds, the images the findings' subject fidelity is read from (the
    instance and context prompts, seeds 0-7), so that the shipped evaluator's column is the
    findings table's number.

For (b) it reports each evaluator's subject fidelity (95% interval from the findings' bootstrap
over runs, then images), a majority vote of all of them, the share of images on which they all
agree, and the pixel check's share for reference. It writes ``benchmarks/results/evaluator_seeds.md``.

    python benchmarks/evaluator_seeds.py --evaluators E1 E2 --runs runs --train-seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from feature_agreement import RESULTS, goal_runs, renders, run_samples


def evaluator_label(folder: Path, shipped: Path) -> str:
    """``seed S`` from the folder's report (the folder's name without one), ``shipped (...)`` for the shipped one."""
    import json

    report = folder / "report.json"
    seed = json.loads(report.read_text()).get("training", {}).get("seed") if report.exists() else None
    label = f"seed {seed}" if seed is not None else folder.name
    return f"shipped ({label})" if folder.resolve() == shipped.resolve() else label


def subject_hits(images: list, name: str, evaluators: list) -> list[list[bool]]:
    """For each evaluator, whether it calls each image ``name``."""
    from helpers.toyworld import metrics

    return [[p["subject"] == name for p in metrics.predict(images, model)] for model in evaluators]


def majority(hits: list[list[bool]]) -> list[bool]:
    """Per image: more than half of the evaluators say yes."""
    return [sum(votes) * 2 > len(votes) for votes in zip(*hits)]


def unanimous(hits: list[list[bool]]) -> list[bool]:
    """Per image: every evaluator says the same."""
    return [len(set(votes)) == 1 for votes in zip(*hits)]


def cell(est) -> str:
    """A table cell: the share and its interval (the count has a column of its own)."""
    from helpers.base.stats import format_estimate

    return format_estimate(est, count=False)


def render_rows(names: list[str], evaluators: list, n: int) -> list[str]:
    """Per subject: each evaluator's accuracy on ``n`` renders with the feature and ``n`` without."""
    from PIL import Image

    from helpers.base.stats import share_of

    lines = []
    for name in names:
        images = [Image.fromarray(x) for x in renders(name, n)]
        truth = [True] * n + [False] * n
        hits = subject_hits(images, name, evaluators)
        accs = [share_of([h == t for h, t in zip(hs, truth)]) for hs in hits]
        lines.append(f"| {name} | {2 * n} | " + " | ".join(cell(a) for a in accs) + " |")
    return lines


def fidelity_images(run: Path, name: str, seeds: int) -> list:
    """The images ``metrics.score_row`` reads subject fidelity from."""
    from helpers.toyworld import metrics
    from helpers.train.prompts import role_images

    return role_images(*run_samples(run, name, seeds), *metrics.SUBJECT_ROLES)[0]


def run_rows(names: list[str], evaluators: list, home: Path, train_seeds: list[int], seeds: int):
    """Per subject: each evaluator's subject fidelity on its goal-arm generations, the vote and the pixels."""
    from helpers.base.stats import clustered_mean
    from helpers.toyworld.feature_check import check

    runs, missing = goal_runs(home, train_seeds)
    per_subject: dict[str, list] = {}
    for name, run in runs:
        images = fidelity_images(run, name, seeds)
        hits = subject_hits(images, name, evaluators)
        pixels = [check(im, name).visible for im in images]
        per_subject.setdefault(name, []).append((hits, pixels))
    lines = []
    for name in names:
        if name not in per_subject:
            continue
        runs_here = per_subject[name]
        columns = [clustered_mean([[float(v) for v in hits[e]] for hits, _ in runs_here]) for e in range(len(evaluators))]
        vote = clustered_mean([[float(v) for v in majority(hits)] for hits, _ in runs_here])
        agree = clustered_mean([[float(v) for v in unanimous(hits)] for hits, _ in runs_here])
        pixels = clustered_mean([[float(v) for v in px] for _, px in runs_here])
        values = [c.value for c in columns]
        by_seed = " / ".join(
            "-".join(f"{sum(h[e]) / len(h[e]):.2f}" for e in range(len(evaluators))) for h, _ in runs_here
        )
        lines.append(
            f"| {name} | {len(runs_here)} | {columns[0].n} | " + " | ".join(cell(c) for c in columns)
            + f" | {max(values) - min(values):.2f} | {cell(vote)} | {cell(agree)} | {cell(pixels)} | {by_seed} |"
        )
    return lines, missing


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the tables."""
    from helpers.toyworld import metrics
    from helpers.toyworld.subjects import SUBJECTS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evaluators", type=Path, nargs="+", required=True,
                        help="evaluator folders to compare with the shipped one")
    parser.add_argument("--runs", type=Path, default=None, help="a course home whose train/ holds the goal-arm runs")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--seeds", type=int, default=8, help="sampling seeds per prompt")
    parser.add_argument("--n", type=int, default=24, help="renders per subject with its feature, and as many without")
    parser.add_argument("--out", type=Path, default=RESULTS / "evaluator_seeds.md")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    folders = [metrics.EVALUATOR_DIR, *args.evaluators]
    labels = [evaluator_label(f, metrics.EVALUATOR_DIR) for f in folders]
    evaluators = [metrics.load_evaluator(f) for f in folders]
    names = list(SUBJECTS)
    heads = " | ".join(labels)
    rule = "---:|" * len(labels)
    text = [
        "# One subject-fidelity number, read by evaluators trained with different seeds\n",
        ("Each evaluator was trained by the shipped recipe; only its seed differs. Every cell is a share "
        "with its 95% interval.\n"),
        f"## Fresh renders: accuracy of the subject decision ({args.n} with the feature, {args.n} without)\n",
        f"| subject | n | {heads} |\n|---|---:|{rule}",
        *render_rows(names, evaluators, args.n),
    ]
    notes = []
    if args.runs is not None:
        lines, notes = run_rows(names, evaluators, args.runs, args.train_seeds, args.seeds)
        text += [
            "",
            f"## Goal-arm generations: subject fidelity (training seeds {', '.join(map(str, args.train_seeds))})\n",
            ("Intervals resample runs, then images (the findings' bootstrap). *Spread*: the largest minus the "
            "smallest evaluator's value. *Vote*: the share that more than half of the evaluators call the "
            "subject. *All agree*: the share of images on which every evaluator says the same. *Pixels*: the "
            "share the pixel check of `helpers/toyworld/feature_check.py` sees the feature in. *By seed*: each "
            "run's value per evaluator, in column order.\n"),
            (f"| subject | runs | n | {heads} | spread | vote | all agree | pixels | by seed |\n"
            f"|---|---:|---:|{rule}---:|---:|---:|---:|---|"),
            *lines,
        ]
    text += ["", *[f"- {note}" for note in notes],
             (f"\n`python benchmarks/evaluator_seeds.py --evaluators ...{' --runs HOME' if args.runs else ''}`; "
             f"{time.perf_counter() - t0:.0f} s.\n")]
    out = "\n".join(text)
    print(out)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
