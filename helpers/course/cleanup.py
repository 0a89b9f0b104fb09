"""Cleaning up the course home: what can be deleted without losing a result a notebook still shows.

Runs fill the disk (a Stable Diffusion checkpoint is several GB, and Colab's Drive and Kaggle's
working folder are small), so ``00_setup`` lists what can go: old and incomplete checkpoints,
and finished runs no notebook uses any more. Notebooks record the runs they show with
:func:`note_runs_in_use`; nothing is deleted without :func:`delete_candidates`.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from helpers.base.home import GIB, course_home, free_bytes
from helpers.train.runs import DONE_NAME, incomplete_checkpoints, list_checkpoints

IN_USE_FILE = "runs_in_use.json"


def note_runs_in_use(notebook: str, runs: Iterable[str | Path]) -> Path:
    """Record which run folders ``notebook`` uses now (replacing what it used before).

    :func:`cleanup_candidates` never offers a run that some notebook still uses.
    """
    path = course_home() / IN_USE_FILE
    in_use = json.loads(path.read_text()) if path.exists() else {}
    in_use[notebook] = sorted({str(Path(r).resolve()) for r in runs})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(in_use, indent=1))
    return path


def runs_in_use() -> set[Path]:
    """Every run folder some notebook recorded with :func:`note_runs_in_use`."""
    path = course_home() / IN_USE_FILE
    in_use = json.loads(path.read_text()) if path.exists() else {}
    return {Path(p) for runs in in_use.values() for p in runs}


@dataclass(frozen=True)
class Candidate:
    """Something in the course home that can be deleted, and why."""

    path: Path
    size_bytes: int
    reason: str


def folder_size(path: Path) -> int:
    """Bytes of all files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _runs(home: Path) -> list[Path]:
    """Run folders (a ``config.yaml`` inside) one level below the course home's folders (``train/``, ...)."""
    return sorted(p.parent for p in home.glob("*/*/config.yaml"))


def cleanup_candidates(home: str | Path | None = None) -> list[Candidate]:
    """What in the course home can be deleted without losing a result a notebook still shows.

    - checkpoints of finished runs (the final weights are kept beside them), and incomplete ones;
    - all but the newest checkpoint of an unfinished run (that one is what resuming needs);
    - finished runs that no notebook uses any more (made with other settings), once notebooks
      have recorded what they use (:func:`note_runs_in_use`).

    Returns:
        The candidates, largest first; nothing is deleted (see :func:`delete_candidates`).
    """
    home = Path(home or course_home())
    in_use = runs_in_use()
    found = []
    for run in _runs(home):
        checkpoints = list_checkpoints(run)
        found += [Candidate(c, folder_size(c), "incomplete checkpoint (stopped while written)") for c in incomplete_checkpoints(run)]
        if not (run / DONE_NAME).exists():
            found += [Candidate(c, folder_size(c), "older checkpoint of an unfinished run") for c in checkpoints[:-1]]
        elif in_use and run.resolve() not in in_use:
            found.append(Candidate(run, folder_size(run), "finished run that no notebook uses now"))
        else:
            found += [Candidate(c, folder_size(c), "checkpoint of a finished run") for c in checkpoints]
    return sorted(found, key=lambda c: -c.size_bytes)


def describe_candidates(candidates: list[Candidate], home: str | Path | None = None) -> str:
    """A table of :func:`cleanup_candidates` for people: what, why, how big, and the total."""
    home = Path(home or course_home())
    if not candidates:
        return "Nothing to delete: every file in the course home is still used."
    lines = [f"{c.size_bytes / GIB:6.2f} GB  {c.path.relative_to(home)}  ({c.reason})" for c in candidates]
    total = sum(c.size_bytes for c in candidates) / GIB
    return "\n".join([*lines, f"{total:6.2f} GB in all, of {free_bytes(home) / GIB:.1f} GB free now"])


def delete_candidates(candidates: list[Candidate]) -> int:
    """Delete what :func:`cleanup_candidates` listed; returns the bytes freed."""
    for candidate in candidates:
        shutil.rmtree(candidate.path, ignore_errors=True)
    return sum(c.size_bytes for c in candidates)
