"""LoRA DreamBooth on the tiny model: frozen base, trained adapters, resume, the run folder, loading, export."""

import json
import math

import pytest
import torch
from support import same_tensors, tensors_of

from helpers.train.config import LORA_FIELDS, ConfigError, TrainConfig, config_hash

PROMPT = "a photo of sks dog"


def draw(pipe, seed: int = 0):
    """One 32 px image from the tiny model (3 sampler steps) as an array."""
    generator = torch.Generator().manual_seed(seed)
    return pipe(PROMPT, num_inference_steps=3, generator=generator, height=32, width=32, output_type="np").images


def assembled(models: dict, tiny_model_dir):
    """A pipeline around trained models still in memory (the base model's VAE, tokenizer and scheduler)."""
    from helpers.train.models import load_pipeline

    base = load_pipeline(str(tiny_model_dir))
    return type(base)(**{**base.components, "unet": models["unet"], "text_encoder": models["text_encoder"]})


def base_weights(tiny_model_dir) -> dict:
    """The tiny model's UNet and text-encoder weights, as loaded for training."""
    from helpers.train.models import load_components

    parts = load_components(str(tiny_model_dir))
    return {"unet": tensors_of(parts["unet"]), "text_encoder": tensors_of(parts["text_encoder"])}


def split_adapter(model) -> tuple[dict, dict]:
    """A LoRA model's weights as (base weights under their original names, adapter weights)."""
    state = tensors_of(model)
    base = {k.replace("base_layer.", ""): v for k, v in state.items() if "lora_" not in k}
    return base, {k: v for k, v in state.items() if "lora_" in k}


# ------------------------------------------------------------------------------------------- the config


class WithoutLoraFields:
    """A config as it was before LoRA existed: the same values, no LoRA fields."""

    def __init__(self, config):
        self.values = {k: v for k, v in config.to_dict().items() if k not in LORA_FIELDS}
        self.with_prior_preservation = config.with_prior_preservation

    def to_dict(self) -> dict:
        return dict(self.values)


def test_full_runs_keep_their_hash(make_config):
    for prior in (False, True):
        config = make_config("hash", with_prior_preservation=prior)
        assert config_hash(config) == config_hash(WithoutLoraFields(config))
        assert config_hash(config.replace(rank=16, lora_alpha=32)) == config_hash(config)  # unused settings


def test_lora_settings_change_the_hash(make_config):
    lora = make_config("hash", use_lora=True)
    assert config_hash(lora) != config_hash(lora.replace(use_lora=False))
    assert config_hash(lora) != config_hash(lora.replace(rank=8))
    assert config_hash(lora) == config_hash(lora.replace(lora_alpha=lora.rank))  # None means alpha = rank
    assert config_hash(lora) != config_hash(lora.replace(lora_alpha=2 * lora.rank))


def test_lora_config_values():
    assert TrainConfig.from_dict({"use_lora": "true", "lora_alpha": "8"}).lora_alpha == 8
    assert TrainConfig.from_dict({"use_lora": True, "lora_alpha": "null"}).lora_alpha is None
    assert TrainConfig().rank == 4 and TrainConfig().lora_alpha is None and not TrainConfig().use_lora
    with pytest.raises(ConfigError, match="use_ema: false"):
        TrainConfig(use_lora=True, use_ema=True)
    with pytest.raises(ConfigError, match="rank=0"):
        TrainConfig(use_lora=True, rank=0)
    with pytest.raises(ConfigError, match="save_fp16: false"):
        TrainConfig(use_lora=True, save_fp16=True)


# ------------------------------------------------------------------------------------------- a LoRA run


@pytest.fixture(scope="module")
def lora_run(make_config):
    """UNet and text-encoder LoRA, alpha != rank, overfitting four photos at a high learning rate: 120 steps."""
    from helpers.train.dreambooth import train_dreambooth

    config = make_config(
        "lora",
        use_lora=True,
        rank=4,
        lora_alpha=8,
        train_text_encoder=True,
        max_train_steps=120,
        learning_rate=1e-2,
        resolution=16,
        validation_prompts=[PROMPT],
        validation_seeds=[0],
    )
    return train_dreambooth(config, progress=False, keep_models=True)


def test_base_weights_stay_bit_identical(lora_run, tiny_model_dir):
    before = base_weights(tiny_model_dir)
    for part in ("unet", "text_encoder"):
        base, adapter = split_adapter(lora_run.models[part])
        assert same_tensors(base, before[part]), f"{part}: a base weight changed"
        ups = [v for k, v in adapter.items() if ".lora_B." in k]
        assert ups and all(v.abs().max() > 0 for v in ups), f"{part}: an adapter was not trained"  # B starts at 0
        assert {v.dtype for v in adapter.values()} == {torch.float32}
    trained = lora_run.record["trained_parameters"]
    assert trained == sum(v.numel() for part in ("unet", "text_encoder")
                          for v in split_adapter(lora_run.models[part])[1].values())


def fixed_draws_loss(parts: dict, unet, text_encoder, instance_dir: str, draws: int = 16) -> float:
    """Mean DreamBooth loss on the four photos over ``draws`` fixed draws of noise and timesteps."""
    from helpers.train.batches import DreamBoothDataset, collate_fn
    from helpers.train.data import load_images
    from helpers.train.dreambooth import step_generator, training_step

    data = DreamBoothDataset(load_images(instance_dir, 16), PROMPT, parts["tokenizer"])
    batch = collate_fn([data[i] for i in range(4)], False)
    with torch.no_grad():
        return sum(
            training_step(unet, text_encoder, parts["vae"], parts["noise_scheduler"], batch,
                          step_generator(123, i)).loss.item()
            for i in range(draws)
        ) / draws


def test_loss_falls_when_overfitting(lora_run, tiny_model_dir):
    """The drop is modest on the random tiny model: adapters on attention cannot rescale its output.

    So the same 16 draws of noise and timesteps score the base model and the trained one, and the
    log's first and last 20 steps are compared too.
    """
    from helpers.train.models import load_components

    losses = lora_run.losses["loss"]
    first, last = sum(losses[:20]) / 20, sum(losses[-20:]) / 20
    parts = load_components(str(tiny_model_dir))
    before = fixed_draws_loss(parts, parts["unet"], parts["text_encoder"], lora_run.config.instance_data_dir)
    after = fixed_draws_loss(parts, lora_run.models["unet"], lora_run.models["text_encoder"],
                             lora_run.config.instance_data_dir)
    print(f"LoRA loss: mean of steps 1-20 {first:.4f}, of steps 101-120 {last:.4f} (20 steps each); "
          f"16 fixed draws x 4 photos: base {before:.4f}, trained {after:.4f}")
    assert last < 0.95 * first
    assert after < 0.95 * before


def test_run_folder_holds_the_adapter_not_the_base_model(lora_run, tiny_model_dir):
    from helpers.train.lora import BASE_FILE, LORA_FILE

    out = lora_run.output_dir
    weights = sorted(p.relative_to(out).as_posix() for p in out.rglob("*.safetensors"))
    assert weights == [LORA_FILE]
    assert not (out / "unet").exists() and not (out / "model_index.json").exists()
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    base_size = sum(p.stat().st_size for p in tiny_model_dir.rglob("*.safetensors"))
    assert size < base_size / 10
    reference = json.loads((out / BASE_FILE).read_text())
    assert reference["base_model"] == str(tiny_model_dir) and reference["lora_alpha"] == 8
    assert (out / "samples" / "final.png").exists() and (out / "README.md").exists()
    assert "LoRA" in (out / "README.md").read_text()


def test_load_lora_weights_draws_the_trained_image(lora_run, tiny_model_dir):
    from helpers.train.dreambooth import load_trained_pipeline
    from helpers.train.models import load_pipeline

    in_memory = draw(assembled(lora_run.models, tiny_model_dir))
    fresh = load_pipeline(str(tiny_model_dir))
    fresh.load_lora_weights(str(lora_run.output_dir))  # diffusers' own loader, on a fresh base pipeline
    assert (draw(fresh) == in_memory).all()
    assert (draw(load_trained_pipeline(lora_run.output_dir)) == in_memory).all()
    assert abs(draw(load_pipeline(str(tiny_model_dir))) - in_memory).max() > 0.01  # the adapter matters
    with pytest.raises(FileNotFoundError, match="LoRA run"):
        load_trained_pipeline(lora_run.output_dir, ema=True)


def test_kohya_export_of_a_trained_run(lora_run, tiny_model_dir, tmp_path):
    from safetensors.torch import load_file
    from support import load_kohya_lora

    from helpers.share.export import export_kohya_lora
    from helpers.train.models import load_pipeline

    path = export_kohya_lora(lora_run.output_dir, tmp_path / "kohya.safetensors")
    state = load_file(str(path))
    assert {k.split("_")[1] for k in state} == {"unet", "te"}
    assert all(float(v) == 8 for k, v in state.items() if k.endswith(".alpha"))
    in_memory = draw(assembled(lora_run.models, tiny_model_dir))
    assert (draw(load_kohya_lora(load_pipeline(str(tiny_model_dir)), path)) == in_memory).all()


def test_finished_lora_run_is_reused(lora_run):
    from helpers.train.dreambooth import train_dreambooth

    again = train_dreambooth(lora_run.config, progress=False)
    assert again.reused and again.losses == lora_run.losses


# ------------------------------------------------------------------------------------ resume and options


def test_text_encoder_adapter_trains_with_gradient_checkpointing(make_config):
    from helpers.train.dreambooth import train_dreambooth

    config = make_config("lora-gc", use_lora=True, train_text_encoder=True, gradient_checkpointing=True,
                         max_train_steps=2, gradient_accumulation_steps=2, cache_latents=False, resolution=16)
    result = train_dreambooth(config, progress=False, keep_models=True)
    for part in ("unet", "text_encoder"):
        ups = [v for k, v in split_adapter(result.models[part])[1].items() if ".lora_B." in k]
        assert ups and all(v.abs().max() > 0 for v in ups), part


def test_adapters_stay_float32_under_mixed_precision(make_config):
    from helpers.train.dreambooth import train_dreambooth

    config = make_config("lora-bf16", use_lora=True, train_text_encoder=True, mixed_precision="bf16",
                         max_train_steps=2, resolution=16)
    result = train_dreambooth(config, progress=False, keep_models=True)
    for part in ("unet", "text_encoder"):
        state = result.models[part].state_dict()
        assert {v.dtype for k, v in state.items() if "lora_" in k} == {torch.float32}, part
        assert {v.dtype for k, v in state.items() if "lora_" not in k} == {torch.bfloat16}, part
    assert all(math.isfinite(loss) for loss in result.losses["loss"])


@pytest.fixture(scope="module")
def checkpointed_run(make_config):
    """UNet-only LoRA with prior preservation, 8-bit AdamW and a checkpoint every 2 steps: 4 steps."""
    from helpers.train.dreambooth import train_dreambooth

    config = make_config(
        "lora-ckpt",
        use_lora=True,
        with_prior_preservation=True,
        use_8bit_adam=True,
        checkpointing_steps=2,
        learning_rate=1e-3,
    )
    return train_dreambooth(config, progress=False, keep_models=True)


def test_checkpoints_hold_only_the_adapter(checkpointed_run):
    from helpers.train.lora import LORA_FILE

    checkpoint = checkpointed_run.output_dir / "checkpoints" / "checkpoint-4"
    assert (checkpoint / LORA_FILE).is_file()
    big = [p.name for p in checkpoint.iterdir() if p.name.startswith("model")]
    assert not big, f"the checkpoint holds base weights: {big}"
    assert checkpointed_run.record["optimizer"] == "AdamW8bit"
    assert all(math.isfinite(v) for v in checkpointed_run.losses["prior_loss"])  # logged at every step


def test_resume_equals_uninterrupted(checkpointed_run, make_config):
    from helpers.train.dreambooth import train_dreambooth
    from helpers.train.lora import LORA_FILE

    config = checkpointed_run.config.replace(output_dir=make_config("lora-resumed").output_dir)
    stopped = train_dreambooth(config, stop_after_steps=3, progress=False)
    assert stopped.losses["step"] == [1, 2, 3] and not (stopped.output_dir / LORA_FILE).exists()
    resumed = train_dreambooth(config.replace(resume_from_checkpoint="latest"), progress=False, keep_models=True)
    assert resumed.record["resumed_from"] == "checkpoint-3" and resumed.losses == checkpointed_run.losses
    assert same_tensors(tensors_of(resumed.models["unet"]), tensors_of(checkpointed_run.models["unet"]))
    from safetensors.torch import load_file

    saved = [load_file(str(r.output_dir / LORA_FILE)) for r in (resumed, checkpointed_run)]
    assert same_tensors(*saved)


@pytest.mark.slow
def test_two_processes_train_one_adapter(make_config, tmp_path, free_port):
    """LoRA on two CPU processes (gloo): both ranks end with the same adapter, checkpoints included."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    from helpers.train.config import save_config
    from helpers.train.lora import LORA_FILE

    config = make_config("lora-ddp", use_lora=True, train_text_encoder=True, max_train_steps=2,
                         checkpointing_steps=1, resolution=16)
    config_path = save_config(config, tmp_path / "ddp.yaml")
    tests = Path(__file__).parent
    env = {**os.environ, "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(tests), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", free_port,
               str(tests / "test_multiprocess.py"), str(config_path), str(tmp_path)]  # its worker trains and reports
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=400, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(r["world"] == 2 for r in reports)
    assert reports[0]["unet"] == reports[1]["unet"] and reports[0]["text_encoder"] == reports[1]["text_encoder"]
    out = Path(config.output_dir)
    assert (out / LORA_FILE).is_file() and (out / "checkpoints" / "checkpoint-2" / LORA_FILE).is_file()
