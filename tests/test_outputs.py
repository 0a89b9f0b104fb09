"""What a learner reads: the kit's messages and figures, without library noise, frozen bars or machine paths."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.course.quiet import DEBUG_ENV, output_problems, scan_notebook, scan_outputs

ROOT = Path(__file__).resolve().parents[1]
EXECUTED = ROOT / "runs" / "notebooks"  # written by make course


def notebook(path: Path, *outputs: dict) -> Path:
    cells = [{"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": [o], "execution_count": i}
             for i, o in enumerate(outputs, 1)]
    path.write_text(json.dumps({"cells": cells, "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    return path


def stream(text: str) -> dict:
    return {"output_type": "stream", "name": "stderr", "text": text}


def test_the_scan_names_each_offending_cell(tmp_path):
    path = notebook(
        tmp_path / "01_x.ipynb",
        stream("trained 400 steps\n"),
        stream("Failed to load CPU gemm_4bit_forward from kernels-community: No module named 'kernels'\n"),
        {"output_type": "display_data", "data": {"text/plain": "Loading weights:   0%|          | 0/36 [00:00<?, ?it/s]"},
         "metadata": {}},
        {"output_type": "execute_result", "data": {"text/plain": "PosixPath('/home/me/runs/runs_in_use.json')"},
         "metadata": {}, "execution_count": 4},
        {"output_type": "execute_result", "data": {"text/plain": "<Figure>", "image/png": "iVBOR"}, "metadata": {},
         "execution_count": 5},
    )
    found = scan_notebook(path)
    assert not any("[cell 1]" in line or "[cell 5]" in line for line in found)  # the kit's message, a figure
    assert any("[cell 2] library noise" in line for line in found)
    assert any("[cell 3] frozen progress bar" in line for line in found)
    assert any("[cell 4] ends on a value" in line for line in found)
    assert any("[cell 4] machine path: 'PosixPath('" in line for line in found)


def test_the_course_home_is_named_by_its_folder_only():
    assert output_problems("course home: runs/, 65 GiB free") == []
    assert output_problems("Your work goes to /kaggle/working/dreambooth-course") == []  # said on purpose
    assert output_problems("cache in /root/.cache") == ["machine path: '/root'"]
    assert output_problems("saved in /srv/course/runs/x.yaml", home="/srv/course/runs") == [
        "machine path: '/srv/course/runs'"]


def test_the_scan_script_exits_1_with_the_list(tmp_path):
    notebook(tmp_path / "02_x.ipynb", stream("see /tmp/abc\n"))
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "scan_outputs.py"), str(tmp_path)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1 and "02_x.ipynb [cell 1] machine path: '/tmp/'" in done.stdout
    notebook(tmp_path / "02_x.ipynb", stream("all good\n"))
    assert subprocess.run([sys.executable, str(ROOT / "scripts" / "scan_outputs.py"), str(tmp_path)],
                          capture_output=True, check=False).returncode == 0


@pytest.mark.skipif(not any(EXECUTED.glob("*.ipynb")), reason="no executed notebooks in runs/notebooks: "
                    "run make course first (this checks its outputs)")
def test_the_executed_course_shows_no_noise():
    found = scan_outputs(EXECUTED, str(EXECUTED.parent.resolve()))
    assert not found, "\n".join(found)


LOAD = """
from helpers.course.continuation import open_home
from helpers.train.models import build_tiny_model, load_components, load_pipeline
open_home()  # what every notebook calls first
path = build_tiny_model({out!r})
load_pipeline(str(path))
load_components(str(path))
import bitsandbytes
from huggingface_hub.utils import are_progress_bars_disabled
print("download bars off:", are_progress_bars_disabled())
"""


def load_tiny_model(tmp_path, debug: bool) -> str:
    env = {**os.environ, "COURSE_HOME": str(tmp_path / "home"), "PYTHONPATH": str(ROOT), "COURSE_PROFILE": "smoke",
           DEBUG_ENV: "1" if debug else "0"}
    code = LOAD.format(out=str(tmp_path / ("tiny-debug" if debug else "tiny")))
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return done.stdout + done.stderr


def test_loading_models_after_the_opening_prints_no_library_noise(tmp_path):
    quiet = load_tiny_model(tmp_path, debug=False)
    assert output_problems(quiet) == [] and "Loading weights" not in quiet and "Loading pipeline" not in quiet
    assert "download bars off: False" in quiet  # a model download of minutes keeps its bar
    loud = load_tiny_model(tmp_path, debug=True)  # COURSE_DEBUG=1: the libraries speak as they would
    assert "requires torchvision" in loud and "Loading pipeline components" in loud
