"""A workshop pack: a finished course home that attendees open as their own, where notebooks only sample and draw."""

import json
import shutil
import zipfile
from pathlib import Path

import pytest
from support import smoke_config

from helpers.base.storage import WeightsNotHereError, find_weights
from helpers.cli import main
from helpers.course.continuation import find_homes, open_home
from helpers.course.workshop import MANIFEST, PACK_NAME, PackError, find_pack, pack_course, unpack_course
from helpers.sample import sample_runs
from helpers.train import dreambooth
from helpers.train.dreambooth import train_dreambooth

PROMPTS, SEEDS = ["a photo of sks toy on a table"], [0, 1]


def config_in(home, tiny_model_dir):
    """The config a notebook builds in ``home``: its subject's photos in the home, the default run folder."""
    return smoke_config(pretrained_model_name_or_path=str(tiny_model_dir),
                        instance_data_dir=str(home / "subjects" / "toy"), output_dir="")


def no_training(*args, **kwargs):
    raise AssertionError("a training step ran on a course home that holds the finished run")


@pytest.fixture(scope="module")
def finished_home(tmp_path_factory, tiny_model_dir, train_subject):
    """A course home after a tiny course: one finished run, sampled for a figure, a score table, a figure."""
    home = tmp_path_factory.mktemp("instructor") / "dreambooth-course"
    shutil.copytree(train_subject, home / "subjects" / "toy")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COURSE_HOME", str(home))
        run = train_dreambooth(config_in(home, tiny_model_dir), progress=False)
        comparison = sample_runs({"run": run.output_dir}, PROMPTS, SEEDS, num_inference_steps=2, resolution=32)
    (home / "profile.txt").write_text("smoke\n")
    (home / "scores").mkdir()
    (home / "scores" / "01_learning_rate.json").write_text(json.dumps({"run": str(run.output_dir)}))
    (home / "runs_in_use.json").write_text(json.dumps({"01": [str(run.output_dir)]}))
    (home / "notebooks").mkdir()
    (home / "notebooks" / "01_learning_rate.ipynb").write_text("{}")
    return home, run.output_dir, comparison


def test_a_pack_holds_the_runs_and_not_what_belongs_to_one_machine(finished_home, tmp_path):
    home, run, _ = finished_home
    report = pack_course(tmp_path / "pack.zip", home)
    assert report.runs_with_weights == 1 and report.runs_samples_only == 0
    names = zipfile.ZipFile(tmp_path / "pack.zip").namelist()
    rel = run.relative_to(home).as_posix()
    assert f"{rel}/done.json" in names and f"{rel}/model_index.json" in names and MANIFEST in names
    assert any(n.startswith(f"{rel}/comparisons/") for n in names) and "scores/01_learning_rate.json" in names
    assert not [n for n in names if n.startswith(("notebooks/", "runs_in_use")) or "/checkpoints/" in n]
    config = zipfile.ZipFile(tmp_path / "pack.zip").read(f"{rel}/config.yaml").decode()
    assert str(home) not in config and "{COURSE_HOME}/subjects/toy" in config


def test_an_unpacked_home_reuses_the_run_and_redraws_without_weights(finished_home, tmp_path, tiny_model_dir,
                                                                    monkeypatch):
    home, run, comparison = finished_home
    pack_course(tmp_path / "pack.zip", home)
    attendee = tmp_path / "attendee" / "dreambooth-course"
    assert main(["workshop", "unpack", str(tmp_path / "pack.zip"), str(attendee)]) == 0
    monkeypatch.setenv("COURSE_HOME", str(attendee))
    monkeypatch.setattr(dreambooth, "training_step", no_training)
    result = train_dreambooth(config_in(attendee, tiny_model_dir), progress=False, retrain_missing_weights=True)
    assert result.reused and result.output_dir == attendee / run.relative_to(home)
    monkeypatch.setattr("helpers.sample.load_run", no_training)  # the figure's images come from the pack
    again = sample_runs({"run": result.output_dir}, PROMPTS, SEEDS, num_inference_steps=2, resolution=32)
    assert [im.tobytes() for im in again.images("run")] == [im.tobytes() for im in comparison.images("run")]


def test_a_run_packed_without_weights_is_not_trained_again_unless_asked(finished_home, tmp_path, tiny_model_dir,
                                                                       monkeypatch):
    home, run, _ = finished_home
    released = tmp_path / "released" / "dreambooth-course"  # as on gpu, where release_weights freed the weights
    shutil.copytree(home, released)
    weightless = released / run.relative_to(home)
    for entry in ("unet", "text_encoder", "vae", "model_index.json"):
        path = weightless / entry
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    assert pack_course(tmp_path / "pack.zip", released).runs_samples_only == 1
    attendee = tmp_path / "attendee" / "dreambooth-course"
    unpack_course(tmp_path / "pack.zip", attendee)
    monkeypatch.setenv("COURSE_HOME", str(attendee))
    monkeypatch.setattr(dreambooth, "training_step", no_training)
    config = config_in(attendee, tiny_model_dir)
    assert train_dreambooth(config, progress=False, retrain_missing_weights=True).reused
    with pytest.raises(WeightsNotHereError, match="COURSE_TRAIN_PACKED"):
        find_weights(attendee / run.relative_to(home))
    monkeypatch.setenv("COURSE_TRAIN_PACKED", "1")  # the attendee chooses to train it
    with pytest.raises(AssertionError, match="a training step ran"):
        train_dreambooth(config, progress=False, retrain_missing_weights=True)


def test_the_opening_finds_a_pack_beside_the_home_or_among_kaggle_inputs(finished_home, tmp_path, monkeypatch):
    home, run, _ = finished_home
    drive = tmp_path / "MyDrive"
    pack_course(drive / PACK_NAME, home)
    monkeypatch.setenv("COURSE_HOME", str(drive / "dreambooth-course"))
    opened = open_home()
    assert (opened / run.relative_to(home) / "done.json").is_file() and (opened / "profile.txt").is_file()
    inputs = tmp_path / "input"
    with zipfile.ZipFile(drive / PACK_NAME) as pack:
        pack.extractall(inputs / "instructor-pack")  # Kaggle unzips an uploaded dataset
    assert find_pack(tmp_path / "empty-home", inputs) == inputs / "instructor-pack"
    assert find_homes(inputs) == []  # not a saved home to copy as it is: its paths are written as marks
    monkeypatch.setattr("helpers.course.workshop.LINK_MIN_BYTES", 1)  # every weight file counts as large
    kaggle_home = tmp_path / "working" / "dreambooth-course"
    unpack_course(inputs / "instructor-pack", kaggle_home)
    weights = [p for p in (kaggle_home / run.relative_to(home)).rglob("*.safetensors")]
    assert weights and all(p.is_symlink() for p in weights)  # read where the input lies, not copied


def test_course_homes_nested_in_the_home_stay_out_of_the_pack(finished_home, tmp_path):
    home, _, _ = finished_home
    nested = home / "test" / "01_learning_rate"  # make test's own course homes live in runs/test/
    (nested / "train").mkdir(parents=True)
    (nested / "home.json").write_text("{}")
    (nested / "train" / "big.bin").write_bytes(b"x" * 1000)
    pack_course(tmp_path / "pack.zip", home)
    assert not [n for n in zipfile.ZipFile(tmp_path / "pack.zip").namelist() if n.startswith("test/")]


def test_an_empty_home_is_not_a_pack(tmp_path):
    (tmp_path / "home").mkdir()
    with pytest.raises(PackError, match="run the course first"):
        pack_course(tmp_path / "pack.zip", tmp_path / "home")
    with pytest.raises(PackError, match="not a workshop pack"):
        unpack_course(tmp_path / "home", tmp_path / "other")


def test_a_room_without_face_photos_runs_the_face_notebooks_on_the_object(tmp_path, monkeypatch):
    from helpers.course.setup import setup_notebook

    monkeypatch.setenv("COURSE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("COURSE_FACE_SUBJECT", "dotted_star")  # on gpu: cat_toy, the study's object
    nb = setup_notebook("02", ("face",), "smoke")
    assert nb.subject.name == "dotted_star" and nb.subject.class_noun == "star"


def test_paths_into_another_copy_of_the_kit_travel_as_the_kit(tmp_path):
    from helpers.course.workshop import kits_of

    home = tmp_path / "home"
    home.mkdir()
    (home / "course-cpu.yaml").write_text("object_subject:\n  folder: /srv/other-kit/data/toyworld/subjects/star\n")
    assert Path("/srv/other-kit") in kits_of(home)
