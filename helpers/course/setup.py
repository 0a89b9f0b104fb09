"""The one call every notebook opens with: the course home, the profile, the saved choices and the photos.

:func:`setup_notebook` works in a fresh runtime too (Colab and Kaggle give each notebook its own
machine): where ``00_setup`` has not saved anything, it uses the profile's defaults, and where the
subject is the learner's own, it asks for photos.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.base.fields import Field, FieldError
from helpers.base.home import detect_platform, interactive
from helpers.course.cleanup import note_runs_in_use
from helpers.course.continuation import open_home
from helpers.course.uploads import ask_for_photos, convert_heic_folder
from helpers.profiles import PROFILE_ENV, Profile, get_profile
from helpers.sample import own_sampler
from helpers.train.data import SubjectDataError, list_images, load_images
from helpers.train.dreambooth import train_dreambooth
from helpers.train.prompts import subject_prompts
from helpers.train.runs import RunResult
from helpers.train.sampling import SCHEDULERS
from helpers.train.settings import (
    CourseSettings,
    Subject,
    chosen_profile,
    load_settings,
    settings_path,
    study_config,
)


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


@dataclass
class Notebook:
    """What a notebook's opening builds, in one object (returned by :func:`setup_notebook`).

    ``settings`` are 00_setup's choices; ``profile`` the profile in use; ``subject`` the first
    subject asked for (``subjects`` has each role's); ``prompts`` and ``seeds`` what every
    comparison samples; ``photos`` the subject's training photos at the profile's resolution;
    ``home`` the course home. :meth:`train` trains runs and records them as in use.
    """

    number: str
    settings: CourseSettings
    profile: Profile
    subjects: dict[str, Subject]
    prompts: list[str]
    seeds: list[int]
    photos: list
    home: Path
    seed: int = 0
    sampler_choice: str | None = None
    in_use: list[Path] = field(default_factory=list)

    @property
    def subject(self) -> Subject:
        return next(iter(self.subjects.values()))

    @property
    def model(self) -> str:
        return self.settings.pretrained_model_name_or_path

    @functools.cached_property
    def sampler(self) -> str:
        """The sampler asked for, else the model's own (read from the model only when asked)."""
        return self.sampler_choice or own_sampler(self.model)

    def config(self, study_lr: float, study_steps: int, **changes):
        """:func:`~helpers.train.settings.study_config` for this notebook's subject, settings and seed."""
        return study_config(self.subject, study_lr, study_steps, settings=self.settings, seed=self.seed, **changes)

    def keep(self, *folders: str | Path) -> None:
        """Record run folders as used by this notebook, so the course home's clean-up keeps them."""
        self.in_use.extend(Path(f) for f in folders)
        note_runs_in_use(self.number, self.in_use)

    def train(self, configs: Mapping[str, Any], **kwargs) -> dict[str, RunResult]:
        """Train (or reuse) each config with :func:`~helpers.train.dreambooth.train_dreambooth`; keep them."""
        runs = {label: train_dreambooth(config, **kwargs) for label, config in configs.items()}
        self.keep(*(run.output_dir for run in runs.values()))
        return runs


# What a notebook's configuration cell may set, checked before anything runs (None: the default).
NOTEBOOK_CHOICES: dict[str, tuple[Any, Field]] = {
    "n_prompts": (int, Field(low=1, high=100, advice="how many of the subject's prompts to sample, e.g. 3")),
    "smoke_prompts": (int, Field(low=1, high=100)),
    "seed": (int, Field(low=0, high=2**32 - 1, advice="e.g. 0")),
    "n_seeds": (int, Field(low=1, high=64, advice="samples per prompt, e.g. 2")),
    "sampler": (str, Field(choices=tuple(SCHEDULERS))),
}
ROLES = ("object", "face")


def check_notebook_choices(subjects, n_prompts, smoke_prompts, seed, n_seeds, sampler) -> None:
    """Refuse a configuration-cell value of the wrong kind or range with one message naming it."""
    if isinstance(subjects, str) or not all(role in ROLES for role in subjects):
        raise FieldError(f"subjects={subjects!r} must be a tuple of {' and '.join(map(repr, ROLES))}, "
                         "e.g. ('object',).")
    given = {"n_prompts": n_prompts, "smoke_prompts": smoke_prompts, "seed": seed, "n_seeds": n_seeds,
             "sampler": sampler}
    for name, value in given.items():
        if value is not None:
            kind, rule = NOTEBOOK_CHOICES[name]
            rule.check(name.upper(), value, kind)


def setup_notebook(notebook: str, subjects: tuple[str, ...] = ("object",), profile: str | None = None,
                   n_prompts: int | None = None, smoke_prompts: int = 1, seed: int = 0, n_seeds: int | None = None,
                   sampler: str | None = None, unseen_prompt: bool = False, **ask) -> Notebook:
    """Everything a notebook needs before its first step, in a fresh runtime too.

    Opens the course home (on Colab: Google Drive, if the learner agrees), picks the profile
    (``COURSE_PROFILE``, else the one ``00_setup`` saved, else this machine's default), loads the
    saved choices or the profile's defaults, and makes sure the subjects' photos are there.

    Args:
        notebook: the notebook's number, e.g. ``"02"`` (printed, and used to record its runs).
        subjects: which subjects it trains on: ``"object"``, ``"face"`` or both; the first is ``.subject``.
        profile: a profile for this notebook only (the notebook's ``PROFILE``); None as above.
        n_prompts: how many of the subject's prompts to sample (``smoke_prompts`` on ``smoke``); None: none.
        unseen_prompt: make the last of them one that asks for what the photos never show (a new colour).
        seed: the training seed; sampling seeds start here too.
        n_seeds: samples per prompt; None: the profile's ``images_per_prompt``.
        sampler: a key of ``helpers.train.sampling.SCHEDULERS``; None: the model's own.
        **ask: stand-ins for the photo upload (tests), passed to :func:`ensure_photos`.

    Returns:
        A :class:`Notebook`: settings, profile, subjects, prompts, seeds, photos and course home.
    """
    check_notebook_choices(subjects, n_prompts, smoke_prompts, seed, n_seeds, sampler)
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
    current = get_profile()
    chosen = {role: getattr(settings, f"{role}_subject") for role in subjects}
    first = next(iter(chosen.values()))
    count = smoke_prompts if current.name == "smoke" else n_prompts
    return Notebook(
        number=notebook, settings=settings, profile=current, subjects=chosen,
        prompts=subject_prompts(first, count, unseen_prompt) if count else [],
        seeds=[seed + i for i in range(n_seeds or current.images_per_prompt)],
        photos=load_images(first.folder, current.resolution), home=home, seed=seed, sampler_choice=sampler,
    )
