"""Run the course: execute every notebook in order on the current profile (``make course``).

Executed copies go to ``runs/notebooks/``; the notebooks write their figures to
``runs/figures/``. Finished training runs are reused, so a second ``make course`` only
redraws the figures. ``python scripts/run_course.py 03`` runs the notebooks whose name
starts with 03.
"""

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def run(notebook: Path, out_dir: Path) -> float:
    """Execute one notebook (in its own folder) and save the executed copy; returns seconds."""
    nb = nbformat.read(notebook, as_version=4)
    start = time.perf_counter()
    NotebookClient(nb, timeout=None, kernel_name="python3", resources={"metadata": {"path": str(notebook.parent)}}).execute()
    out_dir.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, out_dir / notebook.name)
    return time.perf_counter() - start


def main(prefixes: list[str]) -> int:
    sys.path.insert(0, str(ROOT))
    from helpers.paths import runs_dir
    from helpers.profiles import get_profile

    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    if prefixes:
        notebooks = [nb for nb in notebooks if any(nb.name.startswith(p) for p in prefixes)]
    print(f"profile: {get_profile().name}; {len(notebooks)} notebook(s)")
    for nb in notebooks:
        seconds = run(nb, runs_dir() / "notebooks")
        print(f"{nb.name:<40} {seconds:7.1f} s")
    print(f"executed notebooks: {runs_dir() / 'notebooks'}; figures: {runs_dir() / 'figures'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
