"""The learner's choices, made in ``00_setup.ipynb``: profile, base model, subjects, and a study arm's config.

The choices live in the course home (:mod:`helpers.base.home`): ``course-<profile>.yaml`` (one file
per profile) holds the base model and the subjects, ``profile.txt`` the profile last chosen.
Where ``00_setup`` has not saved anything, the profile's defaults hold. Every notebook opens
with :func:`helpers.course.setup.setup_notebook`, which reads them.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

import yaml

from helpers.base.fields import Field, FieldError
from helpers.base.paths import DATA_DIR, runs_dir
from helpers.profiles import TINY_MODEL, get_profile
from helpers.train.config import config_for_profile, config_hash, resolve_output_dir
from helpers.train.data import download_hub_dataset, list_images, make_synthetic_subject, read_manifest
from helpers.train.models import TOY_MODEL_DIR
from helpers.train.runs import run_status

TOY_SUBJECTS = DATA_DIR / "toyworld" / "subjects"


class UnknownSubjectError(FieldError, KeyError):
    """A subject name that is neither in data/subjects.json, nor a ToyWorld subject, nor ``upload``."""

    def __str__(self) -> str:
        return str(self.args[0])  # a KeyError would print its message in quotes


# What a study arm's values may be (a notebook's STUDY_LR and STUDY_STEPS): the study's full-scale numbers.
STUDY_LR = Field(low=0, low_open=True, high=1, advice="the study's rates are 1e-6 to 5e-6, e.g. 2e-6")
STUDY_STEPS = Field(low=1, advice="the study's runs are 400 to 1200 steps, e.g. 400")


@dataclass
class Subject:
    """A subject to teach the model: where its photos are and how prompts name it."""

    name: str
    folder: str
    class_noun: str
    identifier: str = "sks"
    article: str = ""  # "a " where the base model learned "a photo of a star"

    @property
    def instance_prompt(self) -> str:
        return f"a photo of {self.identifier} {self.class_noun}"

    @property
    def class_prompt(self) -> str:
        return f"a photo of {self.article}{self.class_noun}"


@dataclass
class CourseSettings:
    """What ``00_setup`` chose: profile, base model, an object subject and a face subject."""

    profile: str
    pretrained_model_name_or_path: str
    object_subject: Subject
    face_subject: Subject

    def save(self, path: str | Path | None = None) -> Path:
        """Write the settings to ``course-<profile>.yaml`` in the course home (or ``path``).

        The profile is remembered too (``profile.txt``), so later notebooks use it.
        """
        path = Path(path or settings_path(self.profile))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(dataclasses.asdict(self), sort_keys=False))
        (runs_dir() / PROFILE_FILE).write_text(self.profile + "\n")
        return path


PROFILE_FILE = "profile.txt"


def settings_path(profile_name: str | None = None) -> Path:
    """The settings file of a profile (default: the current one) in the course home."""
    return runs_dir() / f"course-{get_profile(profile_name).name}.yaml"


def chosen_profile() -> str | None:
    """The profile ``00_setup`` saved last in this course home, or None."""
    path = runs_dir() / PROFILE_FILE
    return path.read_text().strip() if path.exists() else None


def toy_subjects() -> dict[str, dict]:
    """The ToyWorld subjects shipped under ``data/toyworld/subjects`` (empty if not built)."""
    manifest = TOY_SUBJECTS / "manifest.json"
    return json.loads(manifest.read_text())["subjects"] if manifest.exists() else {}


def toy_model_ready() -> bool:
    """Whether the pretrained ToyWorld model is in ``data/toyworld/model``."""
    return (TOY_MODEL_DIR / "model_index.json").exists()


def prepare_subject(name: str, identifier: str = "sks") -> Subject:
    """Make the photos of a known subject available locally and describe it.

    ``name`` is a key of ``data/subjects.json`` (``dog``, ``cat_toy``, ``synthetic_ball``), a
    ToyWorld subject, or ``upload`` (photos saved by the upload widget).
    """
    if not isinstance(name, str):
        raise UnknownSubjectError(f"subject={name!r} must be a subject's name in quotes, e.g. 'dog' or 'upload'.")
    toy = toy_subjects()
    if name in toy:
        return Subject(name, str(TOY_SUBJECTS / name), toy[name]["class_noun"], identifier, article="a ")
    if name == "upload":  # the learner's own photos: ensure_photos asks for them where they are missing
        return Subject(name, str(runs_dir() / "subjects" / "upload"), "person", identifier)
    known = read_manifest()["subjects"]
    if name not in known:
        raise UnknownSubjectError(
            f"Unknown subject {name!r}; choose one of: {', '.join([*known, *toy, 'upload'])}.")
    entry, folder = known[name], runs_dir() / "subjects" / name
    if entry["kind"] == "hub":
        download_hub_dataset(entry["source"], folder)
    elif not folder.exists():
        make_synthetic_subject(folder, n=entry["images"], size=64)
    return Subject(name, str(folder), entry["class_noun"], identifier)


OBJECT_SUBJECT_ENV, FACE_SUBJECT_ENV = "COURSE_OBJECT_SUBJECT", "COURSE_FACE_SUBJECT"


def default_settings(profile_name: str | None = None) -> CourseSettings:
    """The choices a learner gets without changing anything, for the given profile.

    ``COURSE_FACE_SUBJECT`` (and ``COURSE_OBJECT_SUBJECT``) change these defaults, so they hold in a
    notebook opened without 00_setup's saved choices, and in what 00_setup saves when its own
    ``FACE_SUBJECT`` is left at None: ``COURSE_FACE_SUBJECT=cat_toy`` runs the face notebooks
    (02, 04, 05) on the object, in a room without face photos.
    """
    profile = get_profile(profile_name)
    toy = toy_subjects()
    if profile.name == "gpu":
        obj, face = "cat_toy", "upload"  # the study's own cat toy; a face needs the learner's photos
    elif toy and toy_model_ready() and profile.name == "cpu":
        faces = [k for k, v in toy.items() if v["class_noun"] == "face"]
        obj, face = next(k for k in toy if k not in faces), (faces or list(toy))[0]
    else:
        obj = face = "synthetic_ball"
    model = profile.pretrained_model_name_or_path
    if profile.name == "cpu" and not (toy and toy_model_ready()):
        model = TINY_MODEL  # the ToyWorld model and subjects are not built yet
    obj, face = os.environ.get(OBJECT_SUBJECT_ENV) or obj, os.environ.get(FACE_SUBJECT_ENV) or face
    describe = {"upload": Subject("upload", str(runs_dir() / "subjects" / "upload"), "person")}
    return CourseSettings(
        profile=profile.name,
        pretrained_model_name_or_path=model,
        object_subject=describe.get(obj) or prepare_subject(obj),
        face_subject=describe.get(face) or prepare_subject(face),
    )


def load_settings(quiet: bool = False) -> CourseSettings:
    """The settings ``00_setup`` saved; the current profile's defaults if it has not run."""
    path = settings_path()
    if not path.exists():
        if not quiet:
            print(f"No {path.name} yet (run 00_setup.ipynb to choose); using the defaults of this profile.")
        return default_settings()
    raw = yaml.safe_load(path.read_text())
    return CourseSettings(
        profile=raw["profile"],
        pretrained_model_name_or_path=raw["pretrained_model_name_or_path"],
        object_subject=Subject(**raw["object_subject"]),
        face_subject=Subject(**raw["face_subject"]),
    )


def run_finished(config) -> bool:
    """Whether the run of ``config`` has already finished in the course home (so using it costs nothing)."""
    return run_status(resolve_output_dir(config), config_hash(config), type(config)) == "done"


def subject_photos(subject: Subject, n: int | None = None) -> list:
    """The subject's own photos (the first ``n``, or all) as RGB images, to show beside generations or score against."""
    from PIL import Image

    paths = list_images(subject.folder)[:n]
    return [Image.open(p).convert("RGB") for p in paths]


def study_config(
    subject: Subject,
    study_lr: float,
    study_steps: int,
    with_prior_preservation: bool = False,
    face: bool = False,
    settings: CourseSettings | None = None,
    **changes,
):
    """A DreamBooth :class:`~helpers.train.config.TrainConfig` for one arm of an experiment of the study.

    The learning rate and steps are given as the study's full-scale values and mapped
    through the profile by :func:`helpers.train.config.config_for_profile` (the one place that does),
    with this subject's folder and prompts.

    Args:
        subject: whose photos to train on.
        study_lr, study_steps: the study's values for this arm, e.g. ``2e-6, 400``.
        face: use the study's face batch size (2) instead of the objects' (4).
        settings: the course settings (None loads them).
        **changes: any other :class:`TrainConfig` field, e.g. ``train_text_encoder=True``.
    """
    if not isinstance(subject, Subject):
        raise FieldError(f"subject={subject!r} must be a Subject: use nb.subject, or prepare_subject('dog').")
    study_lr = STUDY_LR.check("study_lr", study_lr, float)
    study_steps = STUDY_STEPS.check("study_steps", study_steps, int)
    settings = settings or load_settings()
    profile = get_profile(settings.profile).override(
        pretrained_model_name_or_path=settings.pretrained_model_name_or_path
    )
    subject_fields = {
        "instance_data_dir": subject.folder,
        "instance_prompt": subject.instance_prompt,
        "class_prompt": subject.class_prompt,
        "with_prior_preservation": with_prior_preservation,
        "seed": 0,
    }
    return config_for_profile(profile, study_lr, study_steps, faces=face, **{**subject_fields, **changes})
