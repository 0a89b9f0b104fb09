"""The training configuration: YAML round-trip, overrides, errors that name the key, run hashes."""

import pytest

from helpers.train.config import (
    ConfigError,
    TrainConfig,
    config_hash,
    load_config,
    parse_overrides,
    resolve_output_dir,
    save_config,
)


def test_yaml_round_trip(tmp_path):
    config = TrainConfig(
        instance_prompt="a photo of zwx toy",
        validation_prompts=["a zwx toy on a beach"],
        learning_rate=5e-6,
        train_text_encoder=True,
    )
    path = save_config(config, tmp_path / "c.yaml")
    assert load_config(path) == config


def test_defaults_follow_the_study():
    config = TrainConfig()
    assert (config.resolution, config.lr_scheduler, config.prior_loss_weight) == (512, "constant", 1.0)
    assert not config.with_prior_preservation and not config.scale_lr  # as in the training script


def test_unknown_key_is_an_error_that_names_it(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 1e-6\nlearnig_rate: 2e-6\n")
    with pytest.raises(ConfigError, match="learnig_rate.*learning_rate"):
        load_config(tmp_path / "c.yaml")


def test_overrides_are_typed(tmp_path):
    path = save_config(TrainConfig(), tmp_path / "c.yaml")
    config = load_config(
        path,
        overrides=[
            "max_train_steps=800",
            "train_text_encoder=true",
            "learning_rate=1e-6",
            "validation_prompts=[a, b]",
        ],
    )
    assert config.max_train_steps == 800 and config.train_text_encoder is True
    assert config.learning_rate == 1e-6 and config.validation_prompts == ["a", "b"]
    with pytest.raises(ConfigError, match="max_train_steps"):
        load_config(path, overrides=["max_train_steps=many"])
    with pytest.raises(ConfigError, match="key=value"):
        parse_overrides(["max_train_steps"])


def test_bad_values_say_what_to_use():
    with pytest.raises(ConfigError, match="bf16"):
        TrainConfig(mixed_precision="fp8")
    with pytest.raises(ConfigError, match="latest"):
        TrainConfig(resume_from_checkpoint="last")


def test_hash_covers_the_result_not_the_paths(tmp_path):
    from helpers.train.data import make_synthetic_subject

    subject = make_synthetic_subject(tmp_path / "s", n=2, size=16)
    base = TrainConfig(instance_data_dir=str(subject))
    assert config_hash(base) == config_hash(base.replace(output_dir="elsewhere", checkpointing_steps=50))
    assert config_hash(base) != config_hash(base.replace(learning_rate=5e-6))
    before = config_hash(base)
    make_synthetic_subject(subject, n=2, size=16, seed=1)  # same file names, other photos
    assert config_hash(base) != before


def test_default_output_dir_is_named_after_prompt_and_hash(runs_dir):
    config = TrainConfig(instance_prompt="a photo of sks dog")
    out = resolve_output_dir(config)
    assert out.parent == runs_dir / "train" and out.name == f"a-photo-of-sks-dog-{config_hash(config)}"


def test_cli_reports_config_errors(tmp_path, capsys):
    from helpers.cli import main

    assert main(["train", "--set", "no_such_key=1"]) == 2
    err = capsys.readouterr().err
    assert "no_such_key" in err and "Traceback" not in err


def test_config_for_profile_scales_the_study():
    from helpers.profiles import get_profile
    from helpers.train.config import config_for_profile

    gpu = config_for_profile(
        get_profile("gpu"), learning_rate=2e-6, max_train_steps=400, instance_data_dir="d"
    )
    assert (gpu.learning_rate, gpu.max_train_steps, gpu.train_batch_size, gpu.resolution) == (
        2e-6,
        400,
        4,
        512,
    )
    assert gpu.use_8bit_adam and gpu.mixed_precision == "fp16" and gpu.class_inference_steps == 25
    smoke = config_for_profile(get_profile("smoke"), learning_rate=2e-6, max_train_steps=400, faces=True)
    assert smoke.learning_rate == pytest.approx(2e-4) and smoke.max_train_steps == 2
    assert smoke.train_batch_size == 1 and smoke.resolution == 32


def test_hash_follows_the_model_weights_not_only_its_name(tiny_model_dir, tmp_path):
    import shutil

    from helpers.train.config import TrainConfig, config_hash
    from helpers.train.models import build_tiny_model, model_fingerprint

    copy = shutil.copytree(tiny_model_dir, tmp_path / "model")
    moved = shutil.copytree(tiny_model_dir, tmp_path / "elsewhere")
    assert model_fingerprint(str(copy)) == model_fingerprint(str(moved)) != ""
    (copy / "kit_model.json").write_text("{}")  # notes beside the weights do not count
    assert model_fingerprint(str(copy)) == model_fingerprint(str(moved))
    before = config_hash(TrainConfig(pretrained_model_name_or_path=str(copy)))
    shutil.rmtree(copy)
    build_tiny_model(copy, seed=1)  # same folder, other weights: a run made before must not be reused
    assert config_hash(TrainConfig(pretrained_model_name_or_path=str(copy))) != before
    assert model_fingerprint("some-org/some-model") == ""  # a Hub id is named by its id


def test_a_run_from_a_local_model_folder_keeps_its_hash_when_the_folder_moves(tiny_model_dir, tmp_path):
    """A workshop pack unpacked elsewhere finds its DreamBooth-after-textual-inversion run: its base is a folder."""
    import shutil

    from support import smoke_config

    from helpers.train.config import config_hash

    moved = shutil.copytree(tiny_model_dir, tmp_path / "elsewhere" / "tiny-sd")
    here, there = (smoke_config(pretrained_model_name_or_path=str(p)) for p in (tiny_model_dir, moved))
    assert config_hash(here) == config_hash(there)
    (moved / "unet" / "config.json").write_text((moved / "unet" / "config.json").read_text() + " ")
    assert config_hash(smoke_config(pretrained_model_name_or_path=str(moved))) != config_hash(here)  # other weights
