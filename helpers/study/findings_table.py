"""A profile's column of the README's findings table, from the score tables its notebooks saved.

Every comparison a notebook scores is saved in the course home (``scores/<name>.json``, see
:func:`helpers.measure.scores.score_comparison`). After running the notebooks on a GPU with the real
model, ``course-kit findings-table --readme README.md`` turns them into the ``gpu`` column of
the findings table (one short cell per experiment) and writes the full tables, every cell with
its interval and count, beside it (``--out``).
"""

from __future__ import annotations

import math
import re
from pathlib import Path

from helpers.errors import LearnerError
from helpers.measure.scores import load_saved_scores

# README row (the experiment's first cell) -> the saved tables that measure it, in order
SCORE_FILES = {
    "DreamBooth on objects": ("01_learning_rate",),
    "learning rate": ("01_learning_rate",),
    "prior preservation": ("02_language_drift", "02_prior_preservation"),
    "schedulers": ("03_schedulers",),
    "text encoder": ("04_text_encoder",),
    "textual inversion + DreamBooth": ("05_textual_inversion",),
    "EMA": ("06_ema",),
    "LoRA or full fine-tuning": ("07_lora_or_full",),
}
# The two numbers a cell shows per arm: subject fidelity and the new place (language drift for drift tables)
CELL_COLUMNS = ("subject_fidelity", "context_fidelity")
GPU_COLUMN = "`gpu` profile, real model"
NOT_MEASURED = "not measured yet"


class NoScoresError(LearnerError):
    """There are no saved score tables to build a column from."""


def _value(cell: dict | None) -> str:
    return "-" if cell is None or cell["value"] is None or math.isnan(cell["value"]) else f"{cell['value']:.2f}"


def _short_name(header: str) -> str:
    """``"subject (DINO)"`` -> ``"DINO"``: the measure's own name."""
    found = re.search(r"\((.+)\)", header)
    return found.group(1).split(",")[0] if found else header


def summary_cell(record: dict) -> str:
    """One README cell for a saved table: each arm's subject fidelity and new place (or drift), and the count."""
    drift_only = all(set(row) == {"language_drift"} for row in record["rows"].values())
    columns = ("language_drift",) if drift_only else CELL_COLUMNS
    names = " / ".join(_short_name(record["headers"].get(c, c)) for c in columns)
    arms = "; ".join(f"{label} " + " / ".join(_value(row.get(c)) for c in columns)
                     for label, row in record["rows"].items())
    counts = sorted({row[c]["n"] for row in record["rows"].values() for c in columns if c in row})
    n = "/".join(str(c) for c in counts)
    return f"{names}: {arms} (n={n} images per arm)"


def column_cells(saved: dict[str, dict], profile: str = "gpu") -> dict[str, str]:
    """The README cells of a profile, ``{experiment row: text}``, from :func:`load_saved_scores`."""
    mine = {name: r for name, r in saved.items() if r.get("profile") == profile}
    cells = {}
    for experiment, names in SCORE_FILES.items():
        found = [summary_cell(mine[n]) for n in names if n in mine]
        if found:
            cells[experiment] = "<br>".join(found)
    return cells


def full_tables(saved: dict[str, dict], profile: str = "gpu") -> str:
    """Every saved table of a profile as markdown, each cell ``value [low, high]`` with its count."""
    out = [f"# Measures of the `{profile}` profile, from the notebooks' saved score tables\n"]
    for name, record in sorted(saved.items()):
        if record.get("profile") != profile:
            continue
        columns = list(dict.fromkeys(c for row in record["rows"].values() for c in row))
        out.append(f"## {name} ({record['subject']}; scored by {record['judge']})\n")
        out.append("| arm | " + " | ".join(record["headers"].get(c, c) for c in columns) + " |")
        out.append("|---|" + "---:|" * len(columns))
        for label, row in record["rows"].items():
            cells = []
            for c in columns:
                e = row.get(c)
                cells.append("-" if e is None else f"{_value(e)} [{_value({'value': e['low']})}, "
                             f"{_value({'value': e['high']})}], n={e['n']}")
            out.append(f"| {label} | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def fill_column(markdown: str, cells: dict[str, str], column: str = GPU_COLUMN) -> str:
    """The README text with ``column`` of its findings table filled from ``cells`` (rows matched by name).

    Rows without a cell keep what they had. Raises :class:`LearnerError` where the table has no such column.
    """
    lines = markdown.splitlines()
    header = next((i for i, line in enumerate(lines) if line.startswith("|") and f"| {column} |" in line + " "), None)
    if header is None:
        raise LearnerError(f"The README has no findings table with a column named {column!r}; "
                           "add that column to the table, then run this again.")
    index = [c.strip() for c in lines[header].strip().strip("|").split("|")].index(column)
    i = header + 2
    while i < len(lines) and lines[i].startswith("|"):
        parts = [c.strip() for c in lines[i].strip().strip("|").split("|")]
        if parts[0] in cells:
            parts[index] = cells[parts[0]]
            lines[i] = "| " + " | ".join(parts) + " |"
        i += 1
    return "\n".join(lines) + ("\n" if markdown.endswith("\n") else "")


def write_findings_column(home: str | Path | None = None, readme: str | Path | None = None,
                          out: str | Path | None = None, profile: str = "gpu") -> dict[str, str]:
    """Build a profile's column from a course home's saved tables; fill it into ``readme``, the tables into ``out``.

    Returns:
        The cells, ``{experiment row: text}``.
    """
    folder = Path(home) / "scores" if home else None
    saved = load_saved_scores(folder)
    cells = column_cells(saved, profile)
    if not cells:
        where = folder or "the course home's scores/ folder"
        raise NoScoresError(f"No saved score tables of the {profile!r} profile in {where}: run the notebooks in "
                            f"that profile first (each comparison saves its table), then run this again.")
    if readme:
        path = Path(readme)
        path.write_text(fill_column(path.read_text(), cells))
    if out:
        Path(out).write_text(full_tables(saved, profile))
    return cells
