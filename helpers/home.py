"""The course home: the one folder that holds everything a learner makes.

Settings, uploaded photos, class images, training runs, figures and the Hub cache all live
in the course home, so that each notebook finds what the others made, even when Colab or
Kaggle gives every notebook a fresh machine. Where it is:

| where the notebook runs | course home |
|---|---|
| ``COURSE_HOME`` is set (or the older ``COURSE_RUNS_DIR``) | that folder |
| Colab, Google Drive mounted | ``MyDrive/dreambooth-course`` on Drive: survives a disconnect |
| Colab, Drive declined | ``/content/dreambooth-course``: lost when the runtime ends |
| Kaggle | ``/kaggle/working/dreambooth-course``: kept by "Save Version" |
| anywhere else | ``runs/`` in the kit's folder |
"""

from __future__ import annotations

import os
import shutil
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

from .errors import LearnerError

HOME_ENV = "COURSE_HOME"
RUNS_DIR_ENV = "COURSE_RUNS_DIR"  # the name used before the course home; still honoured
HOME_NAME = "dreambooth-course"
COLAB_ROOT = Path("/content")
KAGGLE_ROOT = Path("/kaggle/working")
GIB = 1024**3
# The kit is installed editable (``pip install -e .``), so the package sits in the repository.
KIT_ROOT = Path(__file__).resolve().parents[1]


class NotEnoughSpaceError(LearnerError, OSError):
    """The disk under the course home has less free space than a job will write."""


def detect_platform() -> str:
    """``"colab"``, ``"kaggle"`` or ``"local"``, from the variables those platforms set."""
    if os.environ.get("COLAB_RELEASE_TAG") or "google.colab" in sys.modules:
        return "colab"
    if os.environ.get("KAGGLE_KERNEL_RUN_TYPE"):
        return "kaggle"
    return "local"


def interactive() -> bool:
    """True in a live Jupyter kernel unless ``COURSE_INTERACTIVE=0`` (tests and headless runs such as make course)."""
    return os.environ.get("COURSE_INTERACTIVE", "1") == "1" and "ipykernel" in sys.modules


def drive_folder() -> Path:
    """Where Colab mounts Google Drive's "My Drive"."""
    return COLAB_ROOT / "drive" / "MyDrive"


def course_home() -> Path:
    """The folder where this learner's work lives (see the module docstring for the rules)."""
    for name in (HOME_ENV, RUNS_DIR_ENV):
        if os.environ.get(name):
            return Path(os.environ[name]).expanduser()
    platform = detect_platform()
    if platform == "colab":
        return drive_folder() / HOME_NAME if drive_folder().is_dir() else COLAB_ROOT / HOME_NAME
    if platform == "kaggle":
        return KAGGLE_ROOT / HOME_NAME
    return KIT_ROOT / "runs"


def _mount_drive() -> None:
    from google.colab import drive  # only on Colab

    drive.mount(str(COLAB_ROOT / "drive"))


def open_home(mount: Callable[[], None] | None = None) -> Path:
    """Make the course home ready and say where it is; on Colab, offer to mount Google Drive first.

    Args:
        mount: what mounts Drive on Colab (tests pass a fake); None uses ``google.colab.drive``.

    Returns:
        The course home, created if needed.
    """
    overridden = any(os.environ.get(name) for name in (HOME_ENV, RUNS_DIR_ENV))
    platform = detect_platform()
    if platform == "colab" and not overridden and not drive_folder().is_dir():
        print("Your photos, runs and figures will be kept on your Google Drive, so that a disconnect loses nothing "
              "and every notebook of the course finds them; Colab now asks you to allow that.")
        try:
            (mount or _mount_drive)()
        except Exception as err:  # noqa: BLE001 (declined, timed out, or no Drive: all mean the same here)
            warnings.warn(f"Google Drive is not mounted ({err}). Your work goes to {COLAB_ROOT / HOME_NAME}, which "
                          "is deleted when this runtime ends or disconnects.", stacklevel=2)
    home = course_home()
    home.mkdir(parents=True, exist_ok=True)
    if platform == "kaggle" and not overridden:
        print(f"Your work goes to {home} (Kaggle gives /kaggle/working about 20 GB). It is kept only when you "
              "'Save Version' (Save & Run All); to continue in another notebook, add that saved output as its input.")
    return home


def hub_cache_dir() -> Path | None:
    """Where downloaded models and datasets are cached: the course home's ``hub-cache``.

    None where the learner chose a cache of their own (``HF_HUB_CACHE`` or ``HF_HOME``), so
    that one is used as it is.
    """
    if os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME"):
        return None
    return course_home() / "hub-cache"


def free_bytes(path: str | Path | None = None) -> int:
    """Free space on the disk that holds ``path`` (default: the course home), in bytes."""
    path = Path(path or course_home()).absolute()
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def check_free_space(folder: str | Path | None, needed: int, what: str = "this run") -> None:
    """Raise :class:`NotEnoughSpaceError` unless ``needed`` bytes fit on the disk under ``folder``.

    Args:
        folder: where the job writes; None means the course home.
        needed: what the job will write, in bytes.
        what: the job, as the message should name it ("This DreamBooth run").
    """
    free = free_bytes(folder)
    if free < needed:
        raise NotEnoughSpaceError(
            f"{what} writes about {needed / GIB:.2f} GiB but only {free / GIB:.2f} GiB are free in the course "
            "home. `cleanup_candidates()` from helpers.cleanup lists what can be deleted (old checkpoints, runs no "
            "notebook uses) and how much that frees; or lower checkpoints_total_limit, or set COURSE_HOME to a "
            "larger disk."
        )
