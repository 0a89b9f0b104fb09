"""Run the course: execute every notebook in order on the current profile (``make course``).

Executed copies go to ``notebooks/`` in the course home (``runs/`` on a laptop); the notebooks
write their figures to ``figures/`` there. Finished training runs are reused, so a second
``make course`` only redraws the figures.

    python scripts/run_course.py                  # every notebook
    python scripts/run_course.py 03 05            # the notebooks whose names start with 03 or 05
    python scripts/run_course.py --cell-timeout 600
    python scripts/run_course.py --gpu-report report.md   # also the peak GPU memory of each notebook

Each cell is printed as it finishes, with its time; a cell that runs longer than the limit
stops the course with a message that names the notebook and the cell, and the command exits
non-zero naming every notebook that failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

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
    """A notebook stopped: which cell, and why."""


# Appended to each notebook with --gpu-report and removed from the saved copy: the kernel's peak GPU memory.
GPU_PROBE = """import json, torch
print("GPU_PEAK " + json.dumps({"allocated": torch.cuda.max_memory_allocated(), "reserved": torch.cuda.max_memory_reserved()}
      if torch.cuda.is_available() else {}))"""


def gpu_peak(nb) -> dict:
    """What the probe cell printed: peak allocated and reserved bytes (empty without CUDA or probe)."""
    import json

    for output in nb.cells[-1].get("outputs", []) if nb.cells else []:
        for line in output.get("text", "").splitlines():
            if line.startswith("GPU_PEAK "):
                return json.loads(line[len("GPU_PEAK "):])
    return {}


def run(notebook: Path, out_dir: Path, cell_timeout: int, probe_gpu: bool = False) -> tuple[float, dict]:
    """Execute one notebook (in its own folder) and save the executed copy; returns seconds and GPU peaks.

    The executed copy is saved even when a cell fails, so its error can be read there.

    Raises:
        NotebookFailed: a cell raised, ran past ``cell_timeout`` or killed the kernel; the
            message names the cell.
    """
    nb = nbformat.read(notebook, as_version=4)
    if probe_gpu:
        nb.cells.append(nbformat.v4.new_code_cell(GPU_PROBE))
    progress = Progress(notebook.stem, len(nb.cells))
    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
        on_cell_start=progress.on_cell_start,
        on_cell_executed=progress.on_cell_executed,
    )
    start = time.perf_counter()
    peaks = {}
    try:
        client.execute()
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as err:
        raise NotebookFailed(f"{progress.current}: {reason(err, cell_timeout)}") from err
    finally:
        if probe_gpu:
            peaks = gpu_peak(nb)
            nb.cells.pop()
        out_dir.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, out_dir / notebook.name)
    return time.perf_counter() - start, peaks


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
    parser.add_argument("--gpu-report", type=Path, help="write time and peak GPU memory per notebook to this markdown file")
    return parser.parse_args(argv)


def report_row(name: str, seconds: float | None, peaks: dict, status: str) -> str:
    """One markdown row of the GPU report."""
    gib = {k: f"{v / 2**30:.2f}" for k, v in peaks.items()}
    time_text = f"{seconds:.0f}" if seconds is not None else "-"
    return f"| {name} | {status} | {time_text} | {gib.get('allocated', '-')} | {gib.get('reserved', '-')} |"


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
    failed, total = [], time.perf_counter()
    rows = ["| notebook | result | seconds | peak allocated (GiB) | peak reserved (GiB) |", "|---|---|---:|---:|---:|"]
    for nb in notebooks:
        print(f"{nb.name}: running", flush=True)
        try:
            seconds, peaks = run(nb, out_dir, args.cell_timeout, probe_gpu=bool(args.gpu_report))
        except NotebookFailed as err:
            print(f"{nb.name}: FAILED in {err}\n  the executed copy, with the error: {out_dir.name}/{nb.name} "
                  "in the course home", flush=True)
            failed.append(f"{nb.name}, {err}")
            rows.append(report_row(nb.stem, None, {}, f"failed: {err}".replace("|", "/")))
            continue
        print(f"{nb.name}: done in {seconds:.1f} s", flush=True)
        rows.append(report_row(nb.stem, seconds, peaks, "ran"))
    if args.gpu_report:
        args.gpu_report.write_text("\n".join(rows) + "\n")
    print(f"{len(notebooks) - len(failed)} of {len(notebooks)} notebooks ran in {time.perf_counter() - total:.0f} s; "
          f"executed copies in {out_dir}", flush=True)
    if failed:
        print("FAILED: " + "; ".join(failed), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
