"""DreamBooth on the tiny model: the loss, frozen/trained parts, EMA, 8-bit AdamW, resume, outputs."""

import math

import pytest
import torch
from support import same_tensors, tensors_of

from helpers.train.dreambooth import dreambooth_loss, noise_target


def test_prior_loss_is_weighted():
    pred, target = torch.zeros(4, 4, 2, 2), torch.ones(4, 4, 2, 2)
    target[2:] = 2.0  # class half: squared error 4
    parts = dreambooth_loss(pred, target, num_instance=2, prior_loss_weight=0.5)
    assert parts.instance_loss.item() == 1.0 and parts.prior_loss.item() == 4.0
    assert parts.loss.item() == 1.0 + 0.5 * 4.0
    alone = dreambooth_loss(pred[:2], target[:2], num_instance=2)
    assert alone.prior_loss is None and alone.loss.item() == 1.0


def test_v_prediction_target():
    from diffusers import DDPMScheduler

    latents, noise, t = torch.randn(2, 4, 2, 2), torch.randn(2, 4, 2, 2), torch.tensor([10, 900])
    assert noise_target(DDPMScheduler(), latents, noise, t) is noise
    v = DDPMScheduler(prediction_type="v_prediction")
    assert torch.allclose(noise_target(v, latents, noise, t), v.get_velocity(latents, noise, t))


@pytest.fixture(scope="module")
def full_run(make_config):
    """Prior preservation, frozen text encoder, EMA, 8-bit AdamW, checkpoints and samples: 4 steps."""
    from helpers.train.dreambooth import train_dreambooth

    config = make_config(
        "full",
        with_prior_preservation=True,
        prior_loss_weight=0.5,
        use_ema=True,
        ema_decay=0.5,
        random_flip=True,
        use_8bit_adam=True,
        checkpointing_steps=2,
        validation_prompts=["a photo of sks dog"],
        validation_seeds=[0],
    )
    return train_dreambooth(config, progress=False, keep_models=True)


def test_prior_loss_is_logged_and_weighted(full_run):
    cols = full_run.losses
    assert cols["step"] == [1, 2, 3, 4] and all(math.isfinite(v) for v in cols["prior_loss"])
    for loss, inst, prior in zip(cols["loss"], cols["instance_loss"], cols["prior_loss"]):
        assert loss == pytest.approx(inst + 0.5 * prior, rel=1e-4)


def test_tensorboard_log_matches_the_csv(full_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(full_run.output_dir / "logs" / "tensorboard"))
    events.Reload()
    for key in ("loss", "instance_loss", "prior_loss", "lr"):
        scalars = events.Scalars(f"train/{key}")
        assert [s.step for s in scalars] == full_run.losses["step"], key
        assert [s.value for s in scalars] == pytest.approx(full_run.losses[key], rel=1e-4), key


def test_frozen_text_encoder_is_bit_identical(full_run, tiny_model_dir):
    from transformers import CLIPTextModel

    base = CLIPTextModel.from_pretrained(tiny_model_dir, subfolder="text_encoder")
    saved = CLIPTextModel.from_pretrained(full_run.output_dir, subfolder="text_encoder")
    assert same_tensors(tensors_of(base), tensors_of(saved))
    assert same_tensors(tensors_of(base), tensors_of(full_run.models["text_encoder"].float()))


def test_ema_and_8bit(full_run):
    from diffusers import UNet2DConditionModel

    assert full_run.record["optimizer"] == "AdamW8bit"
    raw = UNet2DConditionModel.from_pretrained(full_run.output_dir, subfolder="unet")
    ema = UNet2DConditionModel.from_pretrained(full_run.output_dir / "unet_ema")
    assert not same_tensors(tensors_of(raw), tensors_of(ema))
    assert (full_run.output_dir / "samples" / "final-ema.png").exists()


def test_outputs_and_saved_pipeline_samples(full_run):
    from helpers.train.dreambooth import load_trained_pipeline
    from helpers.train.sampling import generate

    out = full_run.output_dir
    for name in (
        "config.yaml",
        "run.json",
        "done.json",
        "logs/train_log.csv",
        "samples/final.png",
        "unet/diffusion_pytorch_model.safetensors",
        "checkpoints/checkpoint-4",
    ):
        assert (out / name).exists(), name
    assert {"versions", "device", "seed", "wall_time_s", "peak_memory_bytes"} <= set(full_run.record)
    for ema in (False, True):
        image = generate(
            load_trained_pipeline(out, ema=ema),
            "a photo of sks dog",
            0,
            num_inference_steps=2,
            progress=False,
        ).images[0]
        assert image.size == (32, 32)


def test_finished_run_is_reused_and_never_overwritten(full_run, capsys):
    from helpers.train.dreambooth import RunExistsError, train_dreambooth

    again = train_dreambooth(full_run.config, progress=False)
    assert again.reused and again.losses == full_run.losses and "Reusing" in capsys.readouterr().out
    with pytest.raises(RunExistsError, match="another run"):
        train_dreambooth(full_run.config.replace(learning_rate=3e-4), progress=False)


def test_resume_equals_uninterrupted(full_run, make_config):
    from helpers.train.dreambooth import train_dreambooth

    config = full_run.config.replace(output_dir=make_config("resumed").output_dir, validation_prompts=[])
    stopped = train_dreambooth(config, stop_after_steps=2, progress=False)
    assert stopped.losses["step"] == [1, 2] and not (stopped.output_dir / "done.json").exists()
    resumed = train_dreambooth(
        config.replace(resume_from_checkpoint="latest"), progress=False, keep_models=True
    )
    assert resumed.record["resumed_from"] == "checkpoint-2" and resumed.losses == full_run.losses
    assert same_tensors(tensors_of(resumed.models["unet"]), tensors_of(full_run.models["unet"]))
    ema = [p.detach().clone() for p in resumed.models["ema_unet"].shadow_params]
    assert all(torch.equal(a, b) for a, b in zip(ema, full_run.models["ema_unet"].shadow_params))


def test_ema_covers_a_trained_text_encoder(make_config):
    from helpers.train.dreambooth import load_trained_pipeline, train_dreambooth

    config = make_config("ema-te", use_ema=True, ema_decay=0.5, train_text_encoder=True,
                         with_prior_preservation=False, max_train_steps=3, learning_rate=1e-3)
    result = train_dreambooth(config, progress=False, keep_models=True)
    out = result.output_dir
    raw, averaged = load_trained_pipeline(out), load_trained_pipeline(out, ema=True)
    assert (out / "text_encoder_ema").is_dir()
    shadow = result.models["ema_text_encoder"].shadow_params
    assert all(torch.equal(a, b.cpu()) for a, b in zip(averaged.text_encoder.parameters(), shadow))
    assert not same_tensors(tensors_of(raw.text_encoder), tensors_of(averaged.text_encoder))
    assert same_tensors(tensors_of(raw.text_encoder), tensors_of(result.models["text_encoder"]))


def test_trained_text_encoder_changes(make_config, tiny_model_dir):
    from transformers import CLIPTextModel

    from helpers.train.dreambooth import train_dreambooth

    base = tensors_of(CLIPTextModel.from_pretrained(tiny_model_dir, subfolder="text_encoder"))
    config = make_config(
        "te",
        with_prior_preservation=False,
        train_text_encoder=True,
        max_train_steps=1,
        gradient_accumulation_steps=2,
        gradient_checkpointing=True,
        cache_latents=False,
        resolution=16,
    )
    trained = train_dreambooth(config, progress=False, keep_models=True)
    assert not same_tensors(base, tensors_of(trained.models["text_encoder"]))


def test_loss_falls_when_overfitting(make_config, tiny_model_dir):
    from helpers.train.batches import DreamBoothDataset, collate_fn
    from helpers.train.data import load_images
    from helpers.train.dreambooth import step_generator, train_dreambooth, training_step
    from helpers.train.models import load_components

    config = make_config(
        "overfit",
        with_prior_preservation=False,
        max_train_steps=10,
        learning_rate=2e-3,
        cache_text_embeddings=False,
        resolution=16,
    )
    result = train_dreambooth(config, progress=False, keep_models=True)
    parts = load_components(str(tiny_model_dir))
    data = DreamBoothDataset(
        load_images(config.instance_data_dir, 16), config.instance_prompt, parts["tokenizer"]
    )
    batch = collate_fn([data[i] for i in range(4)], False)

    def fixed_loss(unet):  # the same images, noise and timesteps before and after training
        with torch.no_grad():
            return training_step(
                unet,
                parts["text_encoder"],
                parts["vae"],
                parts["noise_scheduler"],
                batch,
                step_generator(123, 0),
            ).loss.item()

    before, after = fixed_loss(parts["unet"]), fixed_loss(result.models["unet"])
    print(f"fixed-batch loss before {before:.4f}, after {after:.4f}")
    assert after < 0.7 * before


def test_non_finite_loss_stops_with_advice(make_config, monkeypatch):
    import helpers.train.dreambooth as db
    from helpers.train.dreambooth import NonFiniteLossError, train_dreambooth

    real = db.dreambooth_loss

    def diverged(model_pred, *args, **kwargs):  # what a rate far too high does: a prediction that is not finite
        return real(model_pred * float("nan"), *args, **kwargs)

    monkeypatch.setattr(db, "dreambooth_loss", diverged)
    config = make_config("nan", with_prior_preservation=False, max_train_steps=3)
    with pytest.raises(NonFiniteLossError, match="learning rate"):
        train_dreambooth(config, progress=False)


def test_8bit_adam_falls_back_with_a_message(monkeypatch):
    import helpers.train.optim

    def unavailable():
        raise ImportError("no bitsandbytes")

    monkeypatch.setattr(helpers.train.optim, "_bnb_adamw8bit", unavailable)
    with pytest.warns(UserWarning, match="falling back to torch.optim.AdamW"):
        optimizer = helpers.train.optim.make_optimizer(
            [torch.nn.Parameter(torch.zeros(3))], 1e-4, use_8bit_adam=True
        )
    assert type(optimizer) is torch.optim.AdamW


def test_precision_that_cannot_run_is_refused(monkeypatch):
    from helpers.train.optim import PrecisionError, check_mixed_precision

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(PrecisionError, match="mixed_precision='no'"):
        check_mixed_precision("fp16")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *a: "Tesla T4")
    with pytest.raises(PrecisionError, match="Tesla T4.*fp16"):
        check_mixed_precision("bf16")
