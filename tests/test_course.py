"""The settings 00_setup writes and every later notebook reads."""

import pytest

from helpers.profiles import get_profile
from helpers.train.data import list_images
from helpers.train.settings import (
    default_settings,
    load_settings,
    prepare_subject,
    settings_path,
    study_config,
)


def test_smoke_defaults_use_kit_made_data():
    s = default_settings("smoke")
    assert s.pretrained_model_name_or_path == "kit:tiny-sd"
    assert len(list_images(s.object_subject.folder)) == 5
    assert s.object_subject.instance_prompt == "a photo of sks ball"


def test_settings_round_trip_per_profile():
    s = default_settings("smoke")
    s.object_subject.identifier = "zwx"
    path = s.save()
    assert path == settings_path() and path.name == "course-smoke.yaml"
    back = load_settings()
    assert back == s and back.object_subject.instance_prompt == "a photo of zwx ball"


def test_unknown_subject_lists_the_choices():
    with pytest.raises(KeyError, match="synthetic_ball"):
        prepare_subject("unicorn")


def test_upload_without_photos_says_what_to_do(monkeypatch):
    from helpers.course.setup import ensure_photos

    monkeypatch.setenv("COURSE_INTERACTIVE", "0")
    with pytest.raises(ValueError, match="put 3-10 photos into"):
        ensure_photos(prepare_subject("upload"))


def test_study_config_scales_through_the_profile():
    s = default_settings("smoke")
    profile = get_profile("smoke")
    high = study_config(s.object_subject, 5e-6, 400, settings=s)
    face = study_config(s.face_subject, 2e-6, 1200, with_prior_preservation=True, face=True, settings=s)
    assert high.learning_rate == pytest.approx(profile.lr(5e-6))
    assert high.train_batch_size == profile.train_batch_size_objects
    assert face.train_batch_size == profile.train_batch_size_faces and face.with_prior_preservation
    assert face.max_train_steps == profile.steps(1200)


def test_cpu_defaults_pick_a_toy_object_and_the_toy_face():
    from helpers.train.settings import toy_model_ready, toy_subjects

    s = default_settings("cpu")
    if toy_subjects() and toy_model_ready():
        assert s.pretrained_model_name_or_path == "kit:toyworld"
        assert s.face_subject.class_noun == "face" and s.object_subject.class_noun != "face"
        assert s.face_subject.class_prompt == "a photo of a face"
    else:
        assert s.pretrained_model_name_or_path == "kit:tiny-sd"


def test_printed_paths_hide_the_machine(runs_dir, tmp_path):
    from helpers.base.paths import display_path

    assert display_path(runs_dir / "train" / "dog-abc") == f"{runs_dir.name}/train/dog-abc"  # from the home, not the machine
    assert display_path(tmp_path / "elsewhere" / "x.png") == "x.png"
