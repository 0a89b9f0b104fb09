"""A workshop pack: a finished course home that attendees open as their own, so every notebook only samples and draws.

The instructor runs the course once, then packs the course home::

    python -m helpers workshop pack dreambooth-course-workshop.zip

The pack holds the settings, the subjects' photos, the class images, the finished runs, their
sampled comparison images (``comparisons/<hash>/`` in each run, see :mod:`helpers.sample`), the
score tables and the figures. It leaves out what belongs to one machine: the Hub cache, the
executed notebooks, checkpoints, unfinished runs and the records of which runs are in use.
A run keeps whatever weights the course home holds: every run on ``cpu`` (small); on ``gpu`` only
the runs a later notebook loads again (the rest were released, see
:func:`helpers.base.storage.release_weights`), so the pack fits the Drive budget. A finished run
without its weights is marked as packed: its figures redraw from the saved images, and a notebook
does not train it again unless the attendee sets ``COURSE_TRAIN_PACKED=1``.

Paths inside the pack are written relative to the course home and the kit, so that a run unpacked
on another machine keeps its hash and is reused. Attendees unpack with
``python -m helpers workshop unpack PACK.zip [HOME]``, or let a notebook's opening find it: a pack
named :data:`PACK_NAME` beside or inside the course home (on Colab: in My Drive), or attached on
Kaggle as an input (zipped or unzipped).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from helpers.base import home as home_module
from helpers.base.storage import CHECKPOINTS, PACKED_NOTE, WEIGHTS_NOTE, has_weights, weights_dir
from helpers.errors import LearnerError
from helpers.train.runs import CONFIG_NAME, DONE_NAME, PARTIAL_SUFFIX

PACK_NAME = "dreambooth-course-workshop.zip"
MANIFEST = "workshop.json"  # at the top of a pack: what it holds, and the marks its paths were written with
HOME_MARK, KIT_MARK = "{COURSE_HOME}", "{KIT_ROOT}"
TEXT_SUFFIXES = {".yaml", ".yml", ".json", ".md", ".txt", ".csv"}
SKIP_TOP = {"hub-cache", "notebooks", home_module.HOME_RECORD, "runs_in_use.json", MANIFEST}
RUN_KINDS = ("train", "textual_inversion")
LINK_MIN_BYTES = 1 << 20  # from an unzipped pack, files this large are linked, not copied


class PackError(LearnerError):
    """A pack that cannot be made or opened: the message says what to do."""


@dataclass
class PackReport:
    """What a pack holds (or what was unpacked), in numbers a person reads."""

    path: Path
    runs_with_weights: int = 0
    runs_samples_only: int = 0
    files: int = 0
    bytes: int = 0
    skipped: int = 0  # unpack: files already in the home, left as they were

    def __str__(self) -> str:
        runs = f"{self.runs_with_weights} finished run(s) with weights, {self.runs_samples_only} with samples only"
        size = f"{self.bytes / 10**6:.1f} MB" if self.bytes < 10**9 else f"{self.bytes / 10**9:.2f} GB"
        kept = f"; {self.skipped} file(s) already here were kept" if self.skipped else ""
        return f"{self.path.name}: {runs}; {self.files} files, {size}{kept}"


def _run_folders(home: Path) -> dict[Path, bool]:
    """Every run folder of the home, True when it is finished."""
    return {p.parent: (p.parent / DONE_NAME).is_file() for kind in RUN_KINDS for p in home.glob(f"{kind}/*/{CONFIG_NAME}")}


def _nested_homes(folder: Path) -> bool:
    """True for a folder that holds other course homes only (``runs/test/NN_topic/``, the tests' own homes)."""
    inside = [p for p in folder.iterdir() if p.is_dir()] if folder.is_dir() else []
    return bool(inside) and all((p / home_module.HOME_RECORD).is_file() for p in inside)


def _packed_files(home: Path, runs: dict[Path, bool]) -> list[Path]:
    """The files a pack takes from the home (see the module docstring for what stays out)."""
    unfinished = [run for run, done in runs.items() if not done]
    chosen = []
    for dirpath, dirnames, filenames in os.walk(home):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not (here == home and d in SKIP_TOP) and d != CHECKPOINTS
                             and not d.endswith(PARTIAL_SUFFIX) and here / d not in unfinished
                             and not (here == home and _nested_homes(here / d)))
        chosen += [here / n for n in sorted(filenames) if not (here == home and n in SKIP_TOP)]
    return chosen


def kits_of(home: Path) -> list[Path]:
    """The kit folders whose data the home's settings name (its subjects' photos): this kit, and any other copy."""
    found = {home_module.KIT_ROOT.resolve()}
    for settings in home.glob("course-*.yaml"):
        found |= {Path(m) for m in re.findall(r"(/\S+?)/data/(?:toyworld|subjects)/", settings.read_text())}
    return sorted(found)


def _relocate(text: str, home: Path, kits: list[Path], to_marks: bool) -> str:
    """Write the home's and the kit's absolute paths as marks (packing), or the marks as this machine's paths."""
    pairs = [(str(home.resolve()), HOME_MARK), *[(str(kit), KIT_MARK) for kit in kits]]
    pairs.sort(key=lambda p: -len(p[0]))  # the longer path first: a home inside the kit (runs/) stays a home
    for path, mark in pairs:
        text = text.replace(path, mark) if to_marks else text.replace(mark, path)
    return text


def pack_course(out: str | Path, home: str | Path | None = None) -> PackReport:
    """Pack a finished course home into the zip ``out`` (see the module docstring); returns what it holds."""
    home = Path(home or home_module.course_home()).resolve()
    runs = _run_folders(home)
    if not any(runs.values()):
        raise PackError(f"No finished run in {home}: run the course first (make course, or the notebooks), then pack.")
    out, kits = Path(out).resolve(), kits_of(home)
    report = PackReport(out)
    samples_only = [run for run, done in runs.items() if done and not has_weights(weights_dir(run))
                    and not has_weights(run)]
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as pack:
        for path in _packed_files(home, runs):
            if path.resolve() == out or (path.name == WEIGHTS_NOTE and path.parent in samples_only):
                continue
            name = path.relative_to(home).as_posix()
            if path.suffix in TEXT_SUFFIXES:
                pack.writestr(name, _relocate(path.read_text(errors="replace"), home, kits, True))
            else:
                pack.write(path, name)
            report.files += 1
        for run in samples_only:  # its weights stayed on an earlier runtime's disk: say so in the run
            name = run.relative_to(home).as_posix()
            if (run / WEIGHTS_NOTE).is_file():
                pack.writestr(f"{name}/{WEIGHTS_NOTE}", json.dumps({"folder": "."}) + "\n")
            pack.writestr(f"{name}/{PACKED_NOTE}", json.dumps({"weights": False}) + "\n")
        manifest = {"profile": _read(home / "profile.txt"), "runs": len([r for r, d in runs.items() if d]),
                    "samples_only": [r.relative_to(home).as_posix() for r in samples_only],
                    "marks": {"home": HOME_MARK, "kit": KIT_MARK}}
        pack.writestr(MANIFEST, json.dumps(manifest, indent=1) + "\n")
    report.runs_samples_only = len(samples_only)
    report.runs_with_weights = sum(runs.values()) - len(samples_only)
    report.bytes = out.stat().st_size
    return report


def _read(path: Path) -> str:
    return path.read_text().strip() if path.is_file() else ""


def _entries(pack: Path) -> dict[str, Callable[[], IO[bytes]] | Path]:
    """The files of a pack by name: an opener for each zip entry, or the file of an unzipped pack."""
    if pack.is_dir():
        return {p.relative_to(pack).as_posix(): p for p in sorted(pack.rglob("*")) if p.is_file()}
    if zipfile.is_zipfile(pack):
        archive = zipfile.ZipFile(pack)
        return {i.filename: functools.partial(archive.open, i) for i in archive.infolist() if not i.is_dir()}
    raise PackError(f"{pack} is not a workshop pack: give the .zip made by `python -m helpers workshop pack`, "
                    "or the folder it was unzipped to.")


def unpack_course(pack: str | Path, home: str | Path | None = None) -> PackReport:
    """Unpack a workshop pack (a zip, or the folder it was unzipped to) into ``home``; files already there stay.

    From an unzipped pack (a Kaggle input) large weight files are linked where they lie, not copied.
    """
    pack = Path(pack)
    home = Path(home or home_module.course_home()).expanduser().resolve()
    entries = _entries(pack)
    if MANIFEST not in entries:
        raise PackError(f"{pack} holds no {MANIFEST}: it is not a workshop pack (make one with "
                        "`python -m helpers workshop pack OUT.zip`).")
    manifest = json.loads(_read_bytes(entries[MANIFEST]))
    report = PackReport(pack, runs_samples_only=len(manifest.get("samples_only", [])))
    report.runs_with_weights = manifest.get("runs", 0) - report.runs_samples_only
    kit = [home_module.KIT_ROOT.resolve()]
    for name, source in entries.items():
        target = home / name
        if name == MANIFEST:
            continue
        if target.exists() or target.is_symlink():
            report.skipped += 1
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.suffix in TEXT_SUFFIXES:
            target.write_text(_relocate(_read_bytes(source).decode(errors="replace"), home, kit, False))
        elif isinstance(source, Path) and source.stat().st_size >= LINK_MIN_BYTES:
            target.symlink_to(source.resolve())
        elif isinstance(source, Path):
            shutil.copyfile(source, target)
        else:
            with source() as src, open(target, "wb") as dst:
                shutil.copyfileobj(src, dst)
        report.files += 1
        report.bytes += target.stat().st_size
    return report


def _read_bytes(source: Callable[[], IO[bytes]] | Path) -> bytes:
    if isinstance(source, Path):
        return source.read_bytes()
    with source() as f:
        return f.read()


def find_pack(home: Path, inputs: str | Path | None = None) -> Path | None:
    """A workshop pack where a notebook's opening looks: beside or inside the course home, or among Kaggle's inputs."""
    for candidate in (home.parent / PACK_NAME, home / PACK_NAME):
        if candidate.is_file():
            return candidate
    inputs = Path(inputs or home_module.KAGGLE_INPUT)
    if inputs.is_dir():
        for depth in ("*", "*/*", "*/*/*"):
            for found in sorted(inputs.glob(f"{depth}/{MANIFEST}")):
                return found.parent
            for found in sorted(inputs.glob(f"{depth}/{PACK_NAME}")):
                return found
    return None


def open_pack(home: Path, inputs: str | Path | None = None) -> PackReport | None:
    """Unpack a workshop pack found by :func:`find_pack` into a course home that has no settings yet; say so."""
    if any(home.glob("course-*.yaml")) or (home / "profile.txt").is_file():
        return None
    pack = find_pack(home, inputs)
    if pack is None:
        return None
    report = unpack_course(pack, home)
    print(f"Opened the workshop pack {report}: the notebooks reuse these runs and redraw their figures.")
    return report


def pack_size_verdict(report: PackReport, profile: str) -> str:
    """The pack's size against the Drive budget (``gpu``) or a plain download (``cpu``), in one line."""
    from helpers.course.budget import DRIVE_GOAL_GIB

    gib = report.bytes / home_module.GIB
    if profile == "gpu" and gib > DRIVE_GOAL_GIB:
        return (f"{gib:.2f} GiB: more than the {DRIVE_GOAL_GIB:.0f} GiB a free Drive has room for; release the "
                "weights no notebook loads again (release_weights) and pack again.")
    return f"{gib:.2f} GiB, within the {DRIVE_GOAL_GIB:.0f} GiB a free Drive has room for."



# ------------------------------------------------------------------------------------------ the commands


def _pack(args) -> int:
    """``workshop pack OUT.zip``: the course home as a pack, with its size against the budget."""
    report = pack_course(args.out, args.home)
    profile = _read(Path(args.home or home_module.course_home()) / "profile.txt") or "gpu"
    print(f"packed {report}")
    print(f"size: {pack_size_verdict(report, profile)}")
    return 0


def _unpack(args) -> int:
    """``workshop unpack PACK.zip [HOME]``: the pack as this machine's course home."""
    home = Path(args.home or home_module.course_home())
    print(f"unpacked into {home}: {unpack_course(args.pack, home)}")
    return 0


def add_commands(sub, common) -> None:
    """The ``workshop`` command and its ``pack`` and ``unpack`` (wired in :mod:`helpers.cli`)."""
    p = sub.add_parser("workshop", parents=[common], help="pack a finished course home for a workshop, or unpack one")
    inner = p.add_subparsers(dest="workshop_command", required=True, metavar="COMMAND")
    q = inner.add_parser("pack", parents=[common], help="the course home's runs, samples, scores and figures as a zip")
    q.add_argument("out", metavar="OUT.zip", help=f"the pack to write (attendees find it as {PACK_NAME})")
    q.add_argument("--home", default=None, help="the course home to pack (default: the one the notebooks use)")
    q.set_defaults(func=_pack)
    q = inner.add_parser("unpack", parents=[common], help="a workshop pack as this machine's course home")
    q.add_argument("pack", metavar="PACK.zip", help="the pack (or the folder it was unzipped to)")
    q.add_argument("home", nargs="?", default=None, help="where (default: the course home the notebooks use)")
    q.set_defaults(func=_unpack)
