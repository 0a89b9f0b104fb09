"""The findings pooled over training seeds: intervals from the runs' images, verdicts from differences."""

import pytest

from helpers.base import stats
from helpers.study import verdicts

N = {"subject_fidelity": 48, "context_fidelity": 40, "attribute_fidelity": 8, "language_drift": 8,
     "class_fidelity": 8, "subject_similarity": 48, "copying": 48, "diversity": 8}


def row(subject=0.5, context=1.0, attribute=1.0, drift=0.0, similarity=0.8) -> dict:
    """A scored arm as metrics.score_row writes it (shares with counts, per-image values of the means)."""
    return {"subject_fidelity": subject, "context_fidelity": context, "attribute_fidelity": attribute,
            "language_drift": drift, "class_fidelity": 1.0, "subject_similarity": similarity, "copying": 0.9,
            "diversity": 0.05, "n": dict(N),
            "per_image": {"subject_similarity": [similarity] * 48, "copying": [0.9] * 48, "diversity": [0.05] * 8}}


def record(seed: int, key: str, arms: dict) -> dict:
    return {"train_seed": seed, "findings": [{"key": key, "study": "s", "arms": arms}]}


def test_per_image_hits_rebuild_the_share():
    hits = verdicts.per_image(row(subject=0.75), "subject_fidelity")
    assert len(hits) == 48 and sum(hits) == 36


def test_a_share_pooled_over_runs_counts_every_image():
    est = verdicts.pooled([row(subject=0.75), row(subject=0.5), row(subject=1.0)], "subject_fidelity")
    assert est.value == pytest.approx(0.75) and est.n == 144 and est.low < 0.75 < est.high


def test_prior_preservation_agrees_when_drift_falls_in_every_run():
    records = [record(s, "prior_preservation", {"without prior": row(drift=0.75), "with prior": row(drift=0.0)})
               for s in (0, 1, 2)]
    (f,) = verdicts.from_records(records, keys=["prior_preservation"])
    assert f.seeds == [0, 1, 2] and f.verdict == "agrees"
    assert "n=24 vs 24 images over 3 runs" in f.notes[0]


def test_a_difference_that_one_run_reverses_is_no_clear_difference():
    drifts = [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)]
    records = [record(s, "prior_preservation", {"without prior": row(drift=w), "with prior": row(drift=p)})
               for s, (w, p) in enumerate(drifts)]
    (f,) = verdicts.from_records(records, keys=["prior_preservation"])
    assert f.verdict == stats.NO_CLEAR_DIFFERENCE


def test_text_encoder_disagrees_when_training_it_clearly_hurts():
    arms = {"frozen text encoder": row(subject=0.9, attribute=1.0), "text encoder trained": row(subject=0.2, attribute=1.0)}
    (f,) = verdicts.from_records([record(s, "text_encoder", arms) for s in (0, 1, 2)], keys=["text_encoder"])
    assert f.verdict == "disagrees"


def test_ema_agrees_with_the_study_when_there_is_no_clear_difference():
    arms = {"raw weights": row(subject=0.8), "EMA weights": row(subject=0.8)}
    (f,) = verdicts.from_records([record(s, "ema", arms) for s in (0, 1)], keys=["ema"])
    assert f.verdict == "agrees"


def test_rows_scored_without_counts_are_left_out():
    old = {"key": "ema", "study": "s", "arms": {"raw weights": {"subject_fidelity": 0.8},
                                                "EMA weights": {"subject_fidelity": 0.8}}}
    assert verdicts.from_records([{"train_seed": 0, "findings": [old]}], keys=["ema"]) == []


def test_markdown_gives_every_cell_an_interval_and_every_column_its_count():
    arms = {"without prior": row(drift=0.75), "with prior": row(drift=0.0)}
    pooled = verdicts.from_records([record(s, "prior_preservation", arms) for s in (0, 1, 2)],
                                   keys=["prior_preservation"])
    text = verdicts.markdown_over_seeds(pooled)
    assert "drift (n=24)" in text and "subject (n=144)" in text
    assert "| with prior | " in text and "0.00 [0.00, 0.00]" in text
    assert "0.50 / 0.50 / 0.50" in text  # subject fidelity of each seed's run


def test_one_runs_share_gets_the_wilson_interval():
    est = verdicts.pooled([row(subject=0.75)], "subject_fidelity")
    assert (est.low, est.high) == pytest.approx(stats.wilson_interval(36, 48))


def test_the_sweet_spot_agrees_when_likeness_rises_and_prompts_fall_with_steps():
    arms = {"ball: 400 steps": row(subject=0.2, attribute=1.0, context=1.0),
            "ball: 800 steps": row(subject=0.6, attribute=0.9),
            "ball: 1600 steps": row(subject=0.9, attribute=0.0, context=0.5)}
    (f,) = verdicts.from_records([record(0, "steps", arms)], keys=["steps"])
    assert f.verdict == "agrees" and len(f.notes) == 2


def test_one_seeds_file_is_judged_by_the_same_rules_with_its_own_intervals():
    from helpers.study import findings

    clear = {"without prior": row(drift=1.0), "with prior": row(drift=0.0)}
    verdict, notes = findings.judge_one_seed("prior_preservation", clear)
    assert verdict == "agrees" and "n=8 vs 8 images over 1 run each" in notes
    small = {"without prior": row(drift=0.375), "with prior": row(drift=0.25)}  # 3 of 8 against 2 of 8
    assert findings.judge_one_seed("prior_preservation", small)[0] == stats.NO_CLEAR_DIFFERENCE
    base = {"held-out captions": {"cls": 0.95, "colour": 0.85, "background": 0.9}}
    assert findings.judge_one_seed("base", base)[0] == "met"
    assert findings.judge_one_seed("base", {"held-out captions": {"cls": 0.85, "colour": 0.85, "background": 0.9}})[0] == "not met"
