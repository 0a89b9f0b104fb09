"""Loading and building models: round trips, the tokenizer, and the offline error path."""

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers.base.paths import TOKENIZER_DIR
from helpers.train.models import ModelUnavailableError, load_components, load_pipeline, resolve_model

# Ids of OpenAI CLIP's tokenizer (the one Stable Diffusion 1.x uses) for a few prompts.
KNOWN_IDS = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "a photo of sks dog": [49406, 320, 1125, 539, 48136, 1929, 49407],
    "Hello world!": [49406, 3306, 1002, 256, 49407],
}


def test_shipped_tokenizer_gives_clip_ids():
    from transformers import CLIPTokenizer

    tok = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
    assert len(tok) == 49408
    for prompt, ids in KNOWN_IDS.items():
        assert tok(prompt).input_ids == ids, prompt


def test_tiny_model_is_a_standard_pipeline_folder(tiny_model_dir):
    from diffusers import StableDiffusionPipeline

    index = json.loads((tiny_model_dir / "model_index.json").read_text())
    assert index["unet"] == ["diffusers", "UNet2DConditionModel"]
    assert not list(tiny_model_dir.rglob("*.bin")), "weights must be safetensors, never pickle"
    pipe = StableDiffusionPipeline.from_pretrained(tiny_model_dir)
    assert pipe.unet.config.cross_attention_dim == pipe.text_encoder.config.hidden_size


def test_round_trip_is_bit_exact(tiny_model_dir, tmp_path):
    pipe = load_pipeline(str(tiny_model_dir))
    pipe.save_pretrained(tmp_path / "copy", safe_serialization=True)
    for part in ("unet", "vae"):
        a = load_file(tiny_model_dir / part / "diffusion_pytorch_model.safetensors")
        b = load_file(tmp_path / "copy" / part / "diffusion_pytorch_model.safetensors")
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    loaded = load_components(str(tmp_path / "copy"))
    for name, p in pipe.text_encoder.state_dict().items():
        assert torch.equal(p, loaded["text_encoder"].state_dict()[name]), name


def test_unreachable_hub_id_says_what_to_do(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match="tiny-model"):
        load_pipeline("some-user/model-that-is-not-cached")


def test_folder_without_model_index_is_explained(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(ModelUnavailableError, match="model_index.json"):
        resolve_model(str(tmp_path))


def test_kit_tiny_reference_builds_on_first_use():
    path = resolve_model("kit:tiny-sd")
    assert (json.loads((__import__("pathlib").Path(path) / "model_index.json").read_text()))["_class_name"]
    assert resolve_model("kit:tiny-sd") == path  # built once, then found


def test_a_run_warns_when_its_base_models_weights_changed(tiny_model_dir, capsys):
    from helpers.train.models import model_fingerprint, warn_if_base_changed

    base = str(tiny_model_dir)
    for trained_on in (model_fingerprint(base), ""):  # the same weights, or a note without a fingerprint
        warn_if_base_changed({"base_model": base, "base_model_fingerprint": trained_on})
        assert capsys.readouterr().out == ""
    warn_if_base_changed({"base_model": base, "base_model_fingerprint": "other weights"})
    assert capsys.readouterr().out.startswith(f"Warning: the weights of {base} changed")
