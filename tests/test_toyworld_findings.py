"""The method works, measured: short DreamBooth runs on the shipped ToyWorld model, scored by the evaluator.

These are the robust findings of the study, shrunk to a minute or two of CPU each:
DreamBooth teaches the model the subject, and prior preservation keeps the class word from
drifting towards it. The longer course-scale runs are in ``benchmarks/toyworld_findings.py``.
"""

from __future__ import annotations

import pytest

from helpers.base.paths import DATA_DIR
from helpers.study import findings

TOY = DATA_DIR / "toyworld"
SAMPLING = findings.Sampling(seeds=tuple(range(4)))
OBJECT = "checked_cube"  # the object the base model least often mistakes for the subject

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (TOY / "model" / "model_index.json").exists(), reason="the ToyWorld model is not built"),
]


def toy_config(tmp_path, subject: str, **changes):
    """A short DreamBooth run on the ToyWorld model (64 px, constant LR, no sample grids)."""
    from helpers.toyworld.subjects import SUBJECTS
    from helpers.train.config import TrainConfig

    cls = SUBJECTS[subject].cls
    fields = {
        "pretrained_model_name_or_path": str(TOY / "model"),
        "instance_data_dir": str(TOY / "subjects" / subject),
        "instance_prompt": f"a photo of sks {cls}",
        "class_prompt": f"a photo of a {cls}",
        "with_prior_preservation": False,
        "class_data_dir": str(tmp_path / "class"),
        "num_class_images": 16,
        "sample_batch_size": 16,
        "class_inference_steps": 25,
        "resolution": 64,
        "train_batch_size": 2,
        "max_train_steps": 150,
        "learning_rate": 4e-4,
        "lr_scheduler": "constant",
        "seed": 0,
        "output_dir": str(tmp_path / "run"),
    }
    fields.update(changes)
    return TrainConfig(**fields)


@pytest.fixture(scope="module")
def base_scores():
    """Every subject's measures on the untrained base model."""
    from helpers.study.findings import FACE_SUBJECT, score_run

    return {name: score_run(str(TOY / "model"), name, SAMPLING) for name in (OBJECT, FACE_SUBJECT)}


def test_base_model_does_not_know_the_subjects(base_scores):
    for name, scores in base_scores.items():
        assert scores["subject_fidelity"] <= 0.25, (name, scores)
        assert scores["language_drift"] <= 0.25, (name, scores)


def test_dreambooth_teaches_the_subject(tmp_path, base_scores):
    from helpers.train.dreambooth import train_dreambooth

    config = toy_config(tmp_path, OBJECT, train_batch_size=4, max_train_steps=200, learning_rate=2e-4)
    run = train_dreambooth(config, progress=False)
    after = findings.score_run(run.output_dir, OBJECT, SAMPLING)
    before = base_scores[OBJECT]
    assert after["subject_fidelity"] >= before["subject_fidelity"] + 0.3, (before, after)
    assert after["subject_similarity"] > before["subject_similarity"], (before, after)


def test_prior_preservation_lowers_language_drift(tmp_path):
    from helpers.train.dreambooth import train_dreambooth

    name = findings.FACE_SUBJECT
    scores = {}
    for prior in (False, True):
        config = toy_config(tmp_path / str(prior), name, with_prior_preservation=prior)
        scores[prior] = findings.score_run(train_dreambooth(config, progress=False).output_dir, name, SAMPLING)
    assert scores[False]["language_drift"] >= scores[True]["language_drift"] + 0.2, scores
