#!/usr/bin/env bash
# Install torch into the kit's environment without ever pulling a build it does not need.
#  - torch already there (Colab, Kaggle, a conda env): keep it as it is.
#  - an NVIDIA GPU: the default (CUDA) build from PyPI.
#  - no NVIDIA GPU: the CPU build (a few hundred MB instead of several GB).
set -euo pipefail
PY=${1:-python3}
VERSION=2.13.0
CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}

if "$PY" -c "import torch" 2>/dev/null; then
  echo "torch $("$PY" -c 'import torch; print(torch.__version__)') is installed; keeping it."
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
  "$PY" -m pip install --quiet "torch==$VERSION"
else
  # The "+cpu" local version exists only as a CPU build, so no CUDA build can sneak in.
  "$PY" -m pip install --quiet "torch==$VERSION+cpu" 2>/dev/null \
    || "$PY" -m pip install --quiet "torch==$VERSION+cpu" --index-url "$CPU_INDEX" --extra-index-url https://pypi.org/simple
fi
