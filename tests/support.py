"""Small comparisons the tests share (plain functions; the fixtures live in conftest.py)."""

import torch


def tensors_of(module) -> dict:
    """A detached CPU copy of a module's state dict."""
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def same_tensors(a: dict, b: dict) -> bool:
    """True when two state dicts are bit-identical."""
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
