"""The course home on Colab, Kaggle and a laptop (faked environments), free space and clean-up."""

import json
import shutil
from collections import namedtuple

import pytest

from helpers.base import home
from helpers.base.home import (
    GIB,
    HOME_NAME,
    NotEnoughSpaceError,
    check_free_space,
    course_home,
    detect_platform,
    free_bytes,
    hub_cache_dir,
    hub_cache_on_home,
    space_limit,
)
from helpers.course.cleanup import (
    cleanup_candidates,
    delete_candidates,
    describe_candidates,
    note_runs_in_use,
)
from helpers.course.continuation import open_home

PLATFORM_VARS = ["COURSE_HOME", "COURSE_RUNS_DIR", "COLAB_RELEASE_TAG", "KAGGLE_KERNEL_RUN_TYPE", "HF_HOME", "HF_HUB_CACHE",
                 "COURSE_HUB_CACHE_ON_HOME"]


@pytest.fixture()
def bare(monkeypatch, tmp_path):
    """No override and no platform variable; Colab's and Kaggle's roots point into tmp_path."""
    for name in PLATFORM_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(home, "COLAB_ROOT", tmp_path / "content")
    monkeypatch.setattr(home, "KAGGLE_ROOT", tmp_path / "kaggle" / "working")
    monkeypatch.setattr(home, "KAGGLE_INPUT", tmp_path / "kaggle" / "input")
    monkeypatch.setenv("HOME", str(tmp_path / "root"))
    return tmp_path


def test_local_home_is_runs_in_the_kit(bare):
    assert detect_platform() == "local"
    assert course_home() == home.KIT_ROOT / "runs"


def test_course_home_overrides_and_the_old_name_still_works(bare, monkeypatch):
    monkeypatch.setenv("COURSE_RUNS_DIR", str(bare / "old"))
    assert course_home() == bare / "old"
    monkeypatch.setenv("COURSE_HOME", str(bare / "new"))
    assert course_home() == bare / "new"  # the new name wins


def test_colab_home_on_drive_when_the_learner_agrees(bare, monkeypatch, capsys):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")
    assert detect_platform() == "colab"
    assert course_home() == bare / "content" / HOME_NAME  # Drive not mounted yet

    def mount():
        (bare / "content" / "drive" / "MyDrive").mkdir(parents=True)

    assert open_home(mount=mount) == bare / "content" / "drive" / "MyDrive" / HOME_NAME
    assert "Google Drive" in capsys.readouterr().out
    assert (bare / "content" / "drive" / "MyDrive" / HOME_NAME).is_dir()


def test_colab_home_declined_warns_that_a_disconnect_loses_it(bare, monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")

    def declined():
        raise ValueError("mount failed")

    with pytest.warns(UserWarning, match="deleted when this runtime ends"):
        assert open_home(mount=declined) == bare / "content" / HOME_NAME


def test_kaggle_home_in_working_says_how_to_keep_it(bare, monkeypatch, capsys):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert detect_platform() == "kaggle"
    assert open_home() == bare / "kaggle" / "working" / HOME_NAME
    out = capsys.readouterr().out
    assert "Save Version" in out and "20 GB" in out


def test_hub_cache_lives_in_the_home_unless_the_learner_chose_one(bare, monkeypatch):
    monkeypatch.setenv("COURSE_HOME", str(bare / "h"))
    assert hub_cache_dir() == bare / "h" / "hub-cache"
    monkeypatch.setenv("HF_HOME", str(bare / "mine"))
    assert hub_cache_dir() is None


def test_hub_cache_stays_on_the_machine_on_colab_and_kaggle_unless_asked(bare, monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")
    (bare / "content" / "drive" / "MyDrive").mkdir(parents=True)
    assert hub_cache_dir() == bare / "content" / "hub-cache"  # not on Drive: 4 GB of quota
    assert not hub_cache_on_home()
    monkeypatch.setenv("COURSE_HUB_CACHE_ON_HOME", "1")
    assert hub_cache_dir() == bare / "content" / "drive" / "MyDrive" / HOME_NAME / "hub-cache" and hub_cache_on_home()
    monkeypatch.delenv("COURSE_HUB_CACHE_ON_HOME")
    monkeypatch.delenv("COLAB_RELEASE_TAG")
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    assert hub_cache_dir() == bare / "root" / ".cache" / "huggingface" / "hub"  # outside /kaggle/working's 20 GB
    monkeypatch.setenv("HF_HUB_CACHE", str(bare / "mine"))
    assert hub_cache_dir() is None


DiskUsage = namedtuple("DiskUsage", "total used free")


def fake_disks(monkeypatch, sizes):
    """shutil.disk_usage answering ``sizes[prefix]`` free bytes for paths under each prefix (the longest wins)."""
    def usage(path):
        prefix = max((p for p in sizes if str(path).startswith(str(p))), key=lambda p: len(str(p)))
        return DiskUsage(10 * sizes[prefix], 9 * sizes[prefix], sizes[prefix])

    monkeypatch.setattr(shutil, "disk_usage", usage)


def test_free_space_check_says_what_to_do(bare, monkeypatch):
    monkeypatch.setenv("COURSE_HOME", str(bare / "h"))
    check_free_space(None, 1, "this run")  # one byte fits anywhere
    with pytest.raises(NotEnoughSpaceError, match="cleanup_candidates.*larger disk"):
        check_free_space(None, 1 << 60, "this run")


def test_colab_with_drive_compares_against_drive_quota(bare, monkeypatch):
    monkeypatch.setenv("COLAB_RELEASE_TAG", "release-colab")
    drive = bare / "content" / "drive"
    (drive / "MyDrive").mkdir(parents=True)
    fake_disks(monkeypatch, {"/": 80 * GIB, drive: 2 * GIB})  # the mount reports Drive's quota
    assert free_bytes() == 2 * GIB and space_limit().limit == "free on your Google Drive"
    assert free_bytes(bare / "content" / "hub-cache") == 80 * GIB  # the machine's disk
    with pytest.raises(NotEnoughSpaceError) as err:
        check_free_space(None, 3 * GIB, "This DreamBooth run")
    message = str(err.value)
    assert "only 2.00 GiB are free on your Google Drive" in message and "Trash" in message
    assert "/content/dreambooth-course" in message


def test_kaggle_compares_against_what_is_left_of_the_saved_output(bare, monkeypatch):
    monkeypatch.setenv("KAGGLE_KERNEL_RUN_TYPE", "Interactive")
    monkeypatch.setattr(home, "KAGGLE_OUTPUT_BYTES", 10_000)
    working = bare / "kaggle" / "working"
    fake_disks(monkeypatch, {"/": 1 << 40})
    (working / HOME_NAME / "train").mkdir(parents=True)
    (working / HOME_NAME / "train" / "weights.bin").write_bytes(b"w" * 3000)
    (working / "notebook.log").write_bytes(b"l" * 1000)  # anything in /kaggle/working counts
    (bare / "kaggle" / "input").mkdir(parents=True)
    (bare / "kaggle" / "input" / "linked.bin").write_bytes(b"i" * 2000)
    (working / HOME_NAME / "linked.bin").symlink_to(bare / "kaggle" / "input" / "linked.bin")
    assert free_bytes() == 10_000 - 6000
    assert free_bytes(bare / "elsewhere") == 1 << 40  # outside /kaggle/working: only the disk
    with pytest.raises(NotEnoughSpaceError, match="only 0.00 GiB are left of the 0.0 GB Kaggle saves") as err:
        check_free_space(None, 5000, "This DreamBooth run")
    assert "COURSE_HOME=/tmp" in str(err.value)
    fake_disks(monkeypatch, {"/": 1000})  # a fuller disk is the tighter limit
    assert free_bytes() == 1000 and space_limit().limit == "free on this machine's disk"


def make_run(root, name, checkpoints, done):
    run = root / "train" / name
    (run / "unet").mkdir(parents=True)
    (run / "config.yaml").write_text("seed: 0\n")
    (run / "unet" / "weights.bin").write_bytes(b"w" * 1000)
    for step in checkpoints:
        (run / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True)
        (run / "checkpoints" / f"checkpoint-{step}" / "state.bin").write_bytes(b"s" * 500)
        (run / "checkpoints" / f"checkpoint-{step}" / "checkpoint.json").write_text("{}")
    if done:
        (run / "done.json").write_text(json.dumps({"step": 10}))
    return run


def test_cleanup_lists_old_checkpoints_and_unused_runs(bare, monkeypatch):
    root = bare / "h"
    monkeypatch.setenv("COURSE_HOME", str(root))
    finished = make_run(root, "finished", [5, 10], done=True)
    unfinished = make_run(root, "unfinished", [5, 10, 15], done=False)
    (unfinished / "checkpoints" / "checkpoint-20.partial").mkdir()  # killed while writing it
    names = {c.path.relative_to(root).as_posix(): c.reason for c in cleanup_candidates()}
    assert set(names) == {"train/finished/checkpoints/checkpoint-5", "train/finished/checkpoints/checkpoint-10",
                          "train/unfinished/checkpoints/checkpoint-5", "train/unfinished/checkpoints/checkpoint-10",
                          "train/unfinished/checkpoints/checkpoint-20.partial"}
    other = make_run(root, "other", [], done=True)
    note_runs_in_use("01", [finished])  # now the notebooks say what they use: "other" is not used
    found = cleanup_candidates()
    assert other in [c.path for c in found]
    run_bytes = 1000 + len("seed: 0\n") + len(json.dumps({"step": 10}))
    assert found[0].path == other and found[0].size_bytes == run_bytes  # the largest first
    assert "GB in all" in describe_candidates(found)
    freed = delete_candidates(found)
    assert freed == sum(c.size_bytes for c in found) and not other.exists()
    assert (unfinished / "checkpoints" / "checkpoint-15").is_dir()  # resuming still has what it needs
    assert (finished / "unet" / "weights.bin").exists()


def test_a_hub_model_not_downloaded_yet_counts_as_stable_diffusion_and_its_download(monkeypatch):
    from support import smoke_config

    from helpers.train import models

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    config = smoke_config()
    config.pretrained_model_name_or_path = "someone/never-downloaded-sd"
    config.with_prior_preservation = False
    sd1 = sum(models.SD1_PART_BYTES.values())
    assert models.download_bytes(config.pretrained_model_name_or_path) == sd1
    assert estimate_run_bytes(config) >= 2 * sd1  # the download and the saved pipeline, both on the course home's disk
    assert models.download_bytes("kit:tiny-sd") == 0  # built on disk: nothing to download


# ----------------------------------------------------------------- a helper these tests use


def estimate_run_bytes(config) -> int:
    """About how many bytes a run writes in all (see :func:`run_bytes` for the parts)."""
    from helpers.train.dreambooth import run_bytes

    return sum(run_bytes(config).values())
