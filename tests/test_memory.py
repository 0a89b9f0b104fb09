"""helpers.measure.memory: counting the four parts of training memory, and measuring configurations on the tiny model."""

import math

import pytest
import torch

from helpers.measure import memory


def test_tensor_bytes_counts_a_shared_storage_once():
    t = torch.zeros(10, 10)
    assert memory.tensor_bytes([t, t[:5], t.view(100)]) == 400
    assert memory.tensor_bytes([t, torch.zeros(3, dtype=torch.float16)]) == 406


def test_saved_tensor_meter_counts_activations_not_weights():
    layer = torch.nn.Linear(64, 64)
    x = torch.randn(8, 64, requires_grad=True)
    with memory.SavedTensorMeter(layer.parameters()) as meter:
        torch.relu(layer(x)).sum()
    # the input (8 x 64) and the ReLU output are saved; the weight is a parameter, not an activation
    assert meter.bytes == 2 * 8 * 64 * 4


def test_adamw_state_is_eight_bytes_per_weight():
    p = torch.nn.Parameter(torch.zeros(1000))
    opt = torch.optim.AdamW([p], lr=1e-3)
    p.grad = torch.ones_like(p)
    opt.step()
    assert memory.optimizer_state_bytes(opt) == 8 * 1000 + 4  # two fp32 moments and the step counter
    assert memory.gradient_bytes([p]) == 4000


def test_static_memory_arithmetic():
    parts = memory.static_memory_bytes(100, 50, mixed_precision="no", use_8bit_adam=False)
    assert parts == {"weights": 600, "gradients": 400, "optimizer": 800}
    half = memory.static_memory_bytes(100, 50, mixed_precision="fp16", use_8bit_adam=True)
    assert half == {"weights": 500, "gradients": 400, "optimizer": 200}
    sd = memory.sd_static_memory()
    assert 13e9 < sum(sd.values()) < 15e9  # fp32 AdamW on SD v1-4: does not fit 16 GB with activations
    assert sum(memory.sd_static_memory(mixed_precision="fp16", use_8bit_adam=True).values()) < 10e9


def test_format_bytes_and_describe():
    from support import smoke_config

    assert memory.format_bytes(512) == "512 B"
    assert memory.format_bytes(1536) == "1.5 KiB"
    assert memory.format_bytes(None) == "-"
    label = memory.describe(smoke_config(use_8bit_adam=True, gradient_accumulation_steps=2, train_batch_size=1))
    assert "8-bit AdamW" in label and "x 2 accumulated" in label


@pytest.fixture(scope="module")
def measured(tiny_model_dir):
    """One measurement per memory trick on the tiny model (shared by the tests below)."""
    from support import smoke_config

    base = smoke_config(pretrained_model_name_or_path=str(tiny_model_dir), resolution=32, train_batch_size=2,
                        with_prior_preservation=False, cache_latents=False)
    variants = {
        "base": {},
        "8-bit": {"use_8bit_adam": True},
        "checkpointing": {"gradient_checkpointing": True},
        "accumulation": {"train_batch_size": 1, "gradient_accumulation_steps": 2},
        "cached": {"cache_latents": True},
        "text encoder": {"train_text_encoder": True},
        "fp16": {"mixed_precision": "fp16"},
    }
    return {c.label: c for c in memory.measure_configurations(base, variants, steps=1, progress=False)}


def test_each_trick_shrinks_its_own_part(measured):
    base = measured["base"]
    assert base.seconds_per_step > 0 and base.weights_bytes > 0 and base.activations_bytes > 0
    assert base.optimizer_bytes == pytest.approx(2 * base.gradients_bytes, rel=0.01)  # AdamW: 2 moments
    assert measured["checkpointing"].activations_bytes < base.activations_bytes / 2
    assert measured["accumulation"].activations_bytes < base.activations_bytes
    assert measured["accumulation"].gradients_bytes == base.gradients_bytes
    assert measured["cached"].weights_bytes < base.weights_bytes  # the VAE is no longer needed on the device
    assert measured["text encoder"].gradients_bytes > base.gradients_bytes


def test_eight_bit_adam_shrinks_the_optimizer_state(measured):
    row = measured["8-bit"]
    if row.optimizer_bytes == measured["base"].optimizer_bytes:
        pytest.skip("bitsandbytes' 8-bit AdamW does not run here (the kit fell back to AdamW)")
    assert row.optimizer_bytes < measured["base"].optimizer_bytes / 2


def test_unavailable_precision_is_a_skipped_row(measured):
    row = measured["fp16"]
    if torch.cuda.is_available():
        assert not row.skipped
    else:
        assert row.skipped and "CUDA" in row.note and math.isnan(row.seconds_per_step)


def test_table_and_plot(measured):
    import matplotlib

    matplotlib.use("Agg")
    rows = list(measured.values())
    table = memory.cost_table(rows)
    assert all(label in table for label in measured)
    fig = memory.plot_costs(rows, title="test", budget_bytes=1e6)
    assert len(fig.axes[0].patches) == 4 * sum(not r.skipped for r in rows)


def test_measurement_lets_go_of_its_models(tiny_model_dir, monkeypatch):
    import gc
    import weakref

    from support import smoke_config

    loaded = []
    original = memory.load_components

    def spy(name):
        parts = original(name)
        loaded.append(weakref.ref(parts["unet"]))
        return parts

    monkeypatch.setattr(memory, "load_components", spy)  # where measure_training_step looks it up
    memory.measure_training_step(smoke_config(pretrained_model_name_or_path=str(tiny_model_dir)), steps=1)
    gc.collect()
    assert loaded and loaded[0]() is None  # a GPU would otherwise fill up, one configuration after another
    with pytest.raises(ValueError):
        memory.measure_training_step(smoke_config(pretrained_model_name_or_path=str(tiny_model_dir)), steps=0)
