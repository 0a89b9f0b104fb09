"""The one call every notebook opens with: the course home, the profile, the saved choices and the photos.

:func:`setup_notebook` works in a fresh runtime too (Colab and Kaggle give each notebook its own
machine): where ``00_setup`` has not saved anything, it uses the profile's defaults, and where the
subject is the learner's own, it asks for photos.
"""

from __future__ import annotations

import os
from pathlib import Path

from helpers.base.home import detect_platform, interactive
from helpers.course.continuation import open_home
from helpers.course.uploads import ask_for_photos, convert_heic_folder
from helpers.profiles import PROFILE_ENV, get_profile
from helpers.train.data import SubjectDataError, list_images
from helpers.train.settings import CourseSettings, Subject, chosen_profile, load_settings, settings_path


def ensure_photos(subject: Subject, mount=None, **ask) -> Subject:
    """Make sure a subject folder holds photos; for the learner's own subject, ask for them if it does not.

    HEIC photos found in the folder are converted to JPEG first. Outside a live notebook an
    empty folder is an error that says where to put the photos.
    """
    folder = Path(subject.folder)
    convert_heic_folder(folder)
    try:
        list_images(folder)
    except SubjectDataError:
        if subject.name != "upload":
            raise
        if not interactive():
            raise SubjectDataError(f"Your subject's photos are missing: put 3-10 photos into {folder}, "
                                   "or choose a known subject in 00_setup.") from None
        ask_for_photos(folder, detect_platform(), **ask)
        list_images(folder)
    return subject


GPU_MEMORY_ENV = "COURSE_GPU_MEMORY_GIB"


def limit_gpu_memory(gib: float | None = None) -> float | None:
    """Let this process use at most ``gib`` GiB of the GPU (default: ``$COURSE_GPU_MEMORY_GIB``), as on a smaller card.

    ``COURSE_GPU_MEMORY_GIB=15`` makes a large GPU fail where a 16 GB T4 would. Returns the
    fraction set, or None where nothing was limited (no value, or no CUDA).
    """
    import torch

    gib = gib or float(os.environ.get(GPU_MEMORY_ENV) or 0)
    if not gib or not torch.cuda.is_available():
        return None
    fraction = min(1.0, gib * 2**30 / torch.cuda.get_device_properties(0).total_memory)
    torch.cuda.set_per_process_memory_fraction(fraction)
    return fraction


def setup_notebook(notebook: str, subjects: tuple[str, ...] = ("object",), profile: str | None = None,
                   **ask) -> CourseSettings:
    """Everything a notebook needs before its first step, in a fresh runtime too.

    Opens the course home (on Colab: Google Drive, if the learner agrees), picks the profile
    (``COURSE_PROFILE``, else the one ``00_setup`` saved, else this machine's default), loads the
    saved choices or the profile's defaults, and makes sure the subjects' photos are there.

    Args:
        notebook: the notebook's number, e.g. ``"02"`` (printed, and used to record its runs).
        subjects: which subjects it trains on: ``"object"``, ``"face"`` or both.
        profile: a profile for this notebook only (the notebook's ``PROFILE``); None as above.
        **ask: stand-ins for the photo upload (tests), passed to :func:`ensure_photos`.

    Returns:
        The course settings: profile, base model and subjects.
    """
    home = open_home()
    limit_gpu_memory()
    if profile:
        os.environ[PROFILE_ENV] = get_profile(profile).name  # an unknown name fails here, with the valid ones
    elif not os.environ.get(PROFILE_ENV) and chosen_profile():
        os.environ[PROFILE_ENV] = chosen_profile()  # 00_setup's choice holds for every notebook
    saved = settings_path().exists()
    settings = load_settings(quiet=True)
    for role in subjects:
        ensure_photos(getattr(settings, f"{role}_subject"), **ask)
    origin = "saved by 00_setup" if saved else "the profile's defaults (00_setup has not saved any here)"
    print(f"notebook {notebook} · profile {settings.profile} · course home: {home.name}/ · choices: {origin}")
    print(f"base model: {settings.pretrained_model_name_or_path}")
    for role in subjects:
        subject = getattr(settings, f"{role}_subject")
        print(f"{role} subject: {subject.name} ('{subject.instance_prompt}')")
    return settings
