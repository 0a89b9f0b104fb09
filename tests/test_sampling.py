"""Seeded generation and the scheduler registry."""

import numpy as np
import pytest

from helpers.train.sampling import SCHEDULERS, compare_schedulers, generate, make_scheduler


def pixels(img):
    return np.asarray(img, dtype=np.int16)


def test_same_seed_gives_identical_images(tiny_pipe):
    a = generate(tiny_pipe, "a photo of sks dog", seeds=[3, 4], num_inference_steps=3, progress=False)
    b = generate(tiny_pipe, "a photo of sks dog", seeds=[3, 4], num_inference_steps=3, progress=False)
    assert all(np.array_equal(pixels(x), pixels(y)) for x, y in zip(a.images, b.images))
    assert not np.array_equal(pixels(a.images[0]), pixels(a.images[1])), "different seeds must differ"


def test_batching_does_not_change_images(tiny_pipe):
    one = generate(tiny_pipe, "a dog", seeds=[1, 2, 3], num_inference_steps=2, batch_size=1, progress=False)
    all3 = generate(tiny_pipe, "a dog", seeds=[1, 2, 3], num_inference_steps=2, batch_size=3, progress=False)
    for x, y in zip(one.images, all3.images):
        assert np.abs(pixels(x) - pixels(y)).max() <= 2  # float noise of batched matmuls only


@pytest.mark.parametrize("name", list(SCHEDULERS))
def test_every_scheduler_makes_an_image_of_the_right_size(own_pipe, tiny_pipe, name):
    shared = tiny_pipe.scheduler
    out = generate(own_pipe, "a photo of a cat", seeds=0, num_inference_steps=4, scheduler=name, progress=False)
    assert out.images[0].size == (32, 32)
    assert type(own_pipe.scheduler).__name__ == SCHEDULERS[name]
    assert tiny_pipe.scheduler is shared  # the session's pipeline is left as every other test expects it


def test_comparison_differs_only_by_scheduler_and_restores_it(tiny_pipe):
    before = tiny_pipe.scheduler
    results = compare_schedulers(tiny_pipe, "a cat", names=("pndm", "ddim"), steps=(3,), seeds=(0,))
    a, b = (results[k].images[0] for k in (("pndm", 3), ("ddim", 3)))
    assert a.size == b.size and not np.array_equal(pixels(a), pixels(b))
    assert tiny_pipe.scheduler is before


def test_unknown_scheduler_lists_the_choices(tiny_pipe):
    with pytest.raises(ValueError, match="ddim"):
        make_scheduler("fast", tiny_pipe.scheduler.config)


def test_seed_count_must_match_prompts(tiny_pipe):
    with pytest.raises(ValueError, match="one seed per prompt"):
        generate(tiny_pipe, ["a", "b"], seeds=[1, 2, 3], progress=False)


def test_schedulers_never_clip_latents(tiny_pipe):
    # A PNDM config has no clip_sample; DDIM's default would clip the latents to [-1, 1].
    from helpers.train.sampling import make_scheduler

    assert make_scheduler("ddim", tiny_pipe.scheduler.config).config.clip_sample is False
    explicit = make_scheduler("ddim", {**tiny_pipe.scheduler.config, "clip_sample": True})
    assert explicit.config.clip_sample is True  # a model that asks for clipping keeps it


def test_start_noise_takes_the_data_mean_only_where_the_vae_records_one(tiny_pipe):
    import torch

    from helpers.train.sampling import initial_latents

    plain = initial_latents(tiny_pipe, [5, 6], 32, 32)
    assert torch.equal(plain[0], torch.randn(plain.shape[1:], generator=torch.Generator().manual_seed(5)))
    mean = [0.5, -1.0, 0.0, 2.0]
    tiny_pipe.vae.register_to_config(latents_mean=mean)
    try:
        start = initial_latents(tiny_pipe, [5, 6], 32, 32)
        ignored = initial_latents(tiny_pipe, [5, 6], 32, 32, data_mean=False)
    finally:
        tiny_pipe.vae.register_to_config(latents_mean=None)
    weight = float(tiny_pipe.scheduler.alphas_cumprod[-1]) ** 0.5 * tiny_pipe.vae.config.scaling_factor
    expected = weight * torch.tensor(mean)
    assert torch.allclose(start.mean(dim=(2, 3)), expected.expand(2, 4), atol=1e-6)  # every image, every channel
    assert torch.allclose(start - start.mean(dim=(2, 3), keepdim=True), plain - plain.mean(dim=(2, 3), keepdim=True))
    assert torch.equal(ignored, plain)
