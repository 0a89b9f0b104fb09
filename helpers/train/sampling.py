"""Sampling: a registry of schedulers and seeded generation that makes comparisons fair.

To compare schedulers (or checkpoints) the only thing that may differ is the thing being
compared. So every image here starts from latents drawn from a seeded generator on the
CPU, one generator per image, and the same seeds give the same starting noise whatever
the scheduler, batch size or device.
"""

from __future__ import annotations

import inspect
import time
from dataclasses import dataclass

import torch
from PIL import Image
from tqdm.auto import tqdm

# The study compared the first three; the others are the faster samplers used since.
SCHEDULERS = {
    "pndm": "PNDMScheduler",
    "lms": "LMSDiscreteScheduler",
    "ddim": "DDIMScheduler",
    "dpm++": "DPMSolverMultistepScheduler",
    "euler": "EulerDiscreteScheduler",
    "unipc": "UniPCMultistepScheduler",
}
STUDY_SCHEDULERS = ("pndm", "lms", "ddim")


def make_scheduler(name: str, config):
    """A scheduler of kind ``name`` (a key of ``SCHEDULERS``) built from a model's scheduler config."""
    import diffusers

    if name not in SCHEDULERS:
        raise ValueError(f"Unknown scheduler {name!r}; choose one of: {', '.join(SCHEDULERS)}.")
    cls = getattr(diffusers, SCHEDULERS[name])
    extra = {"algorithm_type": "dpmsolver++"} if name == "dpm++" else {}
    if "clip_sample" not in config and "clip_sample" in inspect.signature(cls.__init__).parameters:
        # Stable Diffusion never clips: its latents are not confined to [-1, 1]. A PNDM config has no
        # such key, and DDIM's default (clip to [-1, 1]) would wash every image out.
        extra["clip_sample"] = False
    return cls.from_config(config, **extra)


def use_scheduler(pipe, name: str):
    """Swap the pipeline's scheduler in place (the model weights are shared, nothing is reloaded)."""
    pipe.scheduler = make_scheduler(name, pipe.scheduler.config)
    return pipe


def initial_latents(pipe, seeds: list[int], height: int, width: int, data_mean: bool = True) -> torch.Tensor:
    """Starting noise for each seed, drawn on the CPU so it is the same on every device.

    Stable Diffusion's noise schedule never reaches pure noise: at its last timestep an image
    still shows through with weight ``sqrt(alphas_cumprod[-1])`` (0.068). A model learns to read
    an image's mean colour there, and at sampling time it reads it from the noise instead. At
    SD's 64x64 latents the noise's mean is too small to matter; on a 16x16 grid it is about as
    large as the image's own share. So where the VAE records the mean of its training latents
    (``vae.config.latents_mean``, as the ToyWorld model's does) and ``data_mean`` is True, each
    starting noise gets its per-channel mean replaced by what the model saw at that timestep:
    the data's mean times that weight. Other models get plain Gaussian noise.
    """
    shape = (pipe.unet.config.in_channels, height // pipe.vae_scale_factor, width // pipe.vae_scale_factor)
    noise = torch.stack([torch.randn(shape, generator=torch.Generator("cpu").manual_seed(s)) for s in seeds])
    target = start_mean(pipe) if data_mean else None
    if target is not None:
        noise = noise - noise.mean(dim=(2, 3), keepdim=True) + target.view(1, -1, 1, 1)
    return noise.to(pipe.device, pipe.unet.dtype)


def start_mean(pipe) -> torch.Tensor | None:
    """The per-channel mean a start takes from the data (see :func:`initial_latents`); None if the VAE records none."""
    mean = getattr(pipe.vae.config, "latents_mean", None)
    if mean is None:
        return None
    weight = float(pipe.scheduler.alphas_cumprod[-1]) ** 0.5
    return weight * pipe.vae.config.scaling_factor * torch.tensor(mean, dtype=torch.float32)


@dataclass
class Generation:
    """Images with what made them, and how long it took."""

    images: list[Image.Image]
    prompts: list[str]
    seeds: list[int]
    seconds: float

    @property
    def images_per_second(self) -> float:
        return len(self.images) / self.seconds if self.seconds else float("nan")


def generate(
    pipe,
    prompts: str | list[str],
    seeds: int | list[int] = 0,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    scheduler: str | None = None,
    resolution: int | None = None,
    batch_size: int = 4,
    negative_prompt: str | None = None,
    progress: bool = True,
    data_mean: bool = True,
) -> Generation:
    """Generate one image per (prompt, seed) pair, in batches, from seeded latents.

    Args:
        pipe: a ``StableDiffusionPipeline``.
        prompts: one prompt, or one per image.
        seeds: one seed per image; an int ``s`` with several prompts means seeds s, s+1, ...
        scheduler: a key of ``SCHEDULERS`` to switch to first; None keeps the pipeline's.
        resolution: image size; None uses the model's native size.
        data_mean: start from noise with the training data's mean where the VAE records it
            (see :func:`initial_latents`); False gives plain Gaussian noise.
    Returns:
        a :class:`Generation` with the images in the order of the prompts.
    """
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if isinstance(seeds, int):
        seeds = [seeds + i for i in range(len(prompts))]
    if len(prompts) == 1 and len(seeds) > 1:
        prompts = prompts * len(seeds)
    if len(seeds) != len(prompts):
        raise ValueError(f"Got {len(prompts)} prompts but {len(seeds)} seeds; give one seed per prompt.")
    if scheduler is not None:
        use_scheduler(pipe, scheduler)
    size = resolution or pipe.unet.config.sample_size * pipe.vae_scale_factor
    images, start = [], time.perf_counter()
    batches = range(0, len(prompts), batch_size)
    for i in tqdm(batches, desc="generating", disable=not progress or len(batches) < 2):
        chunk = slice(i, i + batch_size)
        out = pipe(
            prompts[chunk],
            latents=initial_latents(pipe, seeds[chunk], size, size, data_mean),
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            negative_prompt=[negative_prompt] * len(prompts[chunk]) if negative_prompt else None,
            height=size,
            width=size,
        )
        images.extend(out.images)
    return Generation(images, prompts, list(seeds), time.perf_counter() - start)


def compare_schedulers(
    pipe, prompt: str, names=STUDY_SCHEDULERS, steps=(50, 100), seeds=(0, 1), **kwargs
) -> dict[tuple[str, int], Generation]:
    """Generate the same prompt and seeds with every scheduler and step count.

    Returns:
        ``{(scheduler, steps): Generation}``; the original scheduler is put back afterwards.
    """
    original = pipe.scheduler
    results = {}
    try:
        for name in names:
            for n in steps:
                results[(name, n)] = generate(
                    pipe, prompt, list(seeds), num_inference_steps=n, scheduler=name, progress=False, **kwargs
                )
    finally:
        pipe.scheduler = original
    return results
