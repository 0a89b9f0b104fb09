"""A wrong value in a notebook's configuration cell stops the next cell with the kit's one message.

The notebooks pass their configuration cell to ``setup_notebook``, ``prepare_subject`` and
``study_config`` (then ``TrainConfig``); each must refuse a value of the wrong kind or range
with a :class:`LearnerError` that names it, never a library's TypeError or KeyError.
"""

from __future__ import annotations

import pytest

from helpers.course.setup import setup_notebook
from helpers.errors import LearnerError
from helpers.profiles import get_profile
from helpers.train.config import TrainConfig
from helpers.train.settings import Subject, load_settings, prepare_subject, study_config


@pytest.fixture()
def fresh_home(monkeypatch, tmp_path):
    """An empty course home on the smoke profile."""
    monkeypatch.setenv("COURSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    return tmp_path / "home"


@pytest.mark.parametrize(("lr", "steps", "name"), [
    (2e-6, "400", "study_steps"),  # STUDY_STEPS = "400"
    ("2e-6", 400, "study_lr"),
    (2e-6, 0, "study_steps"),
    (2e-6, -400, "study_steps"),
    (2e-6, 400.5, "study_steps"),
    (float("nan"), 400, "study_lr"),
    (-2e-6, 400, "study_lr"),
    (2e-6, [400], "study_steps"),
    (2e-6, True, "study_steps"),
])
def test_study_config_refuses_a_wrong_arm_with_one_message(fresh_home, lr, steps, name):
    subject = prepare_subject("synthetic_ball")
    with pytest.raises(LearnerError, match=name):
        study_config(subject, lr, steps, settings=load_settings(quiet=True))


def test_study_config_takes_the_study_values(fresh_home):
    config = study_config(prepare_subject("synthetic_ball"), 2e-6, 400, settings=load_settings(quiet=True))
    assert config.max_train_steps == get_profile("smoke").steps(400)


def test_study_config_refuses_a_name_for_a_subject(fresh_home):
    with pytest.raises(LearnerError, match="Subject"):
        study_config("dog", 2e-6, 400, settings=load_settings(quiet=True))


@pytest.mark.parametrize("name", ["dgo", "", "Dog ", None, 3])
def test_unknown_subject_is_one_message(fresh_home, name):
    with pytest.raises(LearnerError, match="subject") as err:
        prepare_subject(name)
    assert not str(err.value).startswith("'")  # the message itself, not a KeyError's quoted one


@pytest.mark.parametrize("changes", [
    {"seed": "0"}, {"seed": -1}, {"n_seeds": 0}, {"n_prompts": "3"}, {"sampler": "ddpm"},
    {"subjects": "object"}, {"subjects": ("objects",)}, {"profile": "laptop"}, {"profile": 1},
])
def test_setup_notebook_refuses_a_wrong_choice_before_opening_the_home(fresh_home, changes):
    with pytest.raises(LearnerError):
        setup_notebook("01", **changes)
    assert not (fresh_home / "subjects").exists()  # nothing was prepared


@pytest.mark.parametrize(("field", "value"), [
    ("max_train_steps", "400"), ("learning_rate", "2e-6"), ("resolution", [512]), ("resolution", 500),
    ("train_batch_size", 0), ("learning_rate", float("inf")), ("mixed_precision", "fp32"),
    ("instance_prompt", ""), ("validation_seeds", 0), ("use_ema", "yes"), ("seed", 1.5),
])
def test_train_config_in_python_refuses_wrong_values(field, value):
    with pytest.raises(LearnerError, match=field):
        TrainConfig(**{field: value})


def test_train_config_takes_an_int_for_a_float_and_a_tuple_for_a_list():
    config = TrainConfig(learning_rate=1, validation_seeds=(3, 4))
    assert config.learning_rate == 1.0 and isinstance(config.learning_rate, float)
    assert config.validation_seeds == [3, 4]


def test_subject_objects_pass(fresh_home):
    assert isinstance(prepare_subject("synthetic_ball"), Subject)
