"""Tests for helpers.base.stats: Wilson and Newcombe intervals against published values, the bootstrap, verdicts."""

import math

import numpy as np
import pytest

from helpers.base import stats
from helpers.base.stats import (
    NO_CLEAR_DIFFERENCE,
    Z95,
    Estimate,
    bootstrap_interval,
    difference,
    format_estimate,
    format_table,
    mean_difference,
    mean_of,
    share_difference,
    share_of,
    verdict,
    wilson_interval,
    wilson_share,
)

# Newcombe, R. G. (1998). Two-sided confidence intervals for the single proportion: comparison
# of seven methods. Statistics in Medicine 17, 857-872; Table II, method 3 (score, no correction).
NEWCOMBE_WILSON = {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605), (0, 20): (0.0, 0.1611),
                   (1, 29): (0.0061, 0.1718)}
# Newcombe, R. G. (1998). Interval estimation for the difference between independent proportions:
# comparison of eleven methods. Statistics in Medicine 17, 873-890; Table II, method 10.
NEWCOMBE_DIFFERENCE = {(56, 70, 48, 80): (0.0524, 0.3339), (9, 10, 3, 10): (0.1705, 0.8090),
                       (5, 56, 0, 29): (-0.0381, 0.1926)}


@pytest.mark.parametrize("counts", list(NEWCOMBE_WILSON))
def test_wilson_matches_newcombes_published_intervals(counts):
    low, high = wilson_interval(*counts)
    assert (round(low, 4), round(high, 4)) == NEWCOMBE_WILSON[counts]


def test_wilson_at_the_edges_matches_its_closed_form():
    z2 = Z95**2
    # 0 of n: [0, z^2 / (n + z^2)]; n of n: [n / (n + z^2), 1]; k = n/2: symmetric about 1/2.
    assert wilson_interval(0, 10) == pytest.approx((0.0, z2 / (10 + z2)))
    assert wilson_interval(8, 8) == pytest.approx((8 / (8 + z2), 1.0))
    low, high = wilson_interval(5, 10)
    half = Z95 / (1 + z2 / 10) * math.sqrt(0.25 / 10 + z2 / 400)
    assert (low, high) == pytest.approx((0.5 - half, 0.5 + half))
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)


def test_wilson_agrees_with_scipy():
    stats = pytest.importorskip("scipy.stats")
    for k, n in [(0, 4), (3, 8), (1, 8), (7, 9), (40, 64)]:
        ci = stats.binomtest(k, n).proportion_ci(confidence_level=0.95, method="wilson")
        assert wilson_interval(k, n) == pytest.approx((ci.low, ci.high), abs=1e-9)


def test_wilson_refuses_impossible_counts_and_has_no_interval_for_nothing():
    with pytest.raises(ValueError, match="0 <= k <= n"):
        wilson_interval(5, 4)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))
    assert format_estimate(wilson_share(0, 0)) == "n/a, n=0"


@pytest.mark.parametrize("counts", list(NEWCOMBE_DIFFERENCE))
def test_share_difference_matches_newcombes_published_intervals(counts):
    d = share_difference(*counts)
    assert d.value == pytest.approx(counts[0] / counts[1] - counts[2] / counts[3])
    assert (round(d.low, 4), round(d.high, 4)) == NEWCOMBE_DIFFERENCE[counts]
    assert d.n == (counts[1], counts[3])


def test_share_keeps_its_hits_so_two_shares_can_be_compared():
    a, b = wilson_share(3, 8), share_of([True, False, False, False, False, False, False, False])
    assert (a.value, a.n, b.value, b.n) == (0.375, 8, 0.125, 8)
    d = difference(a, b)
    assert d == share_difference(3, 8, 1, 8)
    assert verdict(d, +1) == NO_CLEAR_DIFFERENCE  # notebook 02's "3 of 8 against 1 of 8" is within chance


def test_bootstrap_is_reproducible_for_a_seed_and_covers_the_mean():
    values = [0.61, 0.72, 0.55, 0.80, 0.67, 0.70, 0.59, 0.75]
    first, again = bootstrap_interval(values, seed=3), bootstrap_interval(values, seed=3)
    assert first == again
    assert bootstrap_interval(values, seed=4) != first  # another seed draws other resamples
    est = mean_of(values, seed=3)
    assert est.low < est.value < est.high and est.value == pytest.approx(sum(values) / len(values))
    assert min(values) <= est.low and est.high <= max(values)
    assert (est.low, est.high) == first


def test_bootstrap_does_not_depend_on_the_order_of_the_values():
    values = [0.2, 0.9, 0.4, 0.7, 0.1]
    assert mean_of(values, seed=0) == mean_of(list(reversed(values)), seed=0)


def test_bootstrap_interval_narrows_with_more_samples():
    few = mean_of([0.0, 1.0] * 4)
    many = mean_of([0.0, 1.0] * 100)
    assert (many.high - many.low) < (few.high - few.low) / 3


def test_a_single_value_has_no_interval():
    est = mean_of([0.4])
    assert est.value == 0.4 and math.isnan(est.low)
    assert format_estimate(est) == "0.40 [n/a], n=1"


def test_mean_difference_is_seeded_and_separates_distinct_groups():
    high, low = [0.8, 0.82, 0.79, 0.85, 0.81, 0.83], [0.60, 0.62, 0.58, 0.61, 0.65, 0.59]
    d = mean_difference(high, low, seed=1)
    assert d == mean_difference(high, low, seed=1)
    assert 0 < d.low < d.value < d.high
    assert verdict(d, +1) == "agrees" and verdict(d, -1) == "disagrees"
    assert verdict(mean_difference(low, high), -1) == "agrees"


def test_verdict_needs_an_interval_that_excludes_zero():
    def diff(low, high):
        return Estimate((low + high) / 2, (8, 8), low, high, kind="difference")

    assert verdict(diff(0.05, 0.4), +1) == "agrees"
    assert verdict(diff(0.05, 0.4), -1) == "disagrees"
    assert verdict(diff(-0.4, -0.05), -1) == "agrees"
    assert verdict(diff(-0.4, -0.05), +1) == "disagrees"
    assert verdict(diff(-0.1, 0.4), +1) == NO_CLEAR_DIFFERENCE
    assert verdict(diff(0.0, 0.4), +1) == NO_CLEAR_DIFFERENCE  # touching zero is not excluding it
    assert verdict(diff(math.nan, math.nan), +1) == NO_CLEAR_DIFFERENCE
    with pytest.raises(ValueError, match="expected must be"):
        verdict(diff(0.1, 0.2), 0)


def test_difference_refuses_a_share_against_a_mean():
    with pytest.raises(ValueError, match="two shares or two means"):
        difference(wilson_share(3, 8), mean_of([0.1, 0.2]))


def test_format_estimate_shows_value_interval_and_count():
    assert format_estimate(Estimate(0.75, 8, 0.409, 0.929)) == "0.75 [0.41, 0.93], n=8"
    assert format_estimate(Estimate(0.75, 8, 0.409, 0.929), count=False) == "0.75 [0.41, 0.93]"
    assert format_estimate(Estimate(float("nan"), 0, float("nan"), float("nan")), count=False) == "n/a"
    assert str(share_difference(3, 8, 1, 8)).endswith("n=8 vs 8")
    assert format_estimate(Estimate(0.12345, 4, 0.1, 0.2), digits=3) == "0.123 [0.100, 0.200], n=4"


def test_format_table_has_one_line_per_row_and_a_header_per_column():
    table = {"high lr": {"subject_fidelity": wilson_share(6, 8)}, "low lr": {"subject_fidelity": wilson_share(2, 8),
                                                                      "language_drift": wilson_share(0, 8)}}
    text = format_table(table, headers={"subject_fidelity": "subject fidelity"})
    lines = text.splitlines()
    assert len(lines) == 3 and "subject fidelity" in lines[0] and "language_drift" in lines[0]
    assert lines[1].startswith("high lr") and "n=8" in lines[1] and lines[1].rstrip().endswith("-")
    assert str(wilson_share(0, 8)) in lines[2]


def test_clustered_mean_of_one_run_is_the_plain_bootstrap_and_is_seeded():
    values = [0.1, 0.4, 0.35, 0.8, 0.55, 0.2]
    one = stats.clustered_mean([values], seed=3)
    assert one.value == pytest.approx(np.mean(values)) and one.n == 6
    assert one == stats.clustered_mean([values], seed=3)
    assert one.low < one.value < one.high


def test_runs_that_disagree_widen_the_clustered_interval():
    same = [[1] * 20 + [0] * 20] * 3  # three runs, each 0.5
    split = [[1] * 36 + [0] * 4, [1] * 20 + [0] * 20, [1] * 4 + [0] * 36]  # 0.9, 0.5, 0.1: the same 60 of 120
    a, b = stats.clustered_mean(same), stats.clustered_mean(split)
    assert a.value == b.value == 0.5 and a.n == b.n == 120
    assert (b.high - b.low) > 2 * (a.high - a.low)  # the run-to-run spread counts, not just the images


def test_clustered_difference_pairs_runs_and_separates_clear_effects():
    high = [[1] * 30 + [0] * 10] * 3
    low = [[1] * 10 + [0] * 30] * 3
    diff = stats.clustered_difference(high, low)
    assert diff.value == pytest.approx(0.5) and diff.n == (120, 120) and diff.low > 0
    assert stats.verdict(diff, +1) == "agrees" and stats.verdict(diff, -1) == "disagrees"
    noisy = stats.clustered_difference([[1, 0, 1, 0]] * 3, [[0, 1, 1, 0]] * 3)
    assert stats.verdict(noisy, +1) == stats.NO_CLEAR_DIFFERENCE
    with pytest.raises(ValueError):
        stats.clustered_difference([[1]], [[1], [0]])  # runs must pair up
