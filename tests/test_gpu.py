"""Checks that need a CUDA GPU: mixed precision with 8-bit AdamW, and two processes on two GPUs.

They skip on machines without CUDA (CI included). On a GPU machine run them with
``COURSE_PROFILE=smoke python -m pytest tests/test_gpu.py``; the memory goals of Stable
Diffusion at full size are measured by ``python benchmarks/train_step.py --full-sd``.
"""

from __future__ import annotations

import pytest
import torch

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def precisions() -> list[str]:
    """fp16 everywhere; bf16 where the GPU has it."""
    return ["fp16", "bf16"] if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else ["fp16"]


@pytest.mark.parametrize("precision", precisions())
@pytest.mark.parametrize("train_text_encoder", [False, True])
def test_mixed_precision_with_8bit_adam_trains_fp32_weights(make_config, precision, train_text_encoder):
    from helpers.train.dreambooth import train_dreambooth

    config = make_config(
        f"{precision}-{train_text_encoder}",
        mixed_precision=precision,
        use_8bit_adam=True,
        gradient_checkpointing=True,
        train_text_encoder=train_text_encoder,
        with_prior_preservation=True,
        max_train_steps=4,
    )
    result = train_dreambooth(config, progress=False, keep_models=True)  # no "Attempting to unscale FP16 gradients"
    assert result.record["optimizer"] == "AdamW8bit" and result.record["mixed_precision"] == precision
    assert all(torch.isfinite(torch.tensor(result.losses["loss"])))
    trained = [result.models["unet"]] + ([result.models["text_encoder"]] if train_text_encoder else [])
    for model in trained:
        assert {p.dtype for p in model.parameters() if p.requires_grad} == {torch.float32}
    assert result.record["peak_memory_bytes"] > 0


def test_bf16_is_refused_where_the_gpu_lacks_it():
    from helpers.train.optim import PrecisionError, check_mixed_precision

    if torch.cuda.is_bf16_supported():
        check_mixed_precision("bf16")  # accepted: nothing to refuse on this GPU
    else:
        with pytest.raises(PrecisionError, match="fp16"):
            check_mixed_precision("bf16")


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs")
def test_two_gpus_end_with_identical_weights(make_config, tmp_path, free_port):
    """Kaggle's 2x T4 and the study's 2x A100: the CPU test's worker, on two GPUs in fp16 with 8-bit AdamW."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    from helpers.train.config import save_config

    config = make_config("two-gpus", mixed_precision="fp16", use_8bit_adam=True, train_text_encoder=True,
                         with_prior_preservation=True, max_train_steps=4, class_data_dir=str(tmp_path / "class"))
    config_path = save_config(config, tmp_path / "two-gpus.yaml")
    worker = Path(__file__).with_name("test_multiprocess.py")
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port,
               str(worker), str(config_path), str(tmp_path)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert reports[0]["unet"] == reports[1]["unet"] and reports[0]["text_encoder"] == reports[1]["text_encoder"]
    record = json.loads((Path(config.output_dir) / "run.json").read_text())
    assert record["num_processes"] == 2 and record["device"].startswith("cuda")
