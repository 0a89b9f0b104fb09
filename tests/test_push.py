"""Pushing a run to the Hub: private by default, a card first, and failures that say what to do without the token."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import smoke_config

from helpers.share.hub import IGNORE_PATTERNS, PushError, push_run
from helpers.train.config import save_config

FAKE_TOKEN = "hf_NotARealTokenButLongEnough1234567890"
REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture()
def run(tmp_path):
    """A finished-looking run folder (config, done marker, a checkpoint that must not be uploaded)."""
    folder = tmp_path / "run"
    folder.mkdir()
    save_config(smoke_config(), folder / "config.yaml")
    (folder / "done.json").write_text(json.dumps({"hash": "x"}))
    (folder / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    return folder


@pytest.fixture()
def no_login(monkeypatch, tmp_path):
    """No token anywhere: no HF_TOKEN and no stored login."""
    from huggingface_hub import constants

    for name in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))
    monkeypatch.setattr(constants, "HF_STORED_TOKENS_PATH", str(tmp_path / "no-stored-tokens"))


def test_without_a_token_it_says_how_to_log_in(run, no_login):
    with pytest.raises(PushError, match="hf auth login") as info:
        push_run(run, "someone/model")
    assert "huggingface-cli login" in str(info.value) and "HF_TOKEN" in str(info.value)


def push_command(run: Path, **env: str) -> subprocess.CompletedProcess:
    """``python -m helpers push RUN someone/model`` in a fresh process, with the given environment changes."""
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT), "HF_TOKEN": FAKE_TOKEN, **env}
    return subprocess.run(
        [sys.executable, "-m", "helpers", "push", str(run), "someone/model"],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


def test_offline_push_says_so_and_never_shows_the_token(run):
    result = push_command(run, HF_HUB_OFFLINE="1")
    assert result.returncode == 2  # a learner's mistake: one message, status 2
    assert "Could not reach the Hugging Face Hub" in result.stderr and "HF_HUB_OFFLINE" in result.stderr
    assert FAKE_TOKEN not in result.stdout + result.stderr


def test_unreachable_hub_says_so_and_never_shows_the_token(run):
    # A closed local port: the connection is refused at once, on any machine, online or not.
    result = push_command(run, HF_HUB_OFFLINE="0", HF_ENDPOINT="http://127.0.0.1:9")
    assert result.returncode == 2  # a learner's mistake: one message, status 2
    assert "Could not reach the Hugging Face Hub" in result.stderr and "internet" in result.stderr
    assert FAKE_TOKEN not in result.stdout + result.stderr


def test_push_creates_a_private_repo_and_uploads_the_run_with_a_card(run, monkeypatch):
    calls = []

    class FakeApi:
        def __init__(self, token):
            calls.append(("token", token))

        def create_repo(self, repo_id, **kwargs):
            calls.append(("create_repo", repo_id, kwargs))
            return f"https://huggingface.co/{repo_id}"

        def upload_folder(self, **kwargs):
            calls.append(("upload_folder", kwargs))

        def upload_file(self, **kwargs):
            calls.append(("upload_file", kwargs))

    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    monkeypatch.setenv("HF_TOKEN", FAKE_TOKEN)
    assert push_run(run, "someone/model") == "https://huggingface.co/someone/model"
    assert calls[0] == ("token", FAKE_TOKEN)
    assert calls[1][:2] == ("create_repo", "someone/model") and calls[1][2]["private"] is True
    upload = calls[2][1]
    assert upload["folder_path"] == str(run) and upload["ignore_patterns"] == IGNORE_PATTERNS
    assert "checkpoints/**" in IGNORE_PATTERNS
    assert (run / "README.md").exists()  # the card was written before the upload
    shared = calls[3][1]
    assert shared["path_in_repo"] == "config.yaml" and "config.yaml" in IGNORE_PATTERNS
    push_run(run, "someone/model", private=False)
    assert calls[5][2]["private"] is False


def test_the_shared_config_names_local_folders_without_their_place(run):
    import yaml

    from helpers.share.hub import shareable_config
    from helpers.train.config import load_config

    config = load_config(run / "config.yaml")
    config.instance_data_dir = "/content/drive/MyDrive/dreambooth-course/subjects/upload"
    config.pretrained_model_name_or_path = "CompVis/stable-diffusion-v1-4"
    save_config(config, run / "config.yaml")
    shared = yaml.safe_load(shareable_config(run))
    assert shared["instance_data_dir"] == "upload"  # the folder's name, not the learner's Drive
    assert shared["pretrained_model_name_or_path"] == "CompVis/stable-diffusion-v1-4"  # a Hub id stays
    assert shared["learning_rate"] == config.learning_rate


def test_push_refuses_an_unfinished_run(run):
    (run / "done.json").unlink()
    with pytest.raises(PushError, match="not finished"):
        push_run(run, "someone/model", token=FAKE_TOKEN)


def test_push_wants_an_owner_in_the_repo_id(run):
    with pytest.raises(PushError, match="your-name/model-name"):
        push_run(run, "model", token=FAKE_TOKEN)
