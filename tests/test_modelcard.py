"""Model cards: a finished run's README.md names its base model, prompts, settings, samples and terms."""

import shutil

import pytest
import yaml
from support import smoke_config

from helpers.train.config import save_config
from helpers.train.modelcard import LICENSE_URL, render_model_card, write_model_card


def front_matter(card: str) -> dict:
    """The card's YAML header as a dict."""
    assert card.startswith("---\n")
    header, _, _ = card[4:].partition("\n---\n")
    return yaml.safe_load(header)


@pytest.fixture(scope="module")
def finished_run(make_config):
    """A real DreamBooth run on the tiny model, with validation samples."""
    from helpers.train.dreambooth import train_dreambooth

    config = make_config(
        "card", validation_prompts=["a photo of sks dog", "a sks dog on a beach"], validation_seeds=[0, 1],
        with_prior_preservation=True,  # so the card has class settings to name
    )
    return train_dreambooth(config, progress=False).output_dir


def test_card_of_a_finished_run_names_its_settings(finished_run, train_subject):
    path = write_model_card(finished_run)
    card = path.read_text()
    assert path == finished_run / "README.md"
    config = yaml.safe_load((finished_run / "config.yaml").read_text())
    assert f"`{config['instance_prompt']}`" in card and f"`{config['class_prompt']}`" in card
    assert f"| Training steps | `{config['max_train_steps']}` |" in card
    assert f"| Learning rate | `{config['learning_rate']}` |" in card
    assert f"| Prior loss weight | `{config['prior_loss_weight']}` |" in card
    assert "LoRA" not in card.split("## Training settings")[1].split("##")[0]  # a full run
    assert f"**Subject photos:** {len(list(train_subject.iterdir()))}" in card
    assert "![Validation samples](samples/final.png)" in card
    assert "2 prompts x 2 seeds = 4 images" in card and "`a sks dog on a beach`" in card
    assert "consent" in card
    meta = front_matter(card)
    assert meta["license"] == "apache-2.0"  # the tiny model is the kit's own, not Stable Diffusion
    assert "base_model" not in meta and meta["instance_prompt"] == config["instance_prompt"]


def fake_run(folder, **changes):
    """A run folder with only a config (cards read nothing else when nothing else is there)."""
    folder.mkdir(parents=True, exist_ok=True)
    save_config(smoke_config(**changes), folder / "config.yaml")
    return folder


def test_stable_diffusion_base_carries_openrail_terms(tmp_path):
    run = fake_run(
        tmp_path / "run",
        pretrained_model_name_or_path="CompVis/stable-diffusion-v1-4",
        instance_prompt="a photo of sks person",
        class_prompt="a photo of person",
    )
    card = render_model_card(run)
    meta = front_matter(card)
    assert meta["license"] == "creativeml-openrail-m"
    assert meta["base_model"] == "CompVis/stable-diffusion-v1-4"
    assert "CreativeML OpenRAIL-M" in card and LICENSE_URL in card
    assert "no validation samples" in card
    assert "Photos of people" in card


def test_card_without_prior_preservation_leaves_class_settings_out(tmp_path):
    card = render_model_card(fake_run(tmp_path / "run", with_prior_preservation=False))
    assert "Class prompt" not in card and "Prior loss weight" not in card
    assert "| Prior preservation | `False` |" in card


def test_lora_run_card_says_how_to_load_the_adapter(tmp_path, tiny_model_dir):
    run = fake_run(tmp_path / "run", pretrained_model_name_or_path=str(tiny_model_dir))
    (run / "pytorch_lora_weights.safetensors").write_bytes(b"")
    card = render_model_card(run)
    assert "DreamBooth LoRA adapter" in card and "load_lora_weights" in card and "--kohya" in card
    assert "lora" in front_matter(card)["tags"]


def test_card_uses_the_latest_grid_when_there_is_no_final_one(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run, ignore=shutil.ignore_patterns("unet", "vae", "text_encoder"))
    (run / "samples" / "final.png").rename(run / "samples" / "step-000002.png")
    assert "(samples/step-000002.png)" in render_model_card(run)


def test_card_needs_a_run_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="config.yaml"):
        write_model_card(tmp_path)


def test_every_finished_run_has_its_card(make_config):
    from helpers.train.dreambooth import train_dreambooth

    run = train_dreambooth(make_config("own-card", max_train_steps=1), progress=False).output_dir
    card = (run / "README.md").read_text()  # written by training itself, before anyone asks
    assert "consent" in card and "Training settings" in card


def test_the_usage_snippet_loads_the_base_model_the_way_it_can_be_loaded():
    from helpers.train.modelcard import usage_section

    kit = usage_section({"pretrained_model_name_or_path": "kit:toyworld", "instance_prompt": "a photo of sks star"}, True)
    assert 'from_pretrained(resolve_model("kit:toyworld"))' in kit and "from helpers.train.models import resolve_model" in kit
    hub = usage_section({"pretrained_model_name_or_path": "CompVis/stable-diffusion-v1-4"}, True)
    assert 'from_pretrained("CompVis/stable-diffusion-v1-4")' in hub and "resolve_model" not in hub
    local = usage_section({"pretrained_model_name_or_path": "/content/drive/MyDrive/models/sd15"}, True)
    assert "/content/drive" not in local and "'sd15'" in local  # no path of the trainer's machine
