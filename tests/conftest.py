"""Shared test set-up: offline, the `smoke` profile, a tiny model, subject photos and configs built once."""

import os
import socket
import warnings

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ["COURSE_PROFILE"] = "smoke"
warnings.filterwarnings("ignore", message=".*torchvision.*")


@pytest.fixture(scope="session", autouse=True)
def runs_dir(tmp_path_factory):
    """Everything the kit writes during tests goes to a temporary folder."""
    path = tmp_path_factory.mktemp("runs")
    os.environ["COURSE_RUNS_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    """A tiny random Stable Diffusion saved as a pipeline folder (built once per session)."""
    from helpers.train.models import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("models") / "tiny-sd")


@pytest.fixture(scope="session")
def tiny_pipe(tiny_model_dir):
    """The tiny model loaded back through the kit's own loader."""
    from helpers.train.models import load_pipeline

    return load_pipeline(str(tiny_model_dir))


@pytest.fixture()
def subject_dir(tmp_path):
    """A folder of five synthetic subject photos."""
    from helpers.train.data import make_synthetic_subject

    return make_synthetic_subject(tmp_path / "subject", n=5, size=48)


@pytest.fixture(scope="session")
def train_subject(tmp_path_factory):
    """Four synthetic subject photos, made once per session."""
    from helpers.train.data import make_synthetic_subject

    return make_synthetic_subject(tmp_path_factory.mktemp("train-subject") / "subject", n=4, size=40)


@pytest.fixture(scope="session")
def make_config(tiny_model_dir, train_subject, tmp_path_factory):
    """Factory: a tiny-model DreamBooth config writing to a fresh folder; keyword arguments change fields."""
    from support import smoke_config

    def make(name: str, **changes):
        out = tmp_path_factory.mktemp("run") / name
        base = {"pretrained_model_name_or_path": str(tiny_model_dir), "instance_data_dir": str(train_subject),
                "output_dir": str(out)}
        return smoke_config(**{**base, **changes})

    return make


@pytest.fixture()
def free_port() -> str:
    """A TCP port that nothing listens on now, for a torchrun rendezvous."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return str(s.getsockname()[1])


@pytest.fixture()
def own_pipe(tiny_pipe):
    """A pipeline of its own around the shared tiny model's modules: a test may change its scheduler."""
    return type(tiny_pipe)(**tiny_pipe.components)
