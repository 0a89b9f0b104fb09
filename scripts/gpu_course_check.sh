#!/usr/bin/env bash
# One GPU run of the whole course (gpu profile, random SD 1.5 weights, a T4's 15 GiB), in one command:
#
#   bash scripts/gpu_course_check.sh [WORK_DIR] [WHEEL_DIR]
#
# WHEEL_DIR (optional): wheels to install first where the machine lacks them (diffusers,
# bitsandbytes, ...) and has no internet. The report goes to WORK_DIR/gpu_course_check.md and
# is copied to benchmarks/results/gpu_course_check.md.
set -euo pipefail
work=${1:-gpu-course-check}
wheels=${2:-}
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
if [ -n "$wheels" ]; then "$python" -m pip install -q --no-deps "$wheels"/*.whl; fi
"$python" -m pip show nbclient >/dev/null 2>&1 || "$python" -m pip install -q nbclient nbformat ipykernel
mkdir -p "$work"
status=0
"$python" scripts/gpu_course_check.py "$work" || status=$?
cp "$work/gpu_course_check.md" benchmarks/results/gpu_course_check.md 2>/dev/null || true
exit $status
