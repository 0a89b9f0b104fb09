#!/usr/bin/env bash
# The checks that need a CUDA GPU, in one go: the GPU tests (mixed precision with 8-bit AdamW,
# bf16 where the card has it, two GPUs where there are two), then the memory and speed of a
# training step of Stable Diffusion 1.5's architecture at 512 px (random weights, no download).
#
#   bash scripts/gpu_checks.sh [LOG_DIR]     # logs and result tables go to LOG_DIR (default gpu-checks/)
#
# It takes about 5 minutes on one H100-class GPU. The exit status is non-zero when a test or a
# benchmark configuration failed.
set -u
logs=${1:-gpu-checks}
mkdir -p "$logs" && logs=$(cd "$logs" && pwd)
cd "$(dirname "$0")/.."
# the kit from this checkout, whether or not it is installed
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
python=${PYTHON:-python}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    "$python" -c "import torch, diffusers, transformers, accelerate, bitsandbytes as b; \
print('torch', torch.__version__, 'cuda', torch.version.cuda, '| diffusers', diffusers.__version__, \
'| transformers', transformers.__version__, '| accelerate', accelerate.__version__, '| bitsandbytes', b.__version__)"
} 2>&1 | tee "$logs/versions.txt"

COURSE_PROFILE=smoke "$python" -m pytest tests/test_gpu.py -v -rs -p no:cacheprovider 2>&1 | tee "$logs/test_gpu.log"
tests=${PIPESTATUS[0]}

"$python" benchmarks/train_step.py --full-sd 2>&1 | tee "$logs/train_step_gpu.log"
bench=${PIPESTATUS[0]}
cp benchmarks/results/train_step_gpu.md benchmarks/results/train_step_gpu.json "$logs/" 2>/dev/null
if grep -q "failed:" "$logs/train_step_gpu.md" 2>/dev/null; then bench=1; fi

echo "gpu tests: exit $tests; full-size benchmark: exit $bench"
[ "$tests" -eq 0 ] && [ "$bench" -eq 0 ]
