"""The study's arms are declared once (helpers.study.arms) and their runs keep their hashes.

A run's folder is named by its config's hash, so the findings' saved runs are reused only while
every arm builds the same config. The hashes below were computed before the arms moved into
:mod:`helpers.study.arms`; they must not change.
"""

from __future__ import annotations

import pytest

from helpers.study import arms, findings
from helpers.train.config import config_hash

BEFORE = {
    "learning_rate/dotted_star/high": "471d31e73a13",
    "learning_rate/dotted_star/low": "669ad3f3e215",
    "learning_rate/checked_cube/high": "6b2287814ea3",
    "learning_rate/checked_cube/low": "dd5b7731a77a",
    "learning_rate/striped_ball/high": "b39bf1ef8430",
    "learning_rate/striped_ball/low": "b1d18b91c57a",
    "steps/dotted_star/400": "669ad3f3e215",
    "steps/dotted_star/800": "5c4e33e1db47",
    "steps/dotted_star/1600": "94f642bb10fb",
    "steps/striped_ball/400": "b1d18b91c57a",
    "steps/striped_ball/800": "20d83f7730f7",
    "steps/striped_ball/1600": "b44ca2d177b9",
    "prior_preservation/without prior": "f68a8da4b5c2",
    "prior_preservation/with prior": "31c37d0d3b60",
    "schedulers/run": "471d31e73a13",
    "text_encoder/frozen": "31c37d0d3b60",
    "text_encoder/trained": "1b3351e009f4",
    "ema/run": "57ce59911efa",
    "textual_inversion/after (template)": "f0f5a2955227",
    "goal/dotted_star": "669ad3f3e215",
    "goal/checked_cube": "dd5b7731a77a",
    "goal/striped_ball": "b1d18b91c57a",
    "goal/patch_face": "31c37d0d3b60",
    "textual_inversion/ti": "125bde8ca615",
}


def arm_hashes() -> dict[str, str]:
    """Every arm of every experiment, as :mod:`helpers.study.findings` trains it (training seed 0)."""
    F, found = findings, {}

    def add(key, name, lr, steps, **changes):
        found[key] = config_hash(F.arm_config(F._toy_subject(name), lr, steps, 0, **changes))

    for name in arms.OBJECT_SUBJECTS:
        for label, lr in (("high", arms.HIGH_LR), ("low", arms.LOW_LR)):
            add(f"learning_rate/{name}/{label}", name, lr, arms.OBJECT_STEPS)
    for name in arms.SWEET_SPOT_SUBJECTS:
        for steps in arms.SWEET_SPOT_STEPS:
            add(f"steps/{name}/{steps}", name, arms.LOW_LR, steps)
    for label, prior in (("without prior", False), ("with prior", True)):
        add(f"prior_preservation/{label}", arms.FACE_SUBJECT, arms.FACE_LR, arms.FACE_STEPS,
            with_prior_preservation=prior, face=True)
    add("schedulers/run", arms.OBJECT_SUBJECTS[0], *arms.OVERFIT_RUN)
    for label, te in (("frozen", False), ("trained", True)):
        add(f"text_encoder/{label}", arms.FACE_SUBJECT, arms.FACE_LR, arms.FACE_STEPS, with_prior_preservation=True,
            face=True, train_text_encoder=te)
    add("ema/run", arms.OBJECT_SUBJECTS[0], arms.LOW_LR, arms.OBJECT_STEPS, use_ema=True)
    found["textual_inversion/after (template)"] = config_hash(F.after_ti_config(0))
    for name in (*arms.OBJECT_SUBJECTS, arms.FACE_SUBJECT):
        found[f"goal/{name}"] = config_hash(F.goal_arm_config(name, 0)[1])
    found["textual_inversion/ti"] = config_hash(F.ti_config(0))
    return found


@pytest.fixture()
def toyworld(monkeypatch, tmp_path):
    monkeypatch.setenv("COURSE_HOME", str(tmp_path))
    try:
        findings._settings()
    except RuntimeError as err:
        pytest.skip(str(err))


def test_the_study_arms_keep_their_run_hashes(toyworld):
    assert arm_hashes() == BEFORE


def test_the_findings_read_the_arms_module():
    assert (findings.HIGH_LR, findings.LOW_LR, findings.OBJECT_STEPS, findings.FACE_STEPS) == (
        arms.HIGH_LR, arms.LOW_LR, arms.OBJECT_STEPS, arms.FACE_STEPS)
    assert findings.OBJECT_SUBJECTS is arms.OBJECT_SUBJECTS and findings.FACE_SUBJECT is arms.FACE_SUBJECT
