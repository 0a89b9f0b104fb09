"""Continuing on Kaggle: a notebook finds the course homes that earlier notebooks saved (faked /kaggle tree)."""

import json
import os
import shutil

import pytest
from support import smoke_config

from helpers.base import home
from helpers.base.home import HOME_NAME
from helpers.course import continuation
from helpers.course.continuation import continue_from_inputs, find_homes, is_course_home, open_home
from helpers.course.setup import setup_notebook
from helpers.train.config import config_hash, resolve_output_dir, save_config
from helpers.train.data import make_synthetic_subject
from helpers.train.runs import run_status
from helpers.train.settings import default_settings, run_finished, settings_path

PLATFORM_VARS = ["COURSE_HOME", "COURSE_RUNS_DIR", "COLAB_RELEASE_TAG", "HF_HOME", "HF_HUB_CACHE",
                 "COURSE_HUB_CACHE_ON_HOME"]


@pytest.fixture()
def kaggle(monkeypatch, tmp_path):
    """A Kaggle notebook whose /kaggle/working and /kaggle/input are folders in tmp_path."""
    for name in PLATFORM_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    monkeypatch.setenv("HOME", str(tmp_path / "root"))
    monkeypatch.setattr(home, "KAGGLE_ROOT", tmp_path / "kaggle" / "working")
    monkeypatch.setattr(home, "KAGGLE_INPUT", tmp_path / "kaggle" / "input")
    monkeypatch.setattr(continuation, "LINK_MIN_BYTES", 64)  # the fake weights below are small
    return tmp_path / "kaggle"


def working_home(kaggle):
    return kaggle / "working" / HOME_NAME


def save_version(kaggle, slug, depth=("",)):
    """What 'Save Version' and 'Add Input' do: the working folder becomes read-only input, the machine starts afresh."""
    target = kaggle / "input" / slug
    for part in depth:
        target = target / part if part else target
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(kaggle / "working", target)
    (kaggle / "working").mkdir()
    for path in [target, *target.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o555 if path.is_dir() else 0o444)
    return target / HOME_NAME


def finished_run(name="dog", weights=b"w" * 200):
    """A finished run in the course home as the trainer leaves it: config, weights, samples, done.json."""
    subject = make_synthetic_subject(home.course_home() / "subjects" / name, n=3, size=16)
    config = smoke_config(pretrained_model_name_or_path="someone/never-downloaded-sd", instance_data_dir=str(subject),
                          instance_prompt=f"a photo of sks {name}", with_prior_preservation=False)
    run = resolve_output_dir(config)
    save_config(config, run / "config.yaml")
    (run / "unet").mkdir()
    (run / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(weights)
    (run / "samples").mkdir()
    (run / "samples" / "step-4.png").write_bytes(b"png")
    (run / "done.json").write_text(json.dumps({"hash": config_hash(config)}))
    return config


def writable(folder):
    for path in [folder, *folder.rglob("*")]:
        if not path.is_symlink():
            path.chmod(0o755)


@pytest.fixture(autouse=True)
def writable_again(tmp_path):
    """Let pytest delete the read-only inputs afterwards."""
    yield
    writable(tmp_path)


def test_the_next_notebook_finds_00s_settings_and_photos(kaggle, capsys):
    open_home()
    default_settings("smoke").save()  # notebook 00 saves the learner's choices
    save_version(kaggle, "dreambooth-00-setup")
    os.environ.pop("COURSE_PROFILE")  # a fresh kernel: the profile comes from the saved home
    settings = setup_notebook("01").settings
    out = capsys.readouterr().out
    assert "saved by 00_setup" in out and settings.profile == "smoke"
    assert "Continuing from a saved course home" in out and "(dreambooth-00-setup)" in out
    assert "2 settings files" in out and "1 subject (5 photos)" in out
    assert settings_path().is_file() and not settings_path().is_symlink()  # a copy: the kit may save it again


def test_finished_runs_stay_finished_and_their_weights_are_linked(kaggle, capsys):
    open_home()
    config = finished_run()
    save_version(kaggle, "my-notebook-01", depth=("notebooks", "someone"))  # a deeper layout
    capsys.readouterr()
    open_home()
    out = capsys.readouterr().out
    assert run_finished(config)
    run = resolve_output_dir(config)
    weights = run / "unet" / "diffusion_pytorch_model.safetensors"
    assert weights.is_symlink() and weights.resolve().is_relative_to(kaggle / "input")
    assert not (run / "config.yaml").is_symlink() and (run / "samples" / "step-4.png").read_bytes() == b"png"
    assert "1 finished run" in out and "(my-notebook-01/notebooks/someone)" in out


def test_nothing_already_in_working_is_replaced(kaggle, capsys):
    open_home()
    config = finished_run()
    run = resolve_output_dir(config)
    (home.course_home() / "course-smoke.yaml").write_text("saved: earlier\n")
    save_version(kaggle, "nb-00")
    mine = working_home(kaggle)
    mine.mkdir()
    (mine / "course-smoke.yaml").write_text("saved: here\n")
    (run / "logs").mkdir(parents=True)
    (run / "logs" / "train_log.csv").write_text("step\n")  # this notebook's own run of the same name
    continue_from_inputs(mine)
    assert (mine / "course-smoke.yaml").read_text() == "saved: here\n"
    assert sorted(p.name for p in run.iterdir()) == ["logs"]
    assert (mine / "subjects" / "dog").is_dir() and not run_finished(config)


def test_several_saved_homes_merge_newest_first(kaggle, capsys):
    open_home()
    config = finished_run("dog")
    (home.course_home() / "course-smoke.yaml").write_text("saved: first\n")
    older = save_version(kaggle, "nb-00")
    open_home()  # notebook 01, with 00's output attached; then it trains a cat and unfinished copy of dog exists
    other = finished_run("cat")
    (home.course_home() / "course-smoke.yaml").write_text("saved: second\n")
    (resolve_output_dir(config) / "done.json").unlink()  # 01's copy of the dog run is unfinished
    newer = save_version(kaggle, "nb-01")
    assert find_homes() == [newer, older]
    capsys.readouterr()
    open_home()
    out = capsys.readouterr().out
    assert "2 saved course homes" in out and "merged newest first (nb-01, nb-00)" in out
    assert (working_home(kaggle) / "course-smoke.yaml").read_text() == "saved: second\n"
    assert run_finished(config) and run_finished(other)  # the finished copy of dog wins over the newer unfinished one


def test_an_unfinished_run_comes_ready_to_resume(kaggle, capsys):
    open_home()
    config = finished_run()
    run = resolve_output_dir(config)
    (run / "done.json").unlink()  # stopped before the end (the session's time ran out)
    for name, weights in (("checkpoint-2", "optimizer.bin"), ("checkpoint-4.partial", "optimizer.bin")):
        (run / "checkpoints" / name).mkdir(parents=True)
        (run / "checkpoints" / name / weights).write_bytes(b"o" * 200)
    (run / "checkpoints" / "checkpoint-2" / "checkpoint.json").write_text('{"step": 2}')
    save_version(kaggle, "nb-01")
    capsys.readouterr()
    open_home()
    assert "1 unfinished run" in capsys.readouterr().out
    assert run_status(run, config_hash(config), type(config)) == "partial"
    assert (run / "checkpoints" / "checkpoint-2" / "optimizer.bin").is_symlink()  # read to resume: linked
    assert not (run / "unet" / "diffusion_pytorch_model.safetensors").is_symlink()  # the trainer may write here
    assert [p.name for p in (run / "checkpoints").iterdir()] == ["checkpoint-2"]  # the half-written one stays behind


def test_a_run_whose_weights_are_in_an_input_not_attached_is_left_out(kaggle, capsys):
    open_home()
    config = finished_run()
    first = save_version(kaggle, "nb-00")
    open_home()  # brings the run, its weights linked into nb-00
    second = save_version(kaggle, "nb-01")
    writable(first.parent)
    shutil.rmtree(first.parent)  # the next notebook attaches only nb-01: the links lead nowhere
    capsys.readouterr()
    open_home()
    out = capsys.readouterr().out
    assert not resolve_output_dir(config).exists()
    assert "left out 1 folder(s)" in out and "train/" in out and second.is_dir()


def test_a_course_home_is_recognised_by_its_files_not_only_its_name(tmp_path):
    (tmp_path / "renamed" / "subjects").mkdir(parents=True)
    (tmp_path / "renamed" / "train").mkdir()
    (tmp_path / "dataset" / "train").mkdir(parents=True)  # an image dataset with a train/ folder is not one
    (tmp_path / "settings-only").mkdir()
    (tmp_path / "settings-only" / "course-gpu.yaml").write_text("profile: gpu\n")
    assert is_course_home(tmp_path / "renamed") and is_course_home(tmp_path / "settings-only")
    assert not is_course_home(tmp_path / "dataset")
    assert set(find_homes(tmp_path)) == {tmp_path / "renamed", tmp_path / "settings-only"}


def test_no_inputs_means_nothing_to_say(kaggle, capsys):
    open_home()
    assert continue_from_inputs(working_home(kaggle)) is None
    assert "Continuing" not in capsys.readouterr().out
