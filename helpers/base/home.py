"""The course home: the one folder that holds everything a learner makes.

Settings, uploaded photos, class images, training runs and figures all live in the course
home, so that each notebook finds what the others made, even when Colab or Kaggle gives every
notebook a fresh machine. Where it is:

| where the notebook runs | course home |
|---|---|
| ``COURSE_HOME`` is set (or the older ``COURSE_RUNS_DIR``) | that folder |
| Colab, Google Drive mounted | ``MyDrive/dreambooth-course`` on Drive: survives a disconnect |
| Colab, Drive declined | ``/content/dreambooth-course``: lost when the runtime ends |
| Kaggle | ``/kaggle/working/dreambooth-course``: kept by "Save Version"; the saved outputs of earlier notebooks, added as inputs, are brought in (:mod:`helpers.course.continuation`) |
| anywhere else | ``runs/`` in the kit's folder |

Downloaded models (the Hub cache) stay on the machine's own disk on Colab and Kaggle, where a
download takes minutes but 4 GB of Drive or of Kaggle's saved output is scarce; locally they
are in the course home. The free-space check measures the limit that applies: Drive's free
quota, what is left of the 20 GB Kaggle saves, or the disk.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from helpers.errors import LearnerError

HOME_ENV = "COURSE_HOME"
RUNS_DIR_ENV = "COURSE_RUNS_DIR"  # the name used before the course home; still honoured
HOME_NAME = "dreambooth-course"
COLAB_ROOT = Path("/content")
KAGGLE_ROOT = Path("/kaggle/working")
KAGGLE_INPUT = Path("/kaggle/input")  # where Kaggle mounts datasets and notebook outputs added as inputs
# Kaggle keeps at most 20 GB of /kaggle/working when a version is saved:
# https://www.kaggle.com/docs/notebooks (Technical specifications)
KAGGLE_OUTPUT_BYTES = 20 * 10**9
HUB_ON_HOME_ENV = "COURSE_HUB_CACHE_ON_HOME"  # "1": keep downloads in the course home on Colab and Kaggle too
HOME_RECORD = "home.json"  # when a notebook last opened this home (orders saved homes, newest first)
GIB = 1024**3
# The kit is installed editable (``pip install -e .``), so the package sits in the repository.
KIT_ROOT = Path(__file__).resolve().parents[2]


class NotEnoughSpaceError(LearnerError, OSError):
    """Less room is left under the course home's limit (disk, Drive quota, Kaggle's saved output) than a job writes."""


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


def hub_cache_dir() -> Path | None:
    """Where downloaded models and datasets are cached.

    On Colab and Kaggle: the machine's own disk (``/content/hub-cache``; on Kaggle the Hub's
    usual ``~/.cache/huggingface/hub``), since a download costs minutes while Stable Diffusion's
    4 GB on Drive or in Kaggle's saved output cost quota; ``COURSE_HUB_CACHE_ON_HOME=1`` keeps
    them in the course home's ``hub-cache`` instead, as on a laptop. None where the learner chose
    a cache of their own (``HF_HUB_CACHE`` or ``HF_HOME``), so that one is used as it is.
    """
    if os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME"):
        return None
    platform = detect_platform()
    if platform == "local" or os.environ.get(HUB_ON_HOME_ENV) == "1":
        return course_home() / "hub-cache"
    if platform == "colab":
        return COLAB_ROOT / "hub-cache"
    return Path.home() / ".cache" / "huggingface" / "hub"


def hub_cache_on_home() -> bool:
    """Whether Hub downloads land in the course home (so they count against its free space)."""
    cache = hub_cache_dir()
    return cache is not None and _inside(cache, course_home())


def _inside(path: Path, folder: Path) -> bool:
    return Path(path).absolute().is_relative_to(Path(folder).absolute())


@dataclass(frozen=True)
class SpaceLimit:
    """How much a job may still write under a folder, and which limit decides it."""

    free: int  # bytes
    limit: str  # completes "only 2.0 GiB are ...", e.g. "free on your Google Drive"
    advice: str  # what else frees room under this limit


DISK_ADVICE = "Or set COURSE_HOME to a larger disk."
# Deleting through Colab's Drive mount moves files to Drive's Trash, which counts against the quota
# until it is emptied or 30 days have passed: https://support.google.com/drive/answer/2375102 and
# https://developers.google.com/workspace/drive/api/guides/delete (trashed files are deleted after 30 days).
DRIVE_ADVICE = ("Files deleted from Drive go to its Trash and still count until you empty it "
                "(https://drive.google.com/drive/trash) or 30 days pass. Or set COURSE_HOME=/content/dreambooth-course "
                "(this machine's disk: larger, but lost when the runtime ends).")
KAGGLE_ADVICE = ("Kaggle saves at most {limit} of /kaggle/working with a version ({used} is there now, counting "
                 "files linked from your inputs, which Kaggle may save too). Work you need not keep can go "
                 "outside it: COURSE_HOME=/tmp/dreambooth-course (not saved).")


def _existing(path: str | Path | None) -> Path:
    path = Path(path or course_home()).absolute()
    while not path.exists():
        path = path.parent
    return path


def written_bytes(folder: str | Path) -> int:
    """Bytes under ``folder``, a linked file counted at the size of what it points to (dangling links: 0)."""
    total = 0
    for dirpath, _, filenames in os.walk(folder):
        for name in filenames:
            try:
                total += os.stat(os.path.join(dirpath, name)).st_size
            except OSError:  # a link whose target is gone
                pass
    return total


def space_limit(path: str | Path | None = None) -> SpaceLimit:
    """The free space that limits writing under ``path`` (default: the course home), and which limit it is.

    - Colab, under the Drive mount: Drive's free quota. ``shutil.disk_usage`` on the mount reports
      the account's Drive storage, not the machine's disk: ``df -h /content/drive/MyDrive`` shows
      e.g. 102 GB total, 43 GB used, matching the Google One storage page
      (https://github.com/googlecolab/colabtools/issues/6051). Asking the Drive API instead
      (``about.get(fields="storageQuota")``) needs a second sign-in (``google.colab.auth``); the
      mount needs none. Writes are staged in a local cache that Colab evicts as the disk fills
      (https://github.com/googlecolab/colabtools/issues/1915), so the disk is not the limit.
    - Kaggle, under ``/kaggle/working``: 20 GB minus what is written there, or the disk's free
      space when that is smaller.
    - Elsewhere: the free space of the disk.
    """
    path = _existing(path)
    disk = shutil.disk_usage(path).free
    platform = detect_platform()
    if platform == "colab" and _inside(path, COLAB_ROOT / "drive"):
        return SpaceLimit(disk, "free on your Google Drive", DRIVE_ADVICE)
    if platform == "kaggle" and _inside(path, KAGGLE_ROOT):
        used = written_bytes(KAGGLE_ROOT)
        left = max(0, KAGGLE_OUTPUT_BYTES - used)
        if left <= disk:
            advice = KAGGLE_ADVICE.format(limit=_gb(KAGGLE_OUTPUT_BYTES), used=_gb(used))
            return SpaceLimit(left, f"left of the {_gb(KAGGLE_OUTPUT_BYTES)} Kaggle saves", advice)
    return SpaceLimit(disk, "free on this machine's disk", DISK_ADVICE)


def _gb(n: int) -> str:
    return f"{n / 10**9:.1f} GB"


def free_bytes(path: str | Path | None = None) -> int:
    """Free space for what the kit writes under ``path`` (default: the course home), in bytes (see :func:`space_limit`)."""
    return space_limit(path).free


def check_free_space(folder: str | Path | None, needed: int, what: str = "this run") -> None:
    """Raise :class:`NotEnoughSpaceError` unless ``needed`` bytes fit under ``folder``'s limit (:func:`space_limit`).

    Args:
        folder: where the job writes; None means the course home.
        needed: what the job will write, in bytes.
        what: the job, as the message should name it ("This DreamBooth run").
    """
    free = free_bytes(folder)
    if free < needed:
        limit = space_limit(folder)
        raise NotEnoughSpaceError(
            f"{what} writes about {needed / GIB:.2f} GiB but only {free / GIB:.2f} GiB are {limit.limit}. "
            "`cleanup_candidates()` from helpers.course.cleanup lists what can be deleted (old checkpoints, runs no "
            "notebook uses) and how much that frees; or lower checkpoints_total_limit. " + limit.advice
        )
