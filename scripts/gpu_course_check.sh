#!/usr/bin/env bash
# The whole course in the gpu profile on random SD 1.5 weights, a T4's 15 GiB, in one command:
#
#   bash scripts/gpu_course_check.sh [WORK_DIR [WHEEL_DIR]] [--cpu] [--fresh] [NOTEBOOK ...]
#
# WHEEL_DIR (optional, a folder): wheels to install first where the machine lacks them (diffusers,
# bitsandbytes, ...) and has no internet. NOTEBOOK prefixes (e.g. 00 01) run only those notebooks;
# the course home stays in WORK_DIR between calls, so the course can run in pieces:
#
#   bash scripts/gpu_course_check.sh gpu-course-check --fresh 00 01
#   bash scripts/gpu_course_check.sh gpu-course-check 02
#   bash scripts/gpu_course_check.sh gpu-course-check 03 04
#   bash scripts/gpu_course_check.sh gpu-course-check 05
#   bash scripts/gpu_course_check.sh gpu-course-check 06 07
#
# --cpu runs the same on the CPU (fp32, 64 px). The report, with the rows of every call so far,
# goes to WORK_DIR/gpu_course_check.md (gpu_course_check_cpu.md with --cpu) and is copied to
# benchmarks/results/.
set -euo pipefail
work=${1:-gpu-course-check}
shift || true
wheels=""
if [ $# -gt 0 ] && [ -d "$1" ]; then wheels=$(realpath "$1"); shift; fi
work=$(realpath -m "$work")  # both paths are read from the repository root below
cd "$(dirname "$0")/.."
python=${PYTHON:-python}
if [ -n "$wheels" ]; then "$python" -m pip install -q --no-deps "$wheels"/*.whl; fi
"$python" -m pip show nbclient >/dev/null 2>&1 || "$python" -m pip install -q nbclient nbformat ipykernel
mkdir -p "$work"
status=0
"$python" scripts/gpu_course_check.py "$work" "$@" || status=$?
for report in "$work"/gpu_course_check*.md; do
  if [ -e "$report" ]; then cp "$report" benchmarks/results/; fi
done
exit $status
