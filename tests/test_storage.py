"""The Drive budget: trained parts in fp16, weights kept apart from the run folder, the budget itself."""

import json

import numpy as np
import pytest
import torch
from support import same_tensors, tensors_of


def draw(pipe, seed: int = 0) -> np.ndarray:
    """One image from a fixed seed, as an array."""
    from helpers.train.sampling import generate

    return np.asarray(generate(pipe, "a photo of sks toy", seed, num_inference_steps=2, progress=False).images[0])


@pytest.fixture()
def trained_parts_run(make_config, tiny_model_dir, tmp_path):
    """A finished run folder saved as trained parts (a UNet moved away from the base), and the config."""
    from helpers.train.dreambooth import save_trained_parts
    from helpers.train.models import load_components

    config = make_config("parts", save_trained_parts=True, save_fp16=True, train_text_encoder=True)
    unet = load_components(str(tiny_model_dir))["unet"]
    text_encoder = load_components(str(tiny_model_dir))["text_encoder"]
    with torch.no_grad():
        for p in [*unet.parameters(), *text_encoder.parameters()]:
            p.add_(0.05 * torch.randn_like(p))  # a "trained" model: different from its base
    folder = tmp_path / "parts"
    save_trained_parts(config, folder, unet, text_encoder)
    return folder, unet, text_encoder


def test_trained_parts_in_fp16_draw_what_the_whole_fp16_pipeline_draws(trained_parts_run, tiny_model_dir, tmp_path):
    from helpers.train.dreambooth import load_trained_pipeline
    from helpers.train.models import load_pipeline

    folder, unet, text_encoder = trained_parts_run
    note = json.loads((folder / "base_model.json").read_text())
    assert note["trained_parts"] == ["unet", "text_encoder"] and note["dtype"] == "float16"
    assert not (folder / "vae").exists() and not (folder / "model_index.json").exists()
    whole = load_pipeline(str(tiny_model_dir))
    whole.unet, whole.text_encoder = unet, text_encoder
    whole.to(torch.float16).save_pretrained(tmp_path / "whole", safe_serialization=True)
    a = load_trained_pipeline(folder, torch_dtype=torch.float16)
    b = load_pipeline(str(tmp_path / "whole"), torch_dtype=torch.float16)
    assert a.unet.dtype == torch.float16
    assert same_tensors(tensors_of(a.unet), tensors_of(b.unet))
    np.testing.assert_array_equal(draw(a.to(torch.float32)), draw(b.to(torch.float32)))
    parts_bytes = sum(p.stat().st_size for p in folder.rglob("*.safetensors"))
    whole_bytes = sum(p.stat().st_size for p in (tmp_path / "whole").rglob("*.safetensors"))
    assert parts_bytes < whole_bytes  # the VAE is not copied


def test_export_pipeline_round_trips_through_from_pretrained(trained_parts_run, tmp_path):
    from diffusers import StableDiffusionPipeline

    from helpers.cli import main

    folder, unet, _ = trained_parts_run
    out = tmp_path / "exported"
    assert main(["export", str(folder), "--pipeline", str(out)]) == 0
    pipe = StableDiffusionPipeline.from_pretrained(out, safety_checker=None, requires_safety_checker=False)
    expected = {k: v.half().float() for k, v in tensors_of(unet).items()}  # saved in float16
    assert same_tensors(tensors_of(pipe.unet), expected)
    assert main(["export", str(folder), "--pipeline", str(out)]) == 2  # never over a folder that is not empty


def test_a_single_file_export_of_trained_parts_says_to_write_the_pipeline_first(trained_parts_run, tmp_path, capsys):
    from helpers.cli import main

    folder, _, _ = trained_parts_run
    assert main(["export", str(folder), "--single-file", str(tmp_path / "one.safetensors")]) == 2
    assert "--pipeline OUT" in capsys.readouterr().err


@pytest.mark.slow
def test_gpu_style_run_keeps_its_weights_apart_and_a_notebook_keeps_or_frees_them(
        make_config, runs_dir, tmp_path, monkeypatch, capsys):
    from helpers.base.storage import WeightsNotHereError, release_weights, weights_dir
    from helpers.train.dreambooth import load_trained_pipeline, train_dreambooth

    monkeypatch.setenv("COURSE_LOCAL_WEIGHTS", str(tmp_path / "machine-disk"))
    configs = {name: make_config(name, save_trained_parts=True, save_fp16=True, checkpointing_steps=1,
                                 output_dir=str(runs_dir / "train" / f"apart-{name}"))
               for name in ("kept", "freed")}
    runs = {name: train_dreambooth(c, progress=False).output_dir for name, c in configs.items()}
    for run in runs.values():
        local = weights_dir(run)
        assert local.is_relative_to(tmp_path / "machine-disk")
        assert (local / "unet").is_dir() and not (run / "unet").exists()  # the run folder holds no weights
        assert not (local / "checkpoints").exists()  # a finished run's checkpoint is gone
        assert (run / "done.json").is_file()
    before = tensors_of(load_trained_pipeline(runs["freed"]).unet)
    done = release_weights(runs, keep={"kept": "a later notebook samples it"})
    assert done["kept"].startswith("kept") and done["freed"].startswith("weights freed")
    assert (runs["kept"] / "unet").is_dir() and weights_dir(runs["kept"]) == runs["kept"]
    assert not (tmp_path / "machine-disk" / "train" / "apart-kept").exists()
    load_trained_pipeline(runs["kept"])  # found in the run folder now
    with pytest.raises(WeightsNotHereError, match="retrain_missing_weights"):
        load_trained_pipeline(runs["freed"])
    assert train_dreambooth(configs["freed"], progress=False).reused  # figures redraw without weights
    again = train_dreambooth(configs["freed"], progress=False, retrain_missing_weights=True)
    assert not again.reused
    assert same_tensors(tensors_of(load_trained_pipeline(runs["freed"]).unet), before)  # same seed, same weights


def test_a_lora_run_is_left_as_saved_not_called_missing(tmp_path):
    from helpers.base.storage import LORA_FILE, has_weights, release_weights

    run = tmp_path / "lora-run"
    run.mkdir()
    (run / "base_model.json").write_text("{}")  # a LoRA run names its base model beside the adapter
    (run / LORA_FILE).write_bytes(b"adapter")
    assert release_weights({"LoRA rank 4": run}) == {}
    assert (run / LORA_FILE).is_file()
    assert has_weights(run)  # an adapter beside its base note is a loadable run (a workshop pack keeps it)


def test_sampled_comparisons_are_kept_so_a_figure_redraws_without_the_weights(make_config, monkeypatch):
    from helpers import sample as comparisons
    from helpers.train.dreambooth import train_dreambooth

    run = train_dreambooth(make_config("cache"), progress=False).output_dir
    first = comparisons.sample_runs({"run": run}, ["a photo of sks toy"], [0, 1], 2, 32)
    monkeypatch.setattr(comparisons, "load_run", lambda *a, **k: pytest.fail("sampled again"))
    again = comparisons.sample_runs({"run": run}, ["a photo of sks toy"], [0, 1], 2, 32)
    for a, b in zip(first.images("run"), again.images("run")):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    monkeypatch.undo()
    other = comparisons.sample_runs({"run": run}, ["a photo of sks toy"], [2], 2, 32)  # new seed: sampled
    assert other.seeds == [2]


def test_the_gpu_course_fits_a_third_full_free_drive_and_kaggles_output():
    from helpers.base.home import GIB, KAGGLE_OUTPUT_BYTES
    from helpers.course.budget import (
        DRIVE_GOAL_GIB,
        NOTEBOOKS,
        course_budget,
        format_budget,
    )

    colab = course_budget("gpu", "colab")
    assert [b.notebook for b in colab] == list(NOTEBOOKS)
    assert max(b.total for b in colab) <= DRIVE_GOAL_GIB * GIB
    assert colab[-1].kept_after <= DRIVE_GOAL_GIB * GIB
    assert all(b.trash == 0 for b in colab)
    assert colab[1].machine_peak > 4 * GIB  # checkpoints are real, just not on Drive
    kaggle = course_budget("gpu", "kaggle")
    assert all(b.total <= KAGGLE_OUTPUT_BYTES for b in kaggle)
    assert max(b.total for b in kaggle) > max(b.total for b in colab)  # there the checkpoints count
    text = format_budget(colab, "gpu", "colab")
    assert text.splitlines()[-1].startswith("course peak: ") and "kept: " in text.splitlines()[-1]


def test_the_smoke_budget_is_computed_for_every_notebook_from_configurations(runs_dir):
    from helpers.cli import main
    from helpers.course.budget import course_budget

    lines = course_budget("smoke", "local")
    assert len(lines) == 8 and all(b.total >= b.kept_before >= 0 for b in lines)
    assert lines[-1].kept_after > 0  # smoke keeps its (tiny) runs
    assert main(["budget", "--profile", "smoke", "--platform", "local"]) == 0


def test_gpu_profile_saves_trained_parts_in_fp16_and_cpu_keeps_whole_pipelines():
    from helpers.profiles import get_profile
    from helpers.train.config import config_for_profile, config_hash

    gpu = config_for_profile(get_profile("gpu"), 2e-6, 400, instance_prompt="a photo of sks toy")
    assert gpu.save_trained_parts and gpu.save_fp16
    lora = config_for_profile(get_profile("gpu"), 1e-4, 400, instance_prompt="a photo of sks toy", use_lora=True)
    assert not lora.save_trained_parts and not lora.save_fp16
    cpu = config_for_profile(get_profile("smoke"), 2e-6, 400, instance_prompt="a photo of sks toy")
    assert not cpu.save_trained_parts
    assert config_hash(cpu) == config_hash(cpu.replace(save_trained_parts=True))  # how it is saved is not the run


def test_sampled_comparisons_do_not_change_the_fingerprint_of_a_run_used_as_a_base_model(make_config):
    from helpers import sample as comparisons
    from helpers.train.dreambooth import train_dreambooth
    from helpers.train.models import model_fingerprint

    run = train_dreambooth(make_config("as-base"), progress=False).output_dir
    before = model_fingerprint(str(run))
    comparisons.sample_runs({"run": run}, ["a photo of sks toy"], [0], 2, 32)
    assert (run / comparisons.COMPARISONS_DIR).is_dir()
    assert model_fingerprint(str(run)) == before  # runs trained from it keep their hash


def test_a_textual_inversion_run_saved_as_its_text_encoder_loads_through_its_run_folder(tiny_model_dir, tmp_path):
    """Regression: a run folder with a text encoder but no UNet (textual inversion on gpu) is a loadable model."""
    from helpers.train.dreambooth import load_trained_pipeline
    from helpers.train.models import load_components

    parts = load_components(str(tiny_model_dir))
    with torch.no_grad():
        parts["text_encoder"].get_input_embeddings().weight[-1] += 1.0  # the learned word's row
    run = tmp_path / "textual_inversion" / "sks-0123"
    parts["text_encoder"].save_pretrained(run / "text_encoder")
    parts["tokenizer"].save_pretrained(run / "tokenizer")
    (run / "config.yaml").write_text("placeholder_token: <sks>\n")  # what makes it a run folder
    (run / "base_model.json").write_text(json.dumps({"base_model": str(tiny_model_dir)}))
    pipe = load_trained_pipeline(run)
    assert same_tensors(tensors_of(pipe.text_encoder), tensors_of(parts["text_encoder"]))
