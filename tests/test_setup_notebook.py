"""Every notebook sets itself up alone: course home, profile, model and subjects; the learner's own photos."""

import io
import os

import pytest
from PIL import Image

from helpers.course.cleanup import runs_in_use
from helpers.course.setup import ensure_photos, setup_notebook
from helpers.course.uploads import PhotosNeeded, ask_for_photos, convert_heic_folder, save_photo
from helpers.train import settings as course
from helpers.train.data import SubjectDataError, list_images
from helpers.train.prompts import subject_prompts
from helpers.train.settings import default_settings


@pytest.fixture()
def fresh_home(monkeypatch, tmp_path):
    """An empty course home and no profile in the environment, as in a new Colab runtime."""
    monkeypatch.setenv("COURSE_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("COURSE_PROFILE", raising=False)
    return tmp_path / "home"


def jpeg_bytes(color=(200, 30, 30), size=(80, 60)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def heic_bytes() -> bytes:
    pillow_heif = pytest.importorskip("pillow_heif")
    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 200, 10)).save(buffer, "HEIF")
    return buffer.getvalue()


def test_a_notebook_alone_uses_the_profile_defaults(fresh_home, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    settings = setup_notebook("03").settings
    assert settings == default_settings("smoke")
    out = capsys.readouterr().out
    assert "profile's defaults" in out and "notebook 03" in out
    assert len(list_images(settings.object_subject.folder)) == 5


def test_the_opening_object_carries_what_a_notebook_builds_first(fresh_home, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    nb = setup_notebook("01", n_prompts=3, seed=5, n_seeds=2, sampler="ddim")
    assert nb.subject == nb.settings.object_subject and nb.profile.name == "smoke"
    assert nb.prompts == subject_prompts(nb.subject, 1)  # smoke samples one prompt
    assert nb.seeds == [5, 6] and nb.sampler == "ddim" and nb.home == fresh_home
    assert len(nb.photos) == 5 and nb.photos[0].size == (nb.profile.resolution,) * 2
    assert nb.config(2e-6, 400).seed == 5
    nb.keep(fresh_home / "run-a")
    nb.keep(fresh_home / "run-b")  # added to what this notebook uses, not replacing it
    assert runs_in_use() == {(fresh_home / "run-a").resolve(), (fresh_home / "run-b").resolve()}


def test_the_profile_chosen_in_00_setup_holds_in_later_notebooks(fresh_home, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    default_settings("smoke").save()  # what 00_setup does with PROFILE = "smoke"
    monkeypatch.delenv("COURSE_PROFILE")  # a later notebook, in a new kernel
    settings = setup_notebook("01").settings
    assert settings.profile == "smoke"
    assert os.environ["COURSE_PROFILE"] == "smoke"


def test_a_notebook_profile_overrides_the_saved_one(fresh_home, monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    default_settings("smoke").save()
    monkeypatch.delenv("COURSE_PROFILE")
    assert setup_notebook("06", profile="cpu").settings.profile == "cpu"
    with pytest.raises(ValueError, match="Choose one of"):
        setup_notebook("01", profile="laptop")


def test_gpu_defaults_are_the_cat_toy_and_your_own_face(fresh_home, monkeypatch):
    monkeypatch.setattr(course, "prepare_subject", lambda name, identifier="sks": course.Subject(name, "x", "toy"))
    settings = default_settings("gpu")
    assert settings.object_subject.name == "cat_toy"
    assert settings.face_subject.name == "upload" and settings.face_subject.class_noun == "person"


def test_missing_own_photos_outside_a_notebook_say_where_to_put_them(fresh_home, monkeypatch):
    monkeypatch.setenv("COURSE_INTERACTIVE", "0")  # make course, nbval: nobody to ask
    subject = course.Subject("upload", str(fresh_home / "subjects" / "upload"), "person")
    with pytest.raises(SubjectDataError, match="put 3-10 photos into"):
        ensure_photos(subject)


def test_colab_upload_saves_the_photos_and_converts_heic(tmp_path, capsys):
    uploads = {"a.jpg": jpeg_bytes(), "b.HEIC": heic_bytes()}
    saved = ask_for_photos(tmp_path / "upload", "colab", colab_upload=lambda: uploads)
    assert sorted(p.name for p in saved) == ["a.jpg", "b.jpg"]
    assert Image.open(tmp_path / "upload" / "b.jpg").size == (64, 48)
    assert "converted b.HEIC" in capsys.readouterr().out
    assert len(list_images(tmp_path / "upload")) == 2


def test_widget_path_shows_the_button_then_asks_to_run_again(tmp_path):
    shown = []
    with pytest.raises(PhotosNeeded, match="run this cell again"):
        ask_for_photos(tmp_path / "upload", "local", show=shown.append)
    assert len(shown) == 1


def test_a_broken_upload_is_refused_with_advice(tmp_path):
    with pytest.raises(SubjectDataError, match="JPEG, PNG or HEIC"):
        save_photo("photo.jpg", b"not an image", tmp_path)
    assert not (tmp_path / "photo.jpg").exists()


def test_heic_copied_into_a_drive_folder_is_converted(tmp_path):
    (tmp_path / "IMG_1.heic").write_bytes(heic_bytes())
    converted = convert_heic_folder(tmp_path)
    assert [p.name for p in converted] == ["IMG_1.jpg"]
    assert convert_heic_folder(tmp_path) == []  # done once


def test_a_notebook_rerun_resumes_its_interrupted_run(fresh_home, monkeypatch):
    """What a disconnect does to a notebook's training cell, and what running the cell again does."""
    from helpers.train.dreambooth import train_dreambooth
    from helpers.train.settings import run_finished, study_config

    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    settings = setup_notebook("01").settings
    config = study_config(settings.object_subject, 2e-6, 800, settings=settings, checkpointing_steps=1)
    assert config.resume_from_checkpoint == "latest" and config.max_train_steps >= 3
    first = train_dreambooth(config, stop_after_steps=2, progress=False)  # the runtime went away here
    assert first.losses["step"] == [1, 2] and not run_finished(config)
    again = train_dreambooth(study_config(settings.object_subject, 2e-6, 800, settings=settings), progress=False)
    assert again.output_dir == first.output_dir  # the same run, not a new one
    assert again.record["resumed_from"] == "checkpoint-2"
    assert again.losses["step"] == list(range(1, config.max_train_steps + 1)) and run_finished(config)
