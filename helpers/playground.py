"""Use a finished run: load it once, draw an image for any prompt and seed, save it with its settings (notebook 07)."""

from pathlib import Path

from PIL import Image

from helpers.figures import figures_dir, save_image
from helpers.sample import load_run
from helpers.train.lora import is_lora_run
from helpers.train.sampling import initial_latents


class Playground:
    """A finished run (full or LoRA) loaded once, ready to draw one image at a time.

    Args:
        run: a run folder, full or LoRA (anything :func:`helpers.train.dreambooth.load_trained_pipeline` loads).
        num_inference_steps: sampler steps per image.
        resolution: image size in pixels; None uses the model's native size.
    """

    def __init__(self, run: str | Path, num_inference_steps: int = 50, resolution: int | None = None):
        self.run = Path(run)
        self.lora = is_lora_run(self.run)
        self.pipe = load_run(self.run)
        self.pipe.set_progress_bar_config(disable=True)
        self.steps = num_inference_steps
        self.resolution = resolution or self.pipe.unet.config.sample_size * self.pipe.vae_scale_factor

    def draw(self, prompt: str, seed: int = 0, lora_scale: float = 1.0, guidance_scale: float = 7.5) -> Image.Image:
        """One image for ``prompt`` from ``seed``; ``lora_scale`` weighs the adapter (0: the base model, 1: as trained)."""
        if not self.lora and lora_scale != 1.0:
            raise ValueError(f"{self.run.name} is a full fine-tune: it has no adapter to scale. Use lora_scale=1.0.")
        latents = initial_latents(self.pipe, [seed], self.resolution, self.resolution)
        extra = {"cross_attention_kwargs": {"scale": float(lora_scale)}} if self.lora else {}
        out = self.pipe(prompt, latents=latents, num_inference_steps=self.steps, guidance_scale=guidance_scale,
                        height=self.resolution, width=self.resolution, **extra)
        return out.images[0]

    def save(self, prompt: str, seed: int = 0, lora_scale: float = 1.0, folder: str | Path | None = None) -> Path:
        """Draw and save ``<run>_<prompt>_seed<seed>_scale<scale>.png`` in the course home's figures folder.

        Returns:
            the saved image's path.
        """
        image = self.draw(prompt, seed, lora_scale)
        return save_image(image, folder or figures_dir(), self.run.name, prompt=prompt[:60], seed=seed,
                          scale=lora_scale, steps=self.steps)
