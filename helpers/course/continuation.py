"""Continuing on Kaggle: bring the course homes that earlier notebooks saved into this one.

Kaggle runs every notebook on a fresh machine, and keeps ``/kaggle/working`` only as the
output of a saved version. A learner continues by adding those saved outputs as inputs of the
next notebook; Kaggle mounts them, read-only, under ``/kaggle/input/<slug>/...``. This module
finds the course homes there (by their files, at whatever depth Kaggle puts them) and brings
what the kit needs into the working course home:

- settings, photos, class images, scores, figures and small files are copied (the kit may
  write beside them or change them);
- weight files of 1 MiB or more are linked where they lie (the kit only reads them), so a
  finished run of several GB costs nothing to bring;
- nothing already in the working home is replaced.

Several saved homes are merged newest first (by when a notebook last opened each). Folders that
belong together (a run, a subject's photos, a set of class images) come whole from one home: a
finished run is preferred to an unfinished copy of it, and a run whose weights are missing (a
link into an output that is not attached) is left out, with a note saying which input to add.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from helpers.base import home as home_module
from helpers.base.storage import CHECKPOINTS
from helpers.course.quiet import quiet_libraries
from helpers.course.workshop import LINK_MIN_BYTES, open_pack
from helpers.course.workshop import MANIFEST as PACK_MANIFEST
from helpers.train.runs import CONFIG_NAME, DONE_NAME, PARTIAL_SUFFIX

MAX_DEPTH = 4  # /kaggle/input/<slug>/dreambooth-course is depth 2; newer layouts nest deeper
MAX_FOLDERS = 5000  # enough for any course home; stops a search through a large attached dataset
WEIGHT_SUFFIXES = {".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npz", ".npy"}
MARK_FILES = ("profile.txt", "runs_in_use.json", home_module.HOME_RECORD)
MARK_FOLDERS = ("subjects", "train", "textual_inversion", "class_images", "scores")
UNIT_PARENTS = ("subjects", "class_images", "models")  # each folder under these comes whole from one home
SETTINGS_FILES = ("profile.txt", "runs_in_use.json")


@dataclass
class Brought:
    """What :func:`continue_from_inputs` found and brought over."""

    homes: list[Path]
    inputs: Path
    settings: int = 0
    subjects: int = 0
    photos: int = 0
    finished_runs: int = 0
    unfinished_runs: int = 0
    class_folders: int = 0
    scores: int = 0
    other_files: int = 0
    copied_bytes: int = 0
    linked_bytes: int = 0
    skipped: list[str] = field(default_factory=list)  # units left out, relative to the home

    @property
    def anything(self) -> bool:
        return bool(self.copied_bytes or self.linked_bytes or self.settings or self.subjects or self.other_files
                    or self.finished_runs or self.unfinished_runs or self.class_folders or self.scores)

    def __str__(self) -> str:
        names = ", ".join(self.name(h) for h in self.homes)
        found = (f"{len(self.homes)} saved course homes in {self.inputs}, merged newest first ({names})"
                 if len(self.homes) > 1 else f"a saved course home in {self.inputs} ({names})")
        if not self.anything:
            line = f"Found {found}: everything in it is already here"
        else:
            subjects = _count(self.subjects, "subject") + (f" ({_count(self.photos, 'photo')})" if self.subjects else "")
            parts = [_count(self.settings, "settings file"), subjects if self.subjects else "",
                     _count(self.finished_runs, "finished run"), _count(self.unfinished_runs, "unfinished run"),
                     _count(self.class_folders, "class-image folder"), _count(self.scores, "score table"),
                     _count(self.other_files, "other file")]
            listed = ", ".join(p for p in parts if p and not p.startswith("0 "))
            line = f"Continuing from {found}: brought {listed}; {_size(self.copied_bytes)} copied"
            if self.linked_bytes:
                line += f", {_size(self.linked_bytes)} of weights linked where they are"
        if self.skipped:
            line += (f"; left out {len(self.skipped)} folder(s) whose files are missing ({', '.join(self.skipped[:3])}): "
                     "add the output of the notebook that made them as an input too")
        return line + "."

    def name(self, home: Path) -> str:
        """A saved home as the learner knows it: its path under the inputs, without the home's own folder name."""
        rel = home.relative_to(self.inputs)
        if rel.name == home_module.HOME_NAME and len(rel.parts) > 1:
            rel = rel.parent
        return rel.as_posix()


def _count(n: int, what: str) -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _size(n: int) -> str:
    return f"{n / 10**9:.1f} GB" if n >= 10**8 else f"{n / 10**6:.0f} MB" if n >= 10**6 else f"{max(1, n // 1000)} kB"


def is_course_home(folder: Path) -> bool:
    """Whether ``folder`` looks like a course home: its settings or record, or two of its folders."""
    if any((folder / name).is_file() for name in MARK_FILES) or any(folder.glob("course-*.yaml")):
        return True
    marks = sum((folder / name).is_dir() for name in MARK_FOLDERS)
    return marks >= 2 or (marks == 1 and folder.name == home_module.HOME_NAME)


def find_homes(inputs: str | Path | None = None) -> list[Path]:
    """The course homes under ``inputs`` (default: ``/kaggle/input``), newest first."""
    inputs = Path(inputs or home_module.KAGGLE_INPUT)
    found, level, seen = [], [inputs], 0
    for _ in range(MAX_DEPTH):
        deeper = []
        for folder in level:
            try:
                children = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
            except OSError:  # no inputs at all, or a folder that cannot be read
                continue
            seen += len(children)
            for child in children:
                if (child / PACK_MANIFEST).is_file():  # a workshop pack: open_pack unpacks it, paths and all
                    continue
                (found if is_course_home(child) else deeper).append(child)
        if seen > MAX_FOLDERS:
            break
        level = deeper
    return sorted(found, key=opened_at, reverse=True)


def opened_at(home: Path) -> float:
    """When a notebook last opened ``home`` (its record), else the newest time among its settings and runs."""
    try:
        return float(json.loads((home / home_module.HOME_RECORD).read_text())["opened_at"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    marks = [*home.glob("*.*"), *home.glob(f"*/*/{DONE_NAME}"), *home.glob(f"*/*/{CONFIG_NAME}")]
    return max((p.stat().st_mtime for p in marks if p.is_file()), default=0.0)


def _units(home: Path) -> dict[str, bool]:
    """Folders of ``home`` that come whole from one home, as relative paths: a run (True when finished) or not a run."""
    units = {p.parent.relative_to(home).as_posix(): (p.parent / DONE_NAME).is_file()
             for p in home.glob(f"*/*/{CONFIG_NAME}")}
    for parent in UNIT_PARENTS:
        units.update({p.relative_to(home).as_posix(): False for p in home.glob(f"{parent}/*") if p.is_dir()})
    return units


def _complete(folder: Path) -> bool:
    """False when a file in ``folder`` is a link to something no longer there (an input not attached)."""
    for dirpath, _, filenames in os.walk(folder, followlinks=True):
        if any(not os.path.exists(os.path.join(dirpath, name)) for name in filenames):
            return False
    return True


def _bring_file(src: Path, dst: Path, brought: Brought, link: bool = True) -> bool:
    """Link a large weight file (where ``link``), copy anything else; never replace ``dst``. True when brought."""
    if dst.exists() or dst.is_symlink():
        return False
    real = src.resolve()
    if not real.is_file():
        return False
    size = real.stat().st_size
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link and real.suffix in WEIGHT_SUFFIXES and size >= LINK_MIN_BYTES:
        try:
            dst.symlink_to(real)
            brought.linked_bytes += size
            return True
        except OSError:  # no links on this file system: copy instead
            pass
    shutil.copy2(real, dst)
    brought.copied_bytes += size
    return True


def _bring_folder(src: Path, dst: Path, brought: Brought, link_only_under: str | None = None) -> int:
    """Bring every file under ``src`` to the same place under ``dst`` (incomplete checkpoints left out); the count.

    Args:
        link_only_under: link weights only in this subfolder (an unfinished run: the trainer writes its
            final weights beside its checkpoints, and must not write through a link into a read-only input).
    """
    count = 0
    for dirpath, dirnames, filenames in os.walk(src, followlinks=True):
        dirnames[:] = sorted(d for d in dirnames if not d.endswith(PARTIAL_SUFFIX))
        rel = Path(dirpath).relative_to(src)
        (dst / rel).mkdir(parents=True, exist_ok=True)
        link = link_only_under is None or rel.parts[:1] == (link_only_under,)
        count += sum(_bring_file(Path(dirpath) / name, dst / rel / name, brought, link) for name in filenames)
    return count


def _skip_top(name: str) -> bool:
    """Top-level entries never brought: this home's own record, and the Hub cache unless it belongs in the home."""
    return name == home_module.HOME_RECORD or (name == "hub-cache" and not home_module.hub_cache_on_home())


def continue_from_inputs(home: str | Path | None = None, inputs: str | Path | None = None,
                         quiet: bool = False) -> Brought | None:
    """Bring what the course homes under ``inputs`` hold into ``home``, and say in one line what that was.

    Args:
        home: the working course home (default: :func:`helpers.base.home.course_home`).
        inputs: where saved outputs are mounted (default: ``/kaggle/input``).
        quiet: do not print the line.

    Returns:
        What was found and brought; None when no saved course home is attached.
    """
    home = Path(home or home_module.course_home())
    homes = [h for h in find_homes(inputs) if h.resolve() != home.resolve()]
    if not homes:
        return None
    brought = Brought(homes=homes, inputs=Path(inputs or home_module.KAGGLE_INPUT))
    units: dict[str, list[tuple[Path, bool]]] = {}
    for saved in homes:  # newest first
        for rel, finished in _units(saved).items():
            if not _skip_top(rel.split("/")[0]):
                units.setdefault(rel, []).append((saved / rel, finished))
    for rel, copies in units.items():
        target = home / rel
        if target.is_dir() and any(target.iterdir()):
            continue  # already here: never replaced
        usable = [(src, finished) for src, finished in copies if _complete(src)]
        if not usable:
            brought.skipped.append(rel)
            continue
        src, finished = next((c for c in usable if c[1]), usable[0])  # a finished copy first, else the newest
        is_run = (src / CONFIG_NAME).is_file()
        files = _bring_folder(src, target, brought, None if finished or not is_run else CHECKPOINTS)
        _count_unit(rel, src, finished, files, brought)
    for saved in homes:
        _bring_loose_files(saved, home, set(units), brought)
    if not quiet:
        print(brought)
    return brought


def _count_unit(rel: str, src: Path, finished: bool, files: int, brought: Brought) -> None:
    top = rel.split("/")[0]
    if (src / CONFIG_NAME).is_file():
        if finished:
            brought.finished_runs += 1
        else:
            brought.unfinished_runs += 1
    elif top == "subjects":
        brought.subjects += 1
        brought.photos += files
    elif top == "class_images":
        brought.class_folders += 1
    else:
        brought.other_files += files


def _bring_loose_files(saved: Path, home: Path, units: set[str], brought: Brought) -> None:
    """Files of ``saved`` outside its runs, subjects and class images: settings, scores, figures, records."""
    for dirpath, dirnames, filenames in os.walk(saved, followlinks=True):
        here = Path(dirpath)
        rel_here = here.relative_to(saved)
        dirnames[:] = sorted(d for d in dirnames if (rel_here / d).as_posix() not in units
                             and not (here == saved and _skip_top(d)))
        for name in filenames:
            rel = rel_here / name
            if here == saved and _skip_top(name):
                continue
            if not _bring_file(here / name, home / rel, brought):
                continue
            if here == saved and (name in SETTINGS_FILES or (name.startswith("course-") and name.endswith(".yaml"))):
                brought.settings += 1
            elif rel.parts[0] == "scores":
                brought.scores += 1
            else:
                brought.other_files += 1


def _mount_drive() -> None:
    from google.colab import drive  # only on Colab

    drive.mount(str(home_module.COLAB_ROOT / "drive"))


def open_home(mount: Callable[[], None] | None = None) -> Path:
    """Make the course home ready and say where it is; on Colab, offer to mount Google Drive first.

    On Kaggle it also brings in the course homes that earlier notebooks saved, where their outputs
    are attached as inputs (:func:`continue_from_inputs`). Every notebook opens here, so this is
    where the libraries' noise is filtered (:func:`~helpers.course.quiet.quiet_libraries`), and where a
    workshop pack is unpacked into a home that has no settings yet (:func:`~helpers.course.workshop.open_pack`).

    Args:
        mount: what mounts Drive on Colab (tests pass a fake); None uses ``google.colab.drive``.

    Returns:
        The course home, created if needed.
    """
    quiet_libraries()
    overridden = any(os.environ.get(name) for name in (home_module.HOME_ENV, home_module.RUNS_DIR_ENV))
    platform = home_module.detect_platform()
    if platform == "colab" and not overridden and not home_module.drive_folder().is_dir():
        print("Your photos, runs and figures will be kept on your Google Drive, so that a disconnect loses nothing "
              "and every notebook of the course finds them; Colab now asks you to allow that.")
        try:
            (mount or _mount_drive)()
        except Exception as err:  # noqa: BLE001 (declined, timed out, or no Drive: all mean the same here)
            fallback = home_module.COLAB_ROOT / home_module.HOME_NAME
            warnings.warn(f"Google Drive is not mounted ({err}). Your work goes to {fallback}, which "
                          "is deleted when this runtime ends or disconnects.", stacklevel=2)
    home = home_module.course_home()
    home.mkdir(parents=True, exist_ok=True)
    if platform == "kaggle" and not overridden:
        print(f"Your work goes to {home} (Kaggle saves up to 20 GB of /kaggle/working). It is kept only when "
              "you 'Save Version' (Save & Run All); to continue in another notebook, add the saved outputs of "
              "the earlier notebooks as its inputs (Add Input > Your Work), and this cell brings them in.")
    open_pack(home)  # a workshop pack beside the home (My Drive) or attached on Kaggle: the instructor's runs
    if platform == "kaggle":
        continue_from_inputs(home)
        record_opened(home)
    return home


def record_opened(home: Path) -> Path:
    """Note in the home when a notebook opened it, so that saved homes can be merged newest first."""
    path = home / home_module.HOME_RECORD
    path.write_text(json.dumps({"opened_at": time.time(), "platform": home_module.detect_platform()}) + "\n")
    return path
