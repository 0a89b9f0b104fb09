"""Session fixtures shared by the training tests: a subject folder and small configs on the tiny model."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def train_subject(tmp_path_factory):
    """Four synthetic subject photos, made once per session."""
    from helpers.data import make_synthetic_subject

    return make_synthetic_subject(tmp_path_factory.mktemp("train-subject") / "subject", n=4, size=40)


@pytest.fixture(scope="session")
def make_config(tiny_model_dir, train_subject, tmp_path_factory):
    """Factory: a tiny-model DreamBooth config writing to a fresh folder; keyword arguments change fields."""
    from helpers.config import smoke_config

    def make(name: str, **changes):
        out = tmp_path_factory.mktemp("run") / name
        return smoke_config(
            pretrained_model_name_or_path=str(tiny_model_dir),
            instance_data_dir=str(train_subject),
            output_dir=str(out),
            **changes,
        )

    return make


def tensors_of(module) -> dict:
    """A detached CPU copy of a module's state dict."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def same_tensors(a: dict, b: dict) -> bool:
    """True when two state dicts are bit-identical."""
    import torch

    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
