"""Notebook 01's training loop, written out, trains the same weights as ``train_dreambooth``."""

import re
from pathlib import Path

import pytest
import torch

from helpers.train.dreambooth import train_dreambooth

SOURCE = Path(__file__).resolve().parents[1] / "notebooks" / "src" / "01_learning_rate.py"
LOOP = "def dreambooth_by_hand("
PRIOR_TERM = "config.prior_loss_weight * prior_loss"


def notebook_cells() -> list[str]:
    return re.split(r"^# %%.*$", SOURCE.read_text(), flags=re.MULTILINE)


def notebook_loop(change: tuple[str, str] | None = None):
    """The notebook's loop function, defined by running its import cell and its loop cell (optionally edited)."""
    cells = notebook_cells()
    imports = next(c for c in cells if "from helpers import" in c)
    loop = next(c for c in cells if LOOP in c)
    if change:
        assert change[0] in loop, f"the loop cell no longer contains {change[0]!r}"
        loop = loop.replace(*change)
    namespace: dict = {}
    exec(imports, namespace)  # noqa: S102 (the notebook's own cells)
    exec(loop, namespace)  # noqa: S102
    return namespace["dreambooth_by_hand"]


def unet_weights(unet) -> dict:
    return {k: v.detach().cpu().clone() for k, v in unet.state_dict().items()}


@pytest.fixture(scope="module")
def config(make_config):
    # A prior weight other than 1 and a learning rate that moves the weights: a loop that drops or
    # misplaces either term trains other weights.
    return make_config("loop", with_prior_preservation=True, num_class_images=2, prior_loss_weight=0.5,
                       max_train_steps=3, learning_rate=1e-3, random_flip=True)


@pytest.fixture(scope="module")
def kit_weights(config):
    result = train_dreambooth(config, progress=False, keep_models=True)
    return unet_weights(result.models["unet"]), result.losses["loss"]


def test_the_notebook_loop_trains_the_weights_train_dreambooth_trains(config, kit_weights, tiny_model_dir):
    from diffusers import UNet2DConditionModel

    unet, losses = notebook_loop()(config, config.max_train_steps)
    mine, (theirs, kit_losses) = unet_weights(unet), kit_weights
    assert mine.keys() == theirs.keys()
    assert all(torch.equal(mine[k], theirs[k]) for k in mine)
    assert losses == pytest.approx(kit_losses, rel=1e-5)  # the run's log keeps 6 significant digits
    start = unet_weights(UNet2DConditionModel.from_pretrained(tiny_model_dir / "unet"))
    assert sum(not torch.equal(mine[k], start[k]) for k in mine) > len(mine) // 2  # it trained


@pytest.mark.parametrize("change", [
    (PRIOR_TERM, "prior_loss"),  # the prior term at weight 1, not the config's 0.5
    ("dreambooth.step_generator(config.seed, step)", "dreambooth.step_generator(config.seed, step + 1)"),
    ("torch.randn(latents.shape, generator=g)", "torch.randn(latents.shape)"),  # noise outside the step's generator
])
def test_a_loop_that_differs_from_the_kit_trains_other_weights(config, kit_weights, change):
    unet, _ = notebook_loop(change)(config, config.max_train_steps)
    mine, (theirs, _) = unet_weights(unet), kit_weights
    assert not all(torch.equal(mine[k], theirs[k]) for k in mine)
