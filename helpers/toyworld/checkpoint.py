"""The checkpoint file ToyWorld's trainers share (the base model's and the autoencoder's).

A checkpoint is one ``torch.save`` file: the trainer's configuration beside whatever it needs to
go on (weights, averages, optimiser, progress). It is written through a temporary file, so a run
stopped mid-write keeps its last checkpoint whole, and resumed only under the configuration that
wrote it.
"""

from __future__ import annotations

from pathlib import Path

import torch

from helpers.errors import LearnerError


def save_state(path: Path, config: dict, **parts) -> None:
    """Write ``{"config": config, **parts}`` to ``path`` atomically (a temporary file, then a rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"config": config, **parts}, tmp)
    tmp.replace(path)


def load_state(path: Path, config: dict) -> dict | None:
    """The checkpoint at ``path`` (on the CPU), or None when there is none.

    Raises:
        LearnerError: it was written with another configuration than ``config``.
    """
    if not path.exists():
        return None
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if blob["config"] != config:
        raise LearnerError(f"{path} was written with another configuration; delete it to restart.")
    return blob
