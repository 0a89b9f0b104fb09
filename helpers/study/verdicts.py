"""The findings over several training seeds: every number with its interval, every verdict from a difference.

One training run per arm says little: the same arm trained again from another seed can land
elsewhere. ``benchmarks/toyworld_findings.py --train-seed N`` repeats the headline experiments
(learning rate, prior preservation, schedulers, text encoder, EMA) with other seeds; this
module pools the runs of each arm and judges each finding of the study:

- every measure is the pooled mean over the runs' images with a two-level bootstrap interval
  (:func:`helpers.base.stats.clustered_mean`: runs, then images), so run-to-run differences widen it;
- a finding "agrees" or "disagrees" with the study only when the interval of the difference
  between its arms (runs paired by seed) excludes zero, and is "no clear difference" otherwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from helpers.base import stats
from helpers.base.stats import Estimate

SHARES = ("subject_fidelity", "context_fidelity", "attribute_fidelity", "language_drift", "class_fidelity")
MEANS = ("subject_similarity", "copying", "diversity")
HEADLINE = ("learning_rate", "prior_preservation", "schedulers", "text_encoder", "ema")
ONE_SEED = ("steps", "textual_inversion")  # trained with the notebooks' seed only (judged the same way)
MEASURE_NAMES = {"subject_fidelity": "subject", "context_fidelity": "context", "attribute_fidelity": "attribute",
         "language_drift": "drift", "class_fidelity": "class", "subject_similarity": "similarity",
         "copying": "copying", "diversity": "diversity"}


@dataclass(frozen=True)
class Comparison:
    """One difference between two arms, pooled over runs, and what it says of the study's claim."""

    name: str
    diff: Estimate
    runs: int
    unit: str  # "images", or "judgements" where several measures of the same images are pooled
    verdict: str


@dataclass
class SeededFinding:
    """One experiment over several training seeds: each arm's rows (one per seed), the verdict and why."""

    key: str
    study: str
    arms: dict[str, list[dict]]  # label -> one scored row per training seed, in seed order
    seeds: list[int]
    verdict: str = ""
    notes: list[str] = field(default_factory=list)
    comparisons: list[Comparison] = field(default_factory=list)  # the differences behind the verdict


def per_image(row: dict, measure: str) -> list[float]:
    """The per-image values behind one measure of a scored row: 0/1 hits for a share, the values for a mean.

    Raises:
        KeyError: the row was scored before counts were kept (re-run the experiment).
    """
    if measure in SHARES:
        n = row["n"][measure]
        k = round(row[measure] * n)
        return [1.0] * k + [0.0] * (n - k)
    return list(row["per_image"][measure])


def per_run(rows: Sequence[dict], measures: Sequence[str]) -> list[list[float]]:
    """For each run (row), the per-image values of all ``measures`` in one list."""
    return [[v for m in measures for v in per_image(r, m)] for r in rows]


def pooled(rows: Sequence[dict], *measures: str) -> Estimate:
    """The measures' values pooled over images and runs (several share measures give one share of hits).

    One run's share gets the Wilson interval; anything pooled over runs, or a mean, the two-level bootstrap.
    """
    values = per_run(rows, measures)
    if len(rows) == 1 and all(m in SHARES for m in measures):
        return stats.wilson_share(int(sum(values[0])), len(values[0]))
    return stats.clustered_mean(values)


def compare(rows_a: Sequence[dict], rows_b: Sequence[dict], *measures: str) -> Estimate:
    """``a - b`` of the pooled measures, runs paired by training seed, with its 95% interval."""
    return stats.clustered_difference(per_run(rows_a, measures), per_run(rows_b, measures))


def _unit(measures: Sequence[str]) -> str:
    # subject fidelity is judged on the context images too: together they count judgements, not images
    return "judgements" if "subject_fidelity" in measures and len(measures) > 1 else "images"


def _said(name: str, diff: Estimate, runs: int, measures: Sequence[str] = ()) -> str:
    lo, hi = diff.low, diff.high
    unit = _unit(measures)
    return (f"{name} {diff.value:+.2f} [{lo:+.2f}, {hi:+.2f}], n={diff.n[0]} vs {diff.n[1]} {unit} "
            f"over {runs} run{'s' if runs > 1 else ''} each")


def _tally(verdicts: list[str]) -> str:
    """One verdict from several: all agree, any disagree, or a mix with no clear difference."""
    if verdicts and all(v == "agrees" for v in verdicts):
        return "agrees"
    if "disagrees" in verdicts:
        return "disagrees" if "agrees" not in verdicts else "mixed"
    return "agrees in part" if "agrees" in verdicts else stats.NO_CLEAR_DIFFERENCE


def judge_over_seeds(f: SeededFinding) -> SeededFinding:
    """Fill in the verdict and its reasons (each a difference with its interval)."""
    a, runs = f.arms, len(f.seeds)
    notes, verdicts = [], []
    f.comparisons.clear()

    def weigh(name, rows_a, rows_b, measures, expected):
        diff = compare(rows_a, rows_b, *measures)
        v = stats.verdict(diff, expected)
        verdicts.append(v)
        notes.append(f"{_said(name, diff, runs, measures)}: {v}")
        f.comparisons.append(Comparison(name, diff, runs, _unit(measures), v))

    if f.key == "learning_rate":
        for name in sorted({label.split(":")[0] for label in a}):
            high, low = a[f"{name}: high LR 5e-6"], a[f"{name}: low LR 2e-6"]
            weigh(f"{name}: prompt fidelity (context and attribute), high - low LR", high, low,
                  ("context_fidelity", "attribute_fidelity"), -1)
        lows = [pooled(rows, "subject_fidelity") for label, rows in a.items() if "low LR" in label]
        notes.append(f"goal: low-LR subject fidelity >= 0.7 on every object: "
                     f"{'met' if min(e.value for e in lows) >= 0.7 else 'not met'} "
                     f"({', '.join(f'{e.value:.2f}' for e in lows)})")
    elif f.key == "prior_preservation":
        weigh("language drift, without - with prior", a["without prior"], a["with prior"], ("language_drift",), +1)
    elif f.key == "schedulers":
        both = {k: [r for s in (25, 50) for r in a[f"{k}, {s} steps"]] for k in ("pndm", "lms", "ddim")}
        # pooled over 25 and 50 steps: pair the runs of each step count with each other
        for other in ("pndm", "lms"):
            weigh(f"subject, context and attribute hits, DDIM - {other.upper()} (25 and 50 steps)",
                  both["ddim"], both[other], ("subject_fidelity", "context_fidelity", "attribute_fidelity"), +1)
    elif f.key == "text_encoder":
        trained, frozen = a["text encoder trained"], a["frozen text encoder"]
        weigh("subject fidelity, trained - frozen text encoder", trained, frozen, ("subject_fidelity",), +1)
        weigh("attribute (the complex prompt), trained - frozen", trained, frozen, ("attribute_fidelity",), +1)
    elif f.key == "steps":
        prompt = ("context_fidelity", "attribute_fidelity")
        for name in sorted({label.split(":")[0] for label in a}):
            first, longest = a[f"{name}: 400 steps"], a[f"{name}: 1600 steps"]
            weigh(f"{name}: subject fidelity, 1600 - 400 steps", longest, first, ("subject_fidelity",), +1)
            weigh(f"{name}: prompt fidelity, 1600 - 400 steps", longest, first, prompt, -1)
    elif f.key == "textual_inversion":
        hits = ("subject_fidelity", "context_fidelity", "attribute_fidelity")
        weigh("subject, context and attribute hits, TI + DreamBooth - DreamBooth", a["TI + DreamBooth"],
              a["DreamBooth"], hits, +1)
        weigh("the same, DreamBooth + text encoder - TI + DreamBooth", a["DreamBooth + text encoder"],
              a["TI + DreamBooth"], hits, +1)
    elif f.key == "ema":
        diff = compare(a["EMA weights"], a["raw weights"], "subject_fidelity", "context_fidelity")
        v = stats.verdict(diff, +1)
        f.comparisons.append(Comparison("subject and context hits, EMA - raw weights", diff, runs, "judgements",
                                        "agrees" if v == stats.NO_CLEAR_DIFFERENCE else "disagrees"))
        # the study found little difference: no clear difference is what it predicts
        notes.append(f"{_said('subject and context hits, EMA - raw weights', diff, runs, ('subject_fidelity', 'context_fidelity'))}: "
                     + ("no clear difference, as the study found" if v == stats.NO_CLEAR_DIFFERENCE
                        else "a clear difference, which the study did not see"))
        verdicts.append("agrees" if v == stats.NO_CLEAR_DIFFERENCE else "disagrees")
    else:
        raise KeyError(f.key)
    f.verdict, f.notes = _tally(verdicts), notes
    return f


def from_records(records: Sequence[dict], keys: Sequence[str] = HEADLINE + ONE_SEED) -> list[SeededFinding]:
    """Gather the experiments of several saved findings files (one per training seed) and judge them.

    Only rows scored with counts (``n``) are used; an experiment missing from a seed's file
    is simply pooled over the seeds that have it.
    """
    out = []
    for key in keys:
        found = [(r.get("train_seed", 0), f) for r in records for f in r["findings"]
                 if f["key"] == key and all("n" in row for row in f["arms"].values())]
        if not found:
            continue
        found.sort(key=lambda sf: sf[0])
        labels = list(found[0][1]["arms"])
        arms = {label: [f["arms"][label] for _, f in found] for label in labels}
        finding = SeededFinding(key, found[0][1]["study"], arms, [s for s, _ in found])
        out.append(judge_over_seeds(finding))
    return out


def markdown_over_seeds(findings: Sequence[SeededFinding]) -> str:
    """The pooled findings as markdown: verdict and reasons, then one table per experiment."""
    out = []
    for f in findings:
        out.append(f"### {f.key.replace('_', ' ')}\n")
        out.append(f"*Study:* {f.study}  \n*Training seeds:* {', '.join(map(str, f.seeds))}  \n"
                   f"*Verdict:* **{f.verdict}**\n")
        out += [f"- {n}" for n in f.notes] + [""]
        first = next(iter(f.arms.values()))[0]
        cols = [m for m in (*SHARES, *MEANS) if m in first and (m in SHARES or m in first.get("per_image", {}))]
        counts = {m: sum(r["n"][m] for r in next(iter(f.arms.values()))) for m in cols}
        out.append("| arm | " + " | ".join(f"{MEASURE_NAMES[m]} (n={counts[m]})" for m in cols) + " | subject by seed |")
        out.append("|---|" + "---:|" * (len(cols) + 1))
        for label, rows in f.arms.items():
            cells = []
            for m in cols:
                e = pooled(rows, m)
                cells.append(stats.format_estimate(e, count=False))
            by_seed = " / ".join(f"{r['subject_fidelity']:.2f}" for r in rows)
            out.append(f"| {label} | " + " | ".join(cells) + f" | {by_seed} |")
        out.append("")
    return "\n".join(out)
