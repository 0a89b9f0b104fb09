"""Share a finished run on the Hugging Face Hub: a private repository by default, the run folder uploaded.

The token comes from ``HF_TOKEN`` or a stored login and is handed to ``huggingface_hub``
only; nothing here prints it, and every error message is scrubbed of it.
"""

from __future__ import annotations

from pathlib import Path

from helpers.errors import LearnerError
from helpers.train.modelcard import CARD_NAME, write_model_card

# Training state and caches a shared model does not need (checkpoints hold the optimizer: GBs).
IGNORE_PATTERNS = ["checkpoints/**", "logs/tensorboard/**", "**/.ipynb_checkpoints/**", "config.yaml"]
# Settings that hold a place on the learner's machine (their photos' folder, their Drive ...): shared by name only
LOCAL_PATH_FIELDS = ("instance_data_dir", "class_data_dir", "output_dir", "logging_dir", "pretrained_model_name_or_path",
                     "textual_inversion_dir", "init_dir")

LOGIN_HELP = (
    "Log in once with `hf auth login` (older huggingface_hub: `huggingface-cli login`), or set the "
    "HF_TOKEN environment variable to a token with write access (https://huggingface.co/settings/tokens)."
)
NETWORK_HELP = (
    "Check the internet connection (and that HF_HUB_OFFLINE is not set to 1). Nothing was uploaded; "
    "run the same push again once online."
)


class PushError(LearnerError, RuntimeError):
    """The run could not be uploaded; the message says what to do."""


def scrub(text: str, token: str | None) -> str:
    """``text`` with every occurrence of the token replaced by ``***``."""
    return text.replace(token, "***") if token else text


def hub_token() -> str:
    """The token huggingface_hub would use (``HF_TOKEN`` or a stored login); an error that says how to get one."""
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise PushError(f"No Hugging Face token found, so nothing can be uploaded. {LOGIN_HELP}")
    return token


def explain(err: Exception, token: str, repo_id: str) -> PushError:
    """A :class:`PushError` saying what went wrong and what to do, free of the token."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    detail = scrub(f"{type(err).__name__}: {err}", token)
    status = getattr(getattr(err, "response", None), "status_code", None)
    if isinstance(err, HfHubHTTPError) and status in (401, 403):
        return PushError(f"The Hub refused the token for {repo_id} ({status}). {LOGIN_HELP}\n({detail})")
    network = ("Connect", "Timeout", "Network", "Transport")
    if isinstance(err, (OfflineModeIsEnabled, ConnectionError, TimeoutError)) or any(
        word in cls.__name__ for cls in type(err).__mro__ for word in network
    ):
        return PushError(f"Could not reach the Hugging Face Hub. {NETWORK_HELP}\n({detail})")
    return PushError(f"Uploading to {repo_id} failed: {detail}")


def check_run_folder(run_dir: Path) -> None:
    """Raise with advice unless ``run_dir`` is a finished run the kit wrote."""
    if not (run_dir / "config.yaml").exists():
        raise PushError(f"{run_dir} is not a run folder (no config.yaml): point to a finished run under runs/.")
    if not (run_dir / "done.json").exists():
        raise PushError(
            f"{run_dir} is not finished (no done.json): train it to the end (resume_from_checkpoint: latest) "
            "before sharing it."
        )


def shareable_config(run_dir: Path) -> bytes:
    """The run's ``config.yaml`` with every local folder cut to its last name (a Hub id stays as it is)."""
    import yaml

    config = yaml.safe_load((run_dir / "config.yaml").read_text()) or {}
    for key in LOCAL_PATH_FIELDS:
        value = config.get(key)
        if isinstance(value, str) and ("/" in value or "\\" in value) and (
                Path(value).is_absolute() or Path(value).exists() or value.startswith(("~", "."))):
            config[key] = Path(value).name
    return yaml.safe_dump(config, sort_keys=False).encode()


def push_run(run_dir: str | Path, repo_id: str, private: bool = True, token: str | None = None) -> str:
    """Upload a finished run to the Hub: ``create_repo`` (private unless told), then ``upload_folder``.

    A run without a model card gets one first (:func:`helpers.train.modelcard.write_model_card`).

    Args:
        run_dir: a finished run folder (full or LoRA).
        repo_id: ``"your-name/model-name"`` on the Hub.
        private: create the repository as private (the default); an existing one keeps its visibility.
        token: a Hub token; None uses ``HF_TOKEN`` or the stored login.

    Returns:
        The repository's URL.
    """
    from huggingface_hub import HfApi

    run_dir = Path(run_dir)
    check_run_folder(run_dir)
    if "/" not in repo_id:
        raise PushError(f"repo_id {repo_id!r}: write it as 'your-name/model-name'.")
    token = token or hub_token()
    if not (run_dir / CARD_NAME).exists():
        write_model_card(run_dir)
    api = HfApi(token=token)
    try:
        url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
        api.upload_folder(
            folder_path=str(run_dir),
            repo_id=repo_id,
            repo_type="model",
            ignore_patterns=IGNORE_PATTERNS,
            commit_message="Upload a DreamBooth run from the course kit",
        )
        api.upload_file(path_or_fileobj=shareable_config(run_dir), path_in_repo="config.yaml", repo_id=repo_id,
                        repo_type="model", commit_message="The run's settings, without local folders")
    except Exception as err:  # noqa: BLE001 (every failure becomes one message without the token)
        raise explain(err, token, repo_id) from None
    return str(url)

