"""Profiles: picked from the environment, overridable, and faithful to the study at gpu scale."""

import pytest
import torch

from helpers.profiles import PROFILES, get_profile


@pytest.mark.parametrize("cuda, expected", [(False, "cpu"), (True, "gpu")])
def test_environment_picks_the_profile(monkeypatch, cuda, expected):
    monkeypatch.setenv("COURSE_PROFILE", "smoke")
    assert get_profile().name == "smoke"
    monkeypatch.delenv("COURSE_PROFILE")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)  # the same answer on any machine
    assert get_profile().name == expected


def test_unknown_profile_lists_the_choices(monkeypatch):
    monkeypatch.setenv("COURSE_PROFILE", "laptop")
    with pytest.raises(ValueError, match="gpu, cpu, smoke"):
        get_profile()


def test_overrides_and_unknown_fields():
    assert get_profile("cpu", resolution=32).resolution == 32
    with pytest.raises(KeyError, match="resolution"):
        get_profile("cpu", resolutoin=32)


def test_gpu_profile_is_the_study():
    gpu = PROFILES["gpu"]
    assert (gpu.resolution, gpu.train_batch_size_objects, gpu.train_batch_size_faces) == (512, 4, 2)
    assert gpu.lr(2e-6) == 2e-6 and gpu.steps(400) == 400


def test_scaled_profiles_keep_the_study_ratios():
    for p in PROFILES.values():
        assert p.lr(5e-6) / p.lr(2e-6) == pytest.approx(2.5)
        assert p.steps(1200) >= p.steps(400) >= p.min_steps


def test_gpu_runs_checkpoint_often_enough_to_survive_a_disconnect():
    gpu = PROFILES["gpu"]
    assert 100 <= gpu.checkpointing_steps <= 200 and 1 <= gpu.checkpoints_total_limit <= 2
