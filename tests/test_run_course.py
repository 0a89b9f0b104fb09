"""make course's runner: progress per cell, a cell time limit that names the cell, a non-zero exit naming what failed."""

import subprocess
import sys

import nbformat
import pytest

from helpers.base.paths import REPO_ROOT

pytestmark = pytest.mark.slow


def notebook(folder, name, *cells):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, folder / name)


def run_course(folder, home, *args):
    command = [sys.executable, str(REPO_ROOT / "scripts" / "run_course.py"), "--dir", str(folder), *args]
    env = {"COURSE_HOME": str(home), "COURSE_PROFILE": "smoke", "PATH": "/usr/bin:/bin", "HOME": str(home)}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


def test_every_cell_is_reported_and_failures_are_named(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    notebook(folder, "01_fine.ipynb", "x = 1", "print(x + 1)")
    notebook(folder, "02_slow.ipynb", "y = 2", "import time\ntime.sleep(60)", "z = 3")
    notebook(folder, "03_broken.ipynb", "raise ValueError('the photos are missing')")
    result = run_course(folder, tmp_path / "home", "--cell-timeout", "5")
    assert result.returncode == 1
    out = result.stdout
    assert "01_fine [1/2]" in out and "01_fine [2/2]" in out and "01_fine.ipynb: done" in out
    assert "02_slow.ipynb: FAILED in cell 2 (import time): ran longer than the limit of 5 s" in out
    assert "03_broken.ipynb: FAILED in cell 1" in out and "the photos are missing" in out
    assert "1 of 3 notebooks ran" in out
    assert "02_slow.ipynb" in result.stderr and "03_broken.ipynb" in result.stderr
    assert (tmp_path / "home" / "notebooks" / "03_broken.ipynb").exists()  # saved with its error


def test_headless_runs_switch_widgets_off(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    notebook(folder, "01_env.ipynb", "import os\nassert os.environ['COURSE_INTERACTIVE'] == '0'")
    assert run_course(folder, tmp_path / "home").returncode == 0


def test_the_report_keeps_earlier_calls_and_measures_the_course_home(tmp_path):
    folder, home, report = tmp_path / "nb", tmp_path / "home", tmp_path / "report.md"
    folder.mkdir()
    home.mkdir()
    notebook(folder, "01_writes.ipynb", "import os, pathlib\n"
             "(pathlib.Path(os.environ['COURSE_HOME']) / 'weights.bin').write_bytes(b'x' * 2**20)")
    notebook(folder, "02_reads.ipynb", "x = 1")
    assert run_course(folder, home, "--gpu-report", str(report), "01").returncode == 0
    assert run_course(folder, home, "--gpu-report", str(report), "02").returncode == 0
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in report.read_text().splitlines()[2:]]
    assert [r[0] for r in rows] == ["01_writes", "02_reads"]
    written = {r[0]: r[7] for r in rows}  # written: peak
    assert written["01_writes"].endswith("MiB") and float(written["01_writes"].split()[0]) >= 1.0
    assert not written["02_reads"].endswith("MiB")  # only its executed copy
    assert all(float(r[5]) > 0 for r in rows)  # the kernel's peak RSS
