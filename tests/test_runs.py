"""A run's life cycle: every learner mistake caught before work starts, nothing lost, nothing left in the way.

Each test here is one trap a new user fell into; the test fails on the kit as it was before.
"""

import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from PIL import Image

import helpers.base.home
import helpers.cli
import helpers.train.dreambooth
import helpers.train.runs
from helpers.base.home import NotEnoughSpaceError
from helpers.cli import main
from helpers.profiles import get_profile
from helpers.train.config import TrainConfig, config_for_profile, config_hash, resolve_output_dir
from helpers.train.data import SubjectDataError
from helpers.train.dreambooth import train_dreambooth
from helpers.train.models import ModelUnavailableError
from helpers.train.runs import (
    LossLogger,
    NonFiniteLossError,
    Run,
    list_checkpoints,
    save_checkpoint,
)
from helpers.train.settings import CourseSettings, Subject, study_config


def no_class_images(*args, **kwargs):
    """Stands in for class-image generation: reaching it means a check came too late."""
    raise AssertionError("class images were generated before the inputs were checked")


def test_missing_subject_folder_stops_before_any_class_image(make_config, monkeypatch, tmp_path):
    monkeypatch.setattr(helpers.train.dreambooth, "generate_class_images", no_class_images)
    config = make_config("missing", with_prior_preservation=True, instance_data_dir=str(tmp_path / "nope"))
    with pytest.raises(SubjectDataError, match="does not exist"):
        train_dreambooth(config, progress=False)
    assert not Path(config.output_dir).exists()  # nothing written that a corrected re-run would trip on


def test_failed_start_does_not_block_the_corrected_rerun(make_config, train_subject, tmp_path):
    wrong = make_config("fixed", with_prior_preservation=False, max_train_steps=1,
                        instance_data_dir=str(tmp_path / "typo"))
    with pytest.raises(SubjectDataError):
        train_dreambooth(wrong, progress=False)
    result = train_dreambooth(wrong.replace(instance_data_dir=str(train_subject)), progress=False)
    assert result.losses["step"] == [1]


def test_what_an_old_failed_start_left_is_replaced(make_config, train_subject, tmp_path, capsys):
    config = make_config("leftover", with_prior_preservation=False, max_train_steps=1)
    out = Path(config.output_dir)
    out.mkdir(parents=True)
    (out / "config.yaml").write_text(f"instance_data_dir: {tmp_path / 'typo'}\n")  # a start that never trained
    assert train_dreambooth(config, progress=False).losses["step"] == [1]
    assert "failed start" in capsys.readouterr().out


def test_every_problem_of_a_folder_in_one_message(train_subject, tmp_path):
    from helpers.train.data import check_image_folder

    folder = tmp_path / "photos"
    shutil.copytree(train_subject, folder)
    (folder / "corrupt.jpg").write_bytes(b"not a jpeg")
    Image.new("RGB", (8, 8)).save(folder / "tiny.png")
    with pytest.raises(SubjectDataError) as err:
        check_image_folder(folder, 32)
    assert "corrupt.jpg" in str(err.value) and "tiny.png (8x8)" in str(err.value)


def test_prior_preservation_is_off_unless_asked_and_its_prompt_follows_the_subject(make_config, capsys):
    assert not TrainConfig().with_prior_preservation  # as in diffusers' training script
    from helpers.train.config import class_prompt_of
    from helpers.train.dreambooth import check_inputs

    toy = make_config("toy", instance_prompt="a photo of sks toy", with_prior_preservation=True)
    assert class_prompt_of(toy) == "a photo of toy"
    check_inputs(toy)
    assert "a photo of toy" in capsys.readouterr().out  # the learner sees which prompt was derived
    with pytest.raises(ValueError, match="class_prompt"):
        TrainConfig(instance_prompt="my toy", with_prior_preservation=True)


def test_a_class_folder_of_unknown_images_is_refused_before_anything_is_written(make_config, train_subject,
                                                                             tmp_path):
    from helpers.train.class_images import StaleClassImagesError

    mine = tmp_path / "my-class-photos"
    shutil.copytree(train_subject, mine)  # images the kit did not make: it cannot tell how they were made
    config = make_config("own-class", with_prior_preservation=True, class_data_dir=str(mine))
    with pytest.raises(StaleClassImagesError, match="no class_images.json"):
        train_dreambooth(config, progress=False)
    assert not Path(config.output_dir).exists()


def test_unreachable_model_stops_before_anything_is_written(make_config, tmp_path):
    config = make_config("offline", pretrained_model_name_or_path="nobody/no-such-model")
    with pytest.raises(ModelUnavailableError, match="no-such-model"):
        train_dreambooth(config, progress=False)
    assert not Path(config.output_dir).exists()


def test_a_full_disk_is_reported_before_class_images(make_config, monkeypatch):
    monkeypatch.setattr(helpers.base.home, "free_bytes", lambda folder=None: 1000)
    monkeypatch.setattr(helpers.train.dreambooth, "generate_class_images", no_class_images)
    config = make_config("full-disk", with_prior_preservation=True, checkpointing_steps=2)
    with pytest.raises(NotEnoughSpaceError, match="GiB"):
        train_dreambooth(config, progress=False)
    assert not Path(config.output_dir).exists()


def test_precision_this_machine_lacks_is_refused_first(make_config, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(helpers.train.dreambooth, "generate_class_images", no_class_images)
    config = make_config("fp16-cpu", mixed_precision="fp16", with_prior_preservation=True)
    with pytest.raises(Exception, match="mixed_precision='no'"):
        train_dreambooth(config, progress=False)


def test_cli_prints_a_mistake_as_one_message_with_status_2(tiny_model_dir, tmp_path, capsys):
    args = ["train", "--instance_data_dir", str(tmp_path / "nope"), "--pretrained_model_name_or_path",
            str(tiny_model_dir)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    with pytest.raises(SubjectDataError):
        main([*args, "--debug"])


def test_cli_takes_the_training_scripts_spelling(monkeypatch):
    seen = {}

    def stand_in(config, gpus=1, **kwargs):
        seen["c"] = config
        return SimpleNamespace(reused=False, output_dir="out")

    monkeypatch.setattr(helpers.cli, "train_dreambooth_on_gpus", stand_in)
    assert 0 == main(["train", "--learning_rate", "2e-6", "--set", "max_train_steps=7", "--with_prior_preservation",
              "--validation_prompts", "a photo of sks dog", "a dog"])
    config = seen["c"]
    assert (config.learning_rate, config.max_train_steps, config.with_prior_preservation) == (2e-6, 7, True)
    assert config.validation_prompts == ["a photo of sks dog", "a dog"]


def test_checkpoint_settings_keep_the_run_and_a_rerun_resumes(make_config, capsys):
    config = make_config("resume-me", with_prior_preservation=False, max_train_steps=4, checkpointing_steps=2)
    first = train_dreambooth(config, stop_after_steps=3, progress=False)
    assert first.losses["step"] == [1, 2, 3]
    assert list_checkpoints(first.output_dir)[-1].name == "checkpoint-3"  # saved at the stop
    changed = config.replace(checkpointing_steps=3, checkpoints_total_limit=1, resume_from_checkpoint="latest")
    assert config_hash(changed) == config_hash(config)
    again = train_dreambooth(changed, progress=False)
    assert again.record["resumed_from"] == "checkpoint-3" and again.losses["step"] == [1, 2, 3, 4]


def test_a_checkpoint_cut_short_is_skipped_on_resume(make_config, capsys):
    config = make_config("cut-short", with_prior_preservation=False, max_train_steps=4, checkpointing_steps=2)
    train_dreambooth(config, stop_after_steps=2, progress=False)
    folder = Path(config.output_dir) / "checkpoints"
    shutil.copytree(folder / "checkpoint-2", folder / "checkpoint-3")
    (folder / "checkpoint-3" / "checkpoint.json").unlink()  # killed before it was complete
    (folder / "checkpoint-3" / "optimizer.bin").unlink()
    result = train_dreambooth(config.replace(resume_from_checkpoint="latest"), progress=False)
    assert result.record["resumed_from"] == "checkpoint-2"
    assert "Skipping checkpoint-3: incomplete" in capsys.readouterr().out


def test_a_checkpoint_is_renamed_only_when_complete(make_config, tmp_path):
    class Dies:
        """An accelerator killed while it writes its state."""

        is_main_process = True

        def wait_for_everyone(self):
            pass

        def save_state(self, path):
            Path(path).mkdir(parents=True)
            (Path(path) / "model.safetensors").write_bytes(b"half")
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(Dies(), tmp_path, 10, 2)
    assert list_checkpoints(tmp_path, complete=False) == []  # nothing named like a real checkpoint


def test_nan_on_one_process_stops_every_process(make_config):
    class TwoProcesses:
        """Two GPUs: this one's loss is finite, the other's is NaN, so their mean is NaN."""

        num_processes, device = 2, torch.device("cpu")

        def reduce(self, values, reduction):
            return (values + torch.tensor([float("nan"), 0.0])) / 2

    run = Run(make_config("nan-two"), Path("unused"), "hash", "loss {value} at step {step}")
    run.accelerator, run.logger = TwoProcesses(), LossLogger(Path("unused"), active=False)
    with pytest.raises(NonFiniteLossError, match="nan at step 1"):
        run.end_step(0, {"loss": torch.tensor(0.5), "instance_loss": torch.tensor(0.5)}, 1e-4)


def test_one_experiment_gets_one_run_hash_on_every_profile(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    subject = Subject("dog", str(folder), "dog")
    for name in ("gpu", "cpu", "smoke"):
        profile = get_profile(name)
        settings = CourseSettings(name, profile.pretrained_model_name_or_path, subject, subject)
        ours = study_config(subject, 2e-6, 400, with_prior_preservation=True, settings=settings)
        direct = config_for_profile(profile, 2e-6, 400, instance_data_dir=str(folder),
                                    instance_prompt=subject.instance_prompt, class_prompt=subject.class_prompt,
                                    with_prior_preservation=True, seed=0)
        assert ours == direct and resolve_output_dir(ours) == resolve_output_dir(direct), name
        assert ours.resume_from_checkpoint == "latest"  # a notebook re-run continues an interrupted run


def test_early_stop_leaves_a_checkpoint_in_both_trainers(tiny_model_dir, train_subject, tmp_path):
    from helpers.train.textual_inversion import TextualInversionConfig, train_textual_inversion

    ti = TextualInversionConfig(pretrained_model_name_or_path=str(tiny_model_dir), train_data_dir=str(train_subject),
                                resolution=32, train_batch_size=2, max_train_steps=4, checkpointing_steps=0,
                                output_dir=str(tmp_path / "ti"))
    train_textual_inversion(ti, progress=False, stop_after_steps=1)
    assert [p.name for p in list_checkpoints(tmp_path / "ti")] == ["checkpoint-1"]
