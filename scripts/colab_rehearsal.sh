#!/usr/bin/env bash
# Rehearse the notebooks' install cell on a machine shaped like Colab, without GitHub or a GPU.
#
# A fresh venv gets what Colab ships that matters here (the CPU torch, ipywidgets 7.7.1,
# transformers 4, sentence-transformers, an older diffusers, numpy and pillow), a stand-in
# google.colab module imported when the kernel starts (its drive.mount fails, as when a learner
# declines), and the kit from a local clone of this checkout (COURSE_KIT_SOURCE). It runs the
# install cell alone, then notebooks 00 and 01 in the smoke profile, and fails unless:
#   - no line of the install cell's output starts with ERROR;
#   - torch and ipywidgets are the versions they were before;
#   - both notebooks finish.
# Only committed changes are rehearsed (the kit is cloned). Takes several minutes.
#   bash scripts/colab_rehearsal.sh        (or: make colab-rehearsal)
# REHEARSAL_DIR=folder keeps everything there (default: a new temporary folder); PYTHON picks the Python.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${PYTHON:-python3.11}
WORK=${REHEARSAL_DIR:-$(mktemp -d -t colab-rehearsal.XXXXXX)}
mkdir -p "$WORK/content" "$WORK/home"
echo "rehearsal folder: $WORK"
SECONDS=0

# 1. A Python environment shaped like Colab's. torch goes first and is pinned, so nothing else pulls another.
"$PYTHON" -m venv "$WORK/venv"
PY=$WORK/venv/bin/python
{
  "$PY" -m pip install torch==2.13.0
  echo "torch==$("$PY" -c 'from importlib.metadata import version; print(version("torch"))')" > "$WORK/torch-pin.txt"
  "$PY" -m pip install -c "$WORK/torch-pin.txt" ipywidgets==7.7.1 transformers==4.57.1 \
    sentence-transformers==5.1.2 diffusers==0.35.2 accelerate==1.10.1 huggingface_hub==0.35.3 \
    numpy==2.0.2 pillow==11.3.0 nbclient nbformat ipykernel
} > "$WORK/venv-setup.log" 2>&1 || { tail -20 "$WORK/venv-setup.log"; echo "could not build the venv: $WORK/venv-setup.log"; exit 1; }
echo "Colab-shaped venv ready after ${SECONDS}s ($(cat "$WORK/torch-pin.txt"); pip's output in $WORK/venv-setup.log)"

# 2. Colab's marks: google.colab imported at kernel start, and a kernel that runs this venv's Python.
mkdir -p "$WORK/stub/google/colab" "$WORK/ipython/profile_default/startup" "$WORK/jupyter/kernels/python3"
echo '"""A stand-in for Colab'"'"'s module: the notebooks only check that it is imported."""' > "$WORK/stub/google/colab/__init__.py"
printf 'def mount(*args, **kwargs):\n    raise RuntimeError("no Google Drive in this rehearsal")\n' > "$WORK/stub/google/colab/drive.py"
echo "import google.colab  # as on Colab" > "$WORK/ipython/profile_default/startup/00-colab.py"
printf '{"argv": ["%s", "-m", "ipykernel_launcher", "-f", "{connection_file}"], "display_name": "Python 3", "language": "python"}\n' \
  "$PY" > "$WORK/jupyter/kernels/python3/kernel.json"

# 3. The kit, fetched by the install cell from a local clone instead of GitHub.
git clone --quiet "$ROOT" "$WORK/kit-source"
[ -z "$(git -C "$ROOT" status --porcelain)" ] || echo "note: uncommitted changes are not rehearsed (the kit is cloned)"

export WORK COURSE_KIT_SOURCE="$WORK/kit-source" COURSE_HOME="$WORK/home" COURSE_PROFILE=smoke COURSE_INTERACTIVE=0 \
  HF_HUB_OFFLINE=1 OMP_NUM_THREADS=1 PYTHONPATH="$WORK/stub" IPYTHONDIR="$WORK/ipython" JUPYTER_PATH="$WORK/jupyter"
"$PY" - <<'PYTHON'
"""Run the install cell alone, then notebooks 00 and 01; exit 1 unless the rehearsal's three conditions hold."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

WORK = Path(os.environ["WORK"])
NOTEBOOKS = WORK / "kit-source" / "notebooks"
failures = []


def versions() -> dict:
    """torch's and ipywidgets' installed versions, read by a fresh interpreter."""
    code = "import json; from importlib.metadata import version as v; print(json.dumps({n: v(n) for n in ('torch', 'ipywidgets')}))"
    return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)


def execute(nb, name: str) -> bool:
    """Run a notebook in a fresh kernel in the Colab-like /content; save it; True when every cell finished."""
    start = time.time()
    client = NotebookClient(nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(WORK / "content")}})
    try:
        client.execute()
        ok = True
    except CellExecutionError as err:
        print(f"{name}: a cell failed:\n{str(err)[-3000:]}")
        ok = False
    nbformat.write(nb, WORK / f"executed-{name}.ipynb")
    print(f"{name}: {'finished' if ok else 'FAILED'} in {time.time() - start:.0f} s")
    return ok


def output_lines(cell) -> list[str]:
    """Every line the cell showed, as the learner sees it: a carriage return replaces the line before it."""
    lines, text = [], "".join(out["text"] for out in cell.get("outputs", []) if out["output_type"] == "stream")
    lines += [part.split("\r")[-1] for part in text.split("\n") if part.split("\r")[-1]]
    for out in cell.get("outputs", []):
        if out["output_type"] == "error":
            lines += [line for tb in out["traceback"] for line in tb.splitlines()]
        elif "text/plain" in out.get("data", {}):
            lines += out["data"]["text/plain"].splitlines()
    return lines


before = versions()
setup = nbformat.read(NOTEBOOKS / "00_setup.ipynb", as_version=4)
first = next(cell for cell in setup.cells if cell.cell_type == "code")
install = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(first.source)], metadata=setup.metadata)
if not execute(install, "install-cell"):
    failures.append("the install cell failed")
print("install cell output:")
for line in output_lines(install.cells[0]):
    print(f"  | {line}")
if any(line.startswith("ERROR") for line in output_lines(install.cells[0])):
    failures.append("a line of the install cell's output starts with ERROR")
after = versions()
for name in before:
    print(f"{name}: {before[name]} before, {after[name]} after")
    if before[name] != after[name]:
        failures.append(f"{name} changed from {before[name]} to {after[name]}")
for name in ("00_setup", "01_learning_rate"):
    nb = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    if not execute(nb, name):
        failures.append(f"{name} did not finish")
    first = next(cell for cell in nb.cells if cell.cell_type == "code")
    print(f"  its install cell: {' | '.join(output_lines(first))}")
print("rehearsal " + ("passed" if not failures else "FAILED: " + "; ".join(failures)))
sys.exit(1 if failures else 0)
PYTHON
echo "colab rehearsal took ${SECONDS}s (outputs in $WORK)"
