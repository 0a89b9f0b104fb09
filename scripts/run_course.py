"""Run the course: execute every notebook in order on the current profile (``make course``).

Executed copies go to ``notebooks/`` in the course home (``runs/`` on a laptop); the notebooks
write their figures to ``figures/`` there. Finished training runs are reused, so a second
``make course`` only redraws the figures.

    python scripts/run_course.py                  # every notebook
    python scripts/run_course.py 03 05            # the notebooks whose names start with 03 or 05
    python scripts/run_course.py --cell-timeout 600
    python scripts/run_course.py --gpu-report report.md   # also peak memory and disk use of each notebook

Each cell is printed as it finishes, with its time; a cell that runs longer than the limit
stops the course with a message that names the notebook and the cell, and the command exits
non-zero naming every notebook that failed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
import time
from pathlib import Path
from typing import Self

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CELL_TIMEOUT = 3600  # seconds: ends a stall; the longest cpu-profile cell takes under 3 minutes on a free 2-core machine


def first_line(cell) -> str:
    """The first non-empty line of a cell's source, shortened: how the progress names a cell."""
    line = next((s.strip() for s in cell.source.splitlines() if s.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


class Progress:
    """Prints one line per executed code cell: notebook, cell number, its first line and the time."""

    def __init__(self, name: str, cells: int):
        self.name, self.cells, self.started = name, cells, time.perf_counter()
        self.cell_started = self.started
        self.current = "before the first cell"

    def on_cell_start(self, cell, cell_index, **_):
        self.cell_started = time.perf_counter()
        self.current = f"cell {cell_index + 1} ({first_line(cell)})"

    def on_cell_executed(self, cell, cell_index, **_):
        now = time.perf_counter()
        print(f"  {self.name} [{cell_index + 1}/{self.cells}] {now - self.cell_started:6.1f} s "
              f"(total {now - self.started:6.1f} s)  {first_line(cell)}", flush=True)


class NotebookFailed(RuntimeError):
    """A notebook stopped: which cell, and why (``measures``: what was measured until then)."""

    def __init__(self, message: str, measures: dict | None = None):
        super().__init__(message)
        self.measures = measures or {}


# Appended to each notebook with --gpu-report and removed from the saved copy: the kernel's peak GPU memory
# and its peak resident memory (the notebooks train inside the kernel, so that is the notebook's peak).
PEAK_PROBE = """import json, resource, torch
peaks = {"rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}
if torch.cuda.is_available():
    peaks.update(allocated=torch.cuda.max_memory_allocated(), reserved=torch.cuda.max_memory_reserved())
print("PEAKS " + json.dumps(peaks))"""


def kernel_peaks(nb) -> dict:
    """What the probe cell printed: peak RSS, and peak GPU allocated and reserved bytes with CUDA (empty without probe)."""
    import json

    for output in nb.cells[-1].get("outputs", []) if nb.cells else []:
        for line in output.get("text", "").splitlines():
            if line.startswith("PEAKS "):
                return json.loads(line[len("PEAKS "):])
    return {}


def folder_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder`` (links not followed); a file deleted while counting is skipped."""
    total = 0
    for root, _dirs, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(root, name)).st_size
            except OSError:
                pass
    return total


class HomeSize:
    """A folder's size at the start, at its largest and at the end of a notebook.

    Inside ``with``, a background thread samples it every ``interval`` seconds; call
    :meth:`sample` after each cell too. A file written and deleted between two samples is missed.
    """

    def __init__(self, folder: Path, interval: float = 1.0):
        self.folder, self.interval = folder, interval
        self.start = self.peak = self.end = folder_bytes(folder)
        self._stop, self._lock = threading.Event(), threading.Lock()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def sample(self) -> int:
        """Measure the folder now; returns its bytes and raises the peak if they are more."""
        size = folder_bytes(self.folder)
        with self._lock:
            self.peak = max(self.peak, size)
        return size

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.end = self.sample()

    def measures(self) -> dict[str, int]:
        """Bytes at the start and end, and written (above the start) at the peak and at the end."""
        return {"home_start": self.start, "written_peak": self.peak - self.start,
                "written_end": self.end - self.start, "home_end": self.end}


def run(notebook: Path, out_dir: Path, cell_timeout: int, probe: bool = False,
        home: Path | None = None, profile: str | None = None) -> tuple[float, dict]:
    """Execute one notebook (in its own folder) and save the executed copy; returns seconds and measures.

    The executed copy is saved even when a cell fails, so its error can be read there.

    Args:
        probe: also measure the kernel's peak RSS and peak GPU memory (a cell appended, then removed).
        home: a folder to watch while the notebook runs (the course home): bytes at the start,
            peak and end, the executed copy included.
        profile: the profile it runs on, recorded with its time in the copy's ``metadata.course_run``
            (the course website says both on the notebook's page).

    Raises:
        NotebookFailed: a cell raised, ran past ``cell_timeout`` or killed the kernel; the
            message names the cell, and its ``measures`` hold what was measured.
    """
    nb = nbformat.read(notebook, as_version=4)
    if probe:
        nb.cells.append(nbformat.v4.new_code_cell(PEAK_PROBE))
    progress = Progress(notebook.stem, len(nb.cells))
    size = HomeSize(home) if home else None

    def cell_done(**kwargs):
        progress.on_cell_executed(**kwargs)
        if size:
            size.sample()

    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
        on_cell_start=progress.on_cell_start,
        on_cell_executed=cell_done,
    )
    start = time.perf_counter()
    error = None
    with size or contextlib.nullcontext():
        try:
            client.execute()
        except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
            error = err
        measures = kernel_peaks(nb) if probe else {}
        if probe:
            nb.cells.pop()
        nb.metadata["course_run"] = {"profile": profile, "seconds": round(time.perf_counter() - start, 1),
                                     "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "failed": error is not None}
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / notebook.name)
    seconds = time.perf_counter() - start
    measures.update(size.measures() if size else {})
    if error is not None:
        raise NotebookFailed(f"{progress.current}: {reason(error, cell_timeout)}", measures) from error
    return seconds, measures


def reason(err: Exception, cell_timeout: int) -> str:
    """Why a cell stopped, in one line, from the error nbclient raised."""
    if isinstance(err, CellTimeoutError):
        return f"ran longer than the limit of {cell_timeout} s (--cell-timeout, COURSE_CELL_TIMEOUT)"
    if isinstance(err, DeadKernelError):
        return "the kernel died (out of memory?)"
    lines = [line for line in str(err).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(err).__name__


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Execute the course's notebooks in order on the current profile.")
    parser.add_argument("prefixes", nargs="*", help="run only notebooks whose names start with these (e.g. 03)")
    parser.add_argument("--cell-timeout", type=int, default=int(os.environ.get("COURSE_CELL_TIMEOUT", DEFAULT_CELL_TIMEOUT)),
                        help=f"seconds a cell may run before the course stops (default {DEFAULT_CELL_TIMEOUT})")
    parser.add_argument("--dir", type=Path, default=ROOT / "notebooks", help="where the notebooks are")
    parser.add_argument("--gpu-report", type=Path,
                        help="write time, peak GPU memory and RSS, and bytes written into the course home per notebook "
                             "to this markdown table (rows of notebooks not run now are kept)")
    return parser.parse_args(argv)


REPORT_COLUMNS = ("notebook", "result", "seconds", "peak GPU allocated (GiB)", "peak GPU reserved (GiB)",
                  "peak RSS (GiB)", "home at start", "written: peak", "written: end", "home at end",
                  "budget: kept before", "budget: peak", "budget: trash", "budget: total", "peak written within budget")
NO_BUDGET = "budget: not available"
SMALL_FILES = 16 * 2**20  # settings, photos, logs and score tables: not itemised in the budget


def notebook_budgets(profile: str) -> dict[str, object] | None:
    """The course's disk budget per notebook number (``helpers.course.budget``, on a local course home), or None where the kit has none."""
    try:
        from helpers.course.budget import course_budget
    except ImportError:
        return None
    return {b.notebook: b for b in course_budget(profile, "local")}  # the check's home is a local folder


def budget_cells(measures: dict, budget) -> list[str]:
    """The budget columns of a row: the budget's four numbers and whether the peak written stays within its peak."""
    from helpers.measure.memory import format_bytes

    if budget is None:
        return [NO_BUDGET] * 4 + ["-"]
    if budget == "unlisted":
        return ["not in the budget"] * 4 + ["-"]
    cells = [format_bytes(getattr(budget, f)) for f in ("kept_before", "peak", "trash", "total")]
    written = measures.get("written_peak")
    if written is None:
        return [*cells, "-"]
    allowed = budget.peak + SMALL_FILES  # the budget counts weights, checkpoints, class images and samples
    verdict = "yes" if written <= allowed else f"NO: {format_bytes(written)} > {format_bytes(allowed)}"
    return [*cells, verdict]


def report_row(name: str, seconds: float | None, measures: dict, status: str, budget=None) -> str:
    """One markdown row of the report (columns: ``REPORT_COLUMNS``).

    Args:
        measures: what :func:`run` measured (GPU and RSS peaks, course-home bytes); missing ones print ``-``.
        budget: the notebook's ``NotebookBudget``, ``"unlisted"``, or None where no budget is available.
    """
    from helpers.measure.memory import format_bytes

    gib = {k: f"{measures[k] / 2**30:.2f}" for k in ("allocated", "reserved", "rss") if k in measures}
    disk = [format_bytes(measures.get(k)) for k in ("home_start", "written_peak", "written_end", "home_end")]
    cells = [name, status, f"{seconds:.0f}" if seconds is not None else "-",
             *(gib.get(k, "-") for k in ("allocated", "reserved", "rss")), *disk, *budget_cells(measures, budget)]
    return "| " + " | ".join(cells) + " |"


def report_table(path: Path, rows: dict[str, str]) -> str:
    """The report's markdown table: rows already in ``path`` from earlier calls, with ``rows`` replacing theirs."""
    kept = {}
    if path.exists():
        for line in path.read_text().splitlines():
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            if line.startswith("| ") and len(cells) == len(REPORT_COLUMNS) and cells[0] != REPORT_COLUMNS[0]:
                kept[cells[0]] = line
    kept.update(rows)
    head = ["| " + " | ".join(REPORT_COLUMNS) + " |", "|---|---|" + "---:|" * (len(REPORT_COLUMNS) - 2)]
    return "\n".join([*head, *(kept[name] for name in sorted(kept))]) + "\n"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # Nobody watches a headless run: no widgets, no upload buttons, only what the figures show. Widgets
    # also stalled it: nbclient answers an Output widget (ipywidgets' interact) by sending on the kernel's
    # shell channel while it waits on that channel for the cell's reply; the reply then arrived unnoticed
    # and, without a time limit, the run waited forever (seen in notebook 01 after its progress figure).
    os.environ.setdefault("COURSE_INTERACTIVE", "0")
    sys.path.insert(0, str(ROOT))
    from helpers.base.paths import runs_dir
    from helpers.profiles import get_profile

    notebooks = sorted(args.dir.glob("[0-9][0-9]_*.ipynb"))
    if args.prefixes:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(p) for p in args.prefixes)]
    out_dir = runs_dir() / "notebooks"
    print(f"profile: {get_profile().name}; {len(notebooks)} notebook(s); cell limit {args.cell_timeout} s", flush=True)
    failed, total, rows = [], time.perf_counter(), {}
    report = bool(args.gpu_report)
    budgets = notebook_budgets(get_profile().name) if report else None
    for nb in notebooks:
        print(f"{nb.name}: running", flush=True)
        budget = None if budgets is None else budgets.get(nb.name[:2], "unlisted")
        try:
            seconds, measures = run(nb, out_dir, args.cell_timeout, probe=report, home=runs_dir() if report else None,
                                    profile=get_profile().name)
        except NotebookFailed as err:
            print(f"{nb.name}: FAILED in {err}\n  the executed copy, with the error: {out_dir.name}/{nb.name} "
                  "in the course home", flush=True)
            failed.append(f"{nb.name}, {err}")
            rows[nb.stem] = report_row(nb.stem, None, err.measures, f"failed: {err}".replace("|", "/"), budget)
        else:
            print(f"{nb.name}: done in {seconds:.1f} s", flush=True)
            rows[nb.stem] = report_row(nb.stem, seconds, measures, "ran", budget)
        if report:  # after each notebook, so a run stopped half-way keeps the rows of those that finished
            args.gpu_report.write_text(report_table(args.gpu_report, rows))
    print(f"{len(notebooks) - len(failed)} of {len(notebooks)} notebooks ran in {time.perf_counter() - total:.0f} s; "
          f"executed copies in {out_dir}", flush=True)
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
