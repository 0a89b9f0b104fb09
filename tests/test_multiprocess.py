"""Two processes on the CPU (gloo), as on Kaggle's 2x T4: both ranks take part and end with identical weights."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import same_tensors, tensors_of


def weights_digest(module) -> str:
    """SHA-256 over a module's tensors, in name order."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def worker(config_path: str, report_dir: str) -> None:
    """Run by each process: train, then report this rank's view of the weights."""
    from helpers.train.config import load_config
    from helpers.train.dreambooth import train_dreambooth

    result = train_dreambooth(load_config(config_path), progress=False, keep_models=True)
    from accelerate import PartialState

    state = PartialState()
    report = {
        "rank": state.process_index,
        "world": state.num_processes,
        "backend": state.backend,
        "unet": weights_digest(result.models["unet"]),
        "text_encoder": weights_digest(result.models["text_encoder"]),
    }
    Path(report_dir, f"rank{state.process_index}.json").write_text(json.dumps(report))


@pytest.mark.slow
def test_two_processes_end_identical(make_config, tmp_path, tiny_model_dir, free_port):
    from helpers.train.config import save_config

    config = make_config(
        "ddp",
        with_prior_preservation=True,
        train_text_encoder=True,
        max_train_steps=2,
        num_class_images=2,
        class_data_dir=str(tmp_path / "class"),
    )
    config_path = save_config(config, tmp_path / "ddp.yaml")
    path = os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        free_port,
        __file__,
        str(config_path),
        str(tmp_path),
    ]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in reports] == [0, 1] and all(r["world"] == 2 for r in reports)
    assert (
        reports[0]["unet"] == reports[1]["unet"] and reports[0]["text_encoder"] == reports[1]["text_encoder"]
    )
    record = json.loads((Path(config.output_dir) / "run.json").read_text())
    assert record["num_processes"] == 2


@pytest.mark.slow
def test_train_with_two_gpus_flag_uses_two_processes(make_config, tmp_path, tiny_pipe):
    """``python -m helpers train --gpus 2`` (train_dreambooth_on_gpus) on the CPU: two ranks train one run."""
    from helpers.train.config import save_config
    from helpers.train.dreambooth import load_trained_pipeline

    config = make_config("gpus-flag", max_train_steps=2)
    config_path = save_config(config, tmp_path / "gpus.yaml")
    command = [sys.executable, "-m", "helpers", "train", "--config", str(config_path), "--gpus", "2", "--no-progress"]
    done = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=400, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert done.stdout.count(f"trained: {config.output_dir}") == 3  # rank 0, rank 1, then the launcher
    record = json.loads((Path(config.output_dir) / "run.json").read_text())
    assert record["num_processes"] == 2 and record["device"].startswith("cpu")
    trained = load_trained_pipeline(config.output_dir)
    assert not same_tensors(tensors_of(trained.unet), tensors_of(tiny_pipe.unet))


if __name__ == "__main__":  # a torchrun worker
    worker(sys.argv[1], sys.argv[2])
