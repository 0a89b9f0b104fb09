"""Small helpers the tests share (plain functions; the fixtures live in conftest.py)."""

from pathlib import Path

import torch

from helpers.profiles import TINY_MODEL
from helpers.share.export import read_kohya_lora
from helpers.train.config import TrainConfig


def tensors_of(module) -> dict:
    """A detached CPU copy of a module's state dict."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def same_tensors(a: dict, b: dict) -> bool:
    """True when two state dicts are bit-identical."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def smoke_config(**changes) -> TrainConfig:
    """A config for the tiny model that trains in seconds; keyword arguments change fields."""
    base = {
        "pretrained_model_name_or_path": TINY_MODEL,
        "resolution": 32,
        "train_batch_size": 2,
        "max_train_steps": 4,
        "learning_rate": 1e-4,
        "num_class_images": 2,
        "sample_batch_size": 2,
        "class_inference_steps": 3,
        "validation_inference_steps": 3,
    }
    return TrainConfig.from_dict({**base, **changes})


def load_kohya_lora(pipe, path: str | Path, adapter_name: str = "kohya"):
    """Apply a kohya-layout LoRA file to a pipeline (each module scaled by its alpha / rank), as other tools do."""
    state, alphas = read_kohya_lora(path, pipe)
    for key in [k for k in state if k.endswith(".lora_B.weight")]:  # fold alpha / rank into the up projection
        module = key.removesuffix(".lora_B.weight")
        rank = state[f"{module}.lora_A.weight"].shape[0]
        state[key] = state[key] * (alphas.get(module, rank) / rank)
    pipe.load_lora_weights(state, adapter_name=adapter_name)
    return pipe
