"""Numbers with their uncertainty: a share or a mean, its count and a 95% interval, and a verdict.

A figure of the course rests on a handful of images, so "3 of 8 against 1 of 8" is a
result only if the difference is larger than chance allows. Every number a learner reads
comes with its count and a 95% interval:

- a share (k of n images show the subject) gets the Wilson score interval;
- a mean (of per-image similarities) gets a percentile bootstrap interval, seeded;
- a difference of two shares gets Newcombe's interval (built from the two Wilson
  intervals), a difference of two means a bootstrap interval;
- :func:`verdict` calls a finding "agrees" or "disagrees" with the study only when the
  interval of the difference excludes zero, and "no clear difference" otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: a two-sided 95% interval
BOOTSTRAP_RESAMPLES = 2000
NO_CLEAR_DIFFERENCE = "no clear difference"


@dataclass(frozen=True)
class Estimate:
    """A share, mean or difference with its count and 95% interval (``nan`` where there is none).

    ``samples`` keeps the per-image values (0 or 1 for a share) so two estimates can be
    compared later with :func:`difference`.
    """

    value: float
    n: int | tuple[int, int]  # images it rests on; (n_a, n_b) for a difference
    low: float
    high: float
    kind: str = "mean"  # "share", "mean" or "difference"
    samples: tuple[float, ...] = field(default=(), repr=False, compare=False)

    def __str__(self) -> str:
        return format_estimate(self)


def within_prompt_distance(embeddings, prompts: Sequence[str]) -> list[float]:
    """Diversity, per embedded image: its mean distance (1 - cosine) to the other images of its prompt.

    ``embeddings`` are L2-normalised rows (a torch tensor), one per image. Both judges of a
    score table measure diversity with it, each on its own embeddings.

    A prompt with a single image has nothing to compare and adds no value.
    """
    if len(prompts) != len(embeddings):
        raise ValueError(f"Give one prompt per image: {len(embeddings)} images, {len(prompts)} prompts.")
    values = []
    for prompt in dict.fromkeys(prompts):
        e = embeddings[[i for i, p in enumerate(prompts) if p == prompt]]
        if len(e) > 1:
            values += ((1 - e @ e.T).sum(dim=1) / (len(e) - 1)).tolist()  # the diagonal adds 0
    return values


def _check_count(k: int, n: int) -> None:
    if n < 0 or k < 0 or k > n:
        raise ValueError(f"A share needs 0 <= k <= n; got k={k}, n={n}. Count hits (k) among images (n).")


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of the share ``k / n`` (95% by default); ``(nan, nan)`` for ``n = 0``.

    Unlike the textbook ``p +- z * sqrt(p(1-p)/n)``, it stays inside [0, 1] and is not
    empty at 0 of n or n of n, which is what small image counts give.
    """
    _check_count(k, n)
    if n == 0:
        return math.nan, math.nan
    p = k / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def wilson_share(k: int, n: int) -> Estimate:
    """The share ``k`` of ``n`` with its Wilson 95% interval."""
    low, high = wilson_interval(k, n)
    value = k / n if n else math.nan
    return Estimate(value, n, low, high, kind="share", samples=(1.0,) * k + (0.0,) * (n - k))


def share_of(hits: Sequence[bool]) -> Estimate:
    """The share of true values in ``hits`` (one per image) with its Wilson 95% interval."""
    return wilson_share(sum(bool(h) for h in hits), len(hits))


def _as_sorted_array(values: Sequence[float]) -> np.ndarray:
    # Sorting first makes a seeded bootstrap depend on the values only, not on their order.
    return np.sort(np.asarray(values, dtype=np.float64).ravel())


def _bootstrap_means(values: np.ndarray, rng: np.random.Generator, resamples: int) -> np.ndarray:
    """Means of ``resamples`` resamples of ``values`` drawn with replacement."""
    picks = rng.integers(0, len(values), size=(resamples, len(values)))
    return values[picks].mean(axis=1)


def _percentiles(draws: np.ndarray, level: float) -> tuple[float, float]:
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(draws, [tail, 100 - tail])
    return float(low), float(high)


def bootstrap_interval(
    values: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES, level: float = 0.95
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values``; ``(nan, nan)`` with fewer than 2 values.

    Args:
        values: one number per image (or per pair of images).
        seed: the random generator's seed: the same values and seed give the same interval.
        resamples: how many resamples to draw.
        level: the coverage, 0.95 for a 95% interval.
    """
    data = _as_sorted_array(values)
    if len(data) < 2:
        return math.nan, math.nan
    return _percentiles(_bootstrap_means(data, np.random.default_rng(seed), resamples), level)


def mean_of(values: Sequence[float], seed: int = 0) -> Estimate:
    """The mean of ``values`` with its seeded bootstrap 95% interval."""
    data = _as_sorted_array(values)
    value = float(data.mean()) if len(data) else math.nan
    low, high = bootstrap_interval(data, seed)
    return Estimate(value, len(data), low, high, kind="mean", samples=tuple(float(v) for v in data))


def share_difference(k_a: int, n_a: int, k_b: int, n_b: int) -> Estimate:
    """``k_a / n_a - k_b / n_b`` with Newcombe's 95% interval (his method 10, from two Wilson intervals).

    Newcombe, R. G. (1998). Interval estimation for the difference between independent
    proportions: comparison of eleven methods. Statistics in Medicine 17, 873-890.
    """
    _check_count(k_a, n_a)
    _check_count(k_b, n_b)
    if n_a == 0 or n_b == 0:
        return Estimate(math.nan, (n_a, n_b), math.nan, math.nan, kind="difference")
    p_a, p_b = k_a / n_a, k_b / n_b
    (low_a, high_a), (low_b, high_b) = wilson_interval(k_a, n_a), wilson_interval(k_b, n_b)
    d = p_a - p_b
    low = d - math.sqrt((p_a - low_a) ** 2 + (high_b - p_b) ** 2)
    high = d + math.sqrt((high_a - p_a) ** 2 + (p_b - low_b) ** 2)
    return Estimate(d, (n_a, n_b), low, high, kind="difference")


def mean_difference(
    a: Sequence[float], b: Sequence[float], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES
) -> Estimate:
    """``mean(a) - mean(b)`` with a bootstrap 95% interval (each group resampled on its own)."""
    xa, xb = _as_sorted_array(a), _as_sorted_array(b)
    if len(xa) == 0 or len(xb) == 0:
        return Estimate(math.nan, (len(xa), len(xb)), math.nan, math.nan, kind="difference")
    d = float(xa.mean() - xb.mean())
    if len(xa) < 2 or len(xb) < 2:
        return Estimate(d, (len(xa), len(xb)), math.nan, math.nan, kind="difference")
    rng = np.random.default_rng(seed)
    draws = _bootstrap_means(xa, rng, resamples) - _bootstrap_means(xb, rng, resamples)
    low, high = _percentiles(draws, 0.95)
    return Estimate(d, (len(xa), len(xb)), low, high, kind="difference")


def difference(a: Estimate, b: Estimate, seed: int = 0) -> Estimate:
    """``a - b`` for two shares (Newcombe) or two means (bootstrap) made by this module."""
    if a.kind != b.kind or a.kind not in ("share", "mean"):
        raise ValueError(
            f"Can only compare two shares or two means, not a {a.kind} with a {b.kind}; "
            "make both with wilson_share()/share_of() or both with mean_of()."
        )
    if a.kind == "share":
        return share_difference(int(sum(a.samples)), len(a.samples), int(sum(b.samples)), len(b.samples))
    return mean_difference(a.samples, b.samples, seed)


def verdict(diff: Estimate, expected: int) -> str:
    """"agrees", "disagrees" or "no clear difference": does ``diff`` go the way the study found?

    Args:
        diff: a difference ``a - b`` with its interval (from :func:`difference`).
        expected: +1 if the study found ``a`` above ``b``, -1 if below.
    """
    if expected not in (1, -1):
        raise ValueError(f"expected must be +1 (the study found a above b) or -1 (below); got {expected!r}.")
    if math.isnan(diff.low) or math.isnan(diff.high) or diff.low <= 0 <= diff.high:
        return NO_CLEAR_DIFFERENCE
    went_up = diff.low > 0
    return "agrees" if went_up == (expected == 1) else "disagrees"


def _count(n: int | tuple[int, int]) -> str:
    return f"n={n[0]} vs {n[1]}" if isinstance(n, tuple) else f"n={n}"


def format_estimate(est: Estimate, digits: int = 2, count: bool = True) -> str:
    """``"0.75 [0.41, 0.93], n=8"``: the value, its 95% interval and its count.

    ``count=False`` leaves out ", n=8", for tables that give the count in a column or header of its own.
    """
    n = f", {_count(est.n)}" if count else ""
    if math.isnan(est.value):
        return f"n/a{n}"
    interval = "[n/a]" if math.isnan(est.low) else f"[{est.low:.{digits}f}, {est.high:.{digits}f}]"
    return f"{est.value:.{digits}f} {interval}{n}"


def format_table(table: dict[str, dict[str, Estimate]], headers: dict[str, str] | None = None, digits: int = 2) -> str:
    """A text table of ``{row label: {column: Estimate}}``, one cell "value [low, high], n=N".

    Args:
        table: rows (e.g. the arms of an experiment), each a dict of estimates.
        headers: a printed name per column (e.g. ``{"subject_fidelity": "subject fidelity (DINO)"}``).
        digits: decimals of values and interval ends.
    """
    columns = list(dict.fromkeys(c for row in table.values() for c in row))
    names = [(headers or {}).get(c, c) for c in columns]
    cells = [[format_estimate(row[c], digits) if c in row else "-" for c in columns] for row in table.values()]
    widths = [max([len(name)] + [len(r[i]) for r in cells]) + 2 for i, name in enumerate(names)]
    label_width = max([len(label) for label in table] + [0]) + 2
    lines = [" " * label_width + "".join(f"{name:>{w}}" for name, w in zip(names, widths))]
    lines += [f"{label:<{label_width}}" + "".join(f"{cell:>{w}}" for cell, w in zip(row, widths))
              for label, row in zip(table, cells)]
    return "\n".join(lines)


# ------------------------------------------------------------------------------- several training runs


def _groups(groups: Sequence[Sequence[float]]) -> list[np.ndarray]:
    return [_as_sorted_array(g) for g in groups if len(g)]


def _clustered_means(groups: list[np.ndarray], picks: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Pooled means of resampled runs: ``picks[r]`` says which runs resample ``r`` takes, each resampled inside."""
    out = np.empty(len(picks))
    for r, chosen in enumerate(picks):
        total = count = 0.0
        for g in (groups[i] for i in chosen):
            total += g[rng.integers(0, len(g), size=len(g))].sum()
            count += len(g)
        out[r] = total / count
    return out


def clustered_mean(groups: Sequence[Sequence[float]], seed: int = 0, resamples: int = BOOTSTRAP_RESAMPLES) -> Estimate:
    """The pooled mean of per-image values from several training runs, with a two-level bootstrap interval.

    Each resample draws the runs with replacement, then the images inside each drawn run, so
    the interval holds the differences between runs as well as the draw of images. With one
    run it is the ordinary bootstrap. ``n`` counts images; a 0/1 value per image makes it a share.

    Args:
        groups: one sequence of per-image values per training run (e.g. per training seed).
        seed: the bootstrap's seed.
    """
    data = _groups(groups)
    n = sum(len(g) for g in data)
    if n == 0:
        return Estimate(math.nan, 0, math.nan, math.nan)
    value = float(sum(g.sum() for g in data) / n)
    if n < 2:
        return Estimate(value, n, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(data), size=(resamples, len(data)))
    low, high = _percentiles(_clustered_means(data, picks, rng), 0.95)
    return Estimate(value, n, low, high, samples=tuple(float(v) for g in data for v in g))


def clustered_difference(groups_a: Sequence[Sequence[float]], groups_b: Sequence[Sequence[float]], seed: int = 0,
                         resamples: int = BOOTSTRAP_RESAMPLES) -> Estimate:
    """Pooled ``mean(a) - mean(b)`` over runs paired by position (the same training seed), two-level bootstrap.

    Each resample draws the same runs for both arms (a run of ``a`` and its partner in ``b``
    share their seed), then the images inside each.
    """
    pairs = [(_as_sorted_array(a), _as_sorted_array(b)) for a, b in zip(groups_a, groups_b, strict=True)
             if len(a) and len(b)]
    n = (sum(len(a) for a, _ in pairs), sum(len(b) for _, b in pairs))
    if not pairs:
        return Estimate(math.nan, n, math.nan, math.nan, kind="difference")
    a_data, b_data = [a for a, _ in pairs], [b for _, b in pairs]
    d = float(sum(a.sum() for a in a_data) / n[0] - sum(b.sum() for b in b_data) / n[1])
    if min(n) < 2:
        return Estimate(d, n, math.nan, math.nan, kind="difference")
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(pairs), size=(resamples, len(pairs)))
    draws = _clustered_means(a_data, picks, rng) - _clustered_means(b_data, picks, rng)
    low, high = _percentiles(draws, 0.95)
    return Estimate(d, n, low, high, kind="difference")
