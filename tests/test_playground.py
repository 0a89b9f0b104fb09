"""The playground: a finished run (full or LoRA) draws the same image for a seed, the LoRA scale works, files say how."""

import numpy as np
import pytest

PROMPT = "a photo of sks dog"


@pytest.fixture(scope="module")
def lora_run(make_config):
    """A short UNet + text-encoder LoRA run at a high learning rate, so its adapter moves the images."""
    from helpers.train.dreambooth import train_dreambooth

    config = make_config("playground-lora", use_lora=True, rank=4, train_text_encoder=True, max_train_steps=8,
                         learning_rate=5e-2, resolution=16)
    return train_dreambooth(config, progress=False).output_dir


@pytest.fixture(scope="module")
def lora_playground(lora_run):
    from helpers.playground import Playground

    return Playground(lora_run, num_inference_steps=3, resolution=32)


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def test_same_seed_same_image(lora_playground):
    a, b = lora_playground.draw(PROMPT, seed=3), lora_playground.draw(PROMPT, seed=3)
    assert np.array_equal(pixels(a), pixels(b))
    assert not np.array_equal(pixels(a), pixels(lora_playground.draw(PROMPT, seed=4)))


def test_scale_zero_is_the_base_model_and_one_is_not(lora_playground, tiny_model_dir):
    from helpers.sample import load_run
    from helpers.train.sampling import initial_latents

    base = load_run(tiny_model_dir)
    base.set_progress_bar_config(disable=True)
    latents = initial_latents(base, [1], 32, 32)
    expected = base(PROMPT, latents=latents, num_inference_steps=3, height=32, width=32).images[0]
    off, on = lora_playground.draw(PROMPT, seed=1, lora_scale=0.0), lora_playground.draw(PROMPT, seed=1)
    assert np.abs(pixels(off) - pixels(expected)).max() <= 1  # the adapter switched off: the base model's image
    assert np.abs(pixels(on) - pixels(expected)).mean() > 1.0  # as trained: a different image


def test_saved_file_names_its_settings(lora_playground, tmp_path):
    from PIL import Image

    path = lora_playground.save(PROMPT, seed=2, lora_scale=0.5, folder=tmp_path)
    assert path.parent == tmp_path and path.is_file()
    assert all(part in path.name for part in ("playground-lora", "sks_dog", "seed2", "scale0.5", "steps3"))
    assert np.array_equal(pixels(Image.open(path).convert("RGB")),
                          pixels(lora_playground.draw(PROMPT, seed=2, lora_scale=0.5)))


def test_full_run_loads_and_refuses_a_scale(make_config):
    from helpers.playground import Playground
    from helpers.train.dreambooth import train_dreambooth

    run = train_dreambooth(make_config("playground-full", max_train_steps=1), progress=False).output_dir
    playground = Playground(run, num_inference_steps=2, resolution=32)
    assert playground.draw(PROMPT, seed=0).size == (32, 32)
    with pytest.raises(ValueError, match="full fine-tune"):
        playground.draw(PROMPT, seed=0, lora_scale=0.5)
