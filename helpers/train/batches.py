"""Training batches: the DreamBooth dataset of instance (and class) images with their prompt ids, and its batches.

Each example pairs an instance image with the instance prompt and, when class images are
given, a class image with the class prompt. :func:`collate_fn` puts the instance half of a
batch first and the class half second, which is what the prior-preservation loss splits on.

Images are few (3-10 subject photos, up to a few hundred class images), so they are kept in
memory as uint8; :meth:`DreamBoothDataset.cache_latents` can replace them with their VAE
latent distributions so the VAE runs once per image instead of once per step.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import numpy as np
import torch
from PIL import Image


def tokenize(tokenizer, prompt: str | list[str]) -> torch.Tensor:
    """Token ids of ``prompt`` (or of each prompt), padded to the tokenizer's 77 tokens: shape (n, 77)."""
    return tokenizer(
        prompt,
        padding="max_length",
        truncation=True,
        max_length=tokenizer.model_max_length,
        return_tensors="pt",
    ).input_ids


def images_to_uint8(images: list[Image.Image]) -> torch.Tensor:
    """Equal-size RGB images -> uint8 tensor (N, 3, H, W)."""
    return torch.from_numpy(np.stack([np.asarray(img.convert("RGB")) for img in images])).permute(0, 3, 1, 2)


def uint8_to_model_range(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 (..., 3, H, W) -> float in [-1, 1], the range the VAE expects (as ``data.to_tensor``)."""
    return pixels.float() / 127.5 - 1.0


class DreamBoothDataset(torch.utils.data.Dataset):
    """Instance (and optional class) images with their prompt token ids.

    Args:
        instance_images: the subject photos, already square at the training resolution.
        instance_prompt: e.g. ``"a photo of sks dog"``.
        tokenizer: the model's CLIP tokenizer.
        class_images: images of the class (prior preservation), or None.
        class_prompt: e.g. ``"a photo of dog"`` (needed with ``class_images``).
    """

    def __init__(
        self,
        instance_images: list[Image.Image],
        instance_prompt: str,
        tokenizer,
        class_images: list[Image.Image] | None = None,
        class_prompt: str | None = None,
    ):
        if not instance_images:
            raise ValueError("No instance images: give the subject photos (3-10 work best).")
        if class_images is not None and not class_images:
            raise ValueError("Prior preservation is on but there are no class images; generate them first.")
        self.instance = images_to_uint8(instance_images)
        self.instance_prompt_ids = tokenize(tokenizer, instance_prompt)[0]
        self.classes = images_to_uint8(class_images) if class_images else None
        self.class_prompt_ids = tokenize(tokenizer, class_prompt)[0] if class_images else None
        self.latents = (
            None  # set by cache_latents: {"instance"/"class": (N, 2, 2C, h, w) distribution params}
        )

    @property
    def with_prior_preservation(self) -> bool:
        """True when the dataset holds class images."""
        return self.classes is not None

    def __len__(self) -> int:
        """As in diffusers: one pass shows every instance and every class image at least once."""
        return max(len(self.instance), len(self.classes) if self.classes is not None else 0)

    def __getitem__(self, index: int) -> dict:
        """The example at ``index`` (instance ``index % N``, class ``index % M``), unflipped."""
        return self.example(index, flip=False)

    def example(self, index: int, flip: bool = False) -> dict:
        """One example; ``flip`` mirrors its images (a random flip decided by the caller's generator)."""
        out = {
            "instance_images": self._image("instance", index % len(self.instance), flip),
            "instance_prompt_ids": self.instance_prompt_ids,
        }
        if self.classes is not None:
            out["class_images"] = self._image("class", index % len(self.classes), flip)
            out["class_prompt_ids"] = self.class_prompt_ids
        return out

    def _image(self, kind: str, i: int, flip: bool) -> torch.Tensor:
        """Pixels in [-1, 1] (3, H, W), or cached latent-distribution parameters (2C, h, w)."""
        if self.latents is not None:
            return self.latents[kind][i, int(flip)]
        pixels = uint8_to_model_range((self.instance if kind == "instance" else self.classes)[i])
        return pixels.flip(-1) if flip else pixels

    @torch.no_grad()
    def cache_latents(
        self, encode: Callable[[torch.Tensor], torch.Tensor], batch_size: int = 8, both_flips: bool = False
    ) -> None:
        """Replace the images by their VAE latent distributions, computed once.

        Args:
            encode: pixels (B, 3, H, W) in [-1, 1] -> distribution parameters (B, 2C, h, w),
                e.g. ``lambda x: vae.encode(x).latent_dist.parameters``.
            batch_size: images per VAE call.
            both_flips: also encode the mirrored images (needed with ``random_flip``).
        """
        cache = {}
        for kind, pixels in (("instance", self.instance), ("class", self.classes)):
            if pixels is None:
                continue
            views = []
            for flip in (False, True) if both_flips else (False,):
                chunks = []
                for start in range(0, len(pixels), batch_size):
                    x = uint8_to_model_range(pixels[start : start + batch_size])
                    chunks.append(encode(x.flip(-1) if flip else x).float().cpu())
                views.append(torch.cat(chunks))
            if not both_flips:  # flip index 1 is never asked for without random_flip
                views.append(views[0])
            cache[kind] = torch.stack(views, dim=1)
        self.latents = cache


def collate_fn(examples: list[dict], with_prior_preservation: bool) -> dict:
    """Stack examples into one batch: instance images first, then class images (for the prior loss).

    Returns:
        ``{"pixel_values" or "latent_params": tensor, "input_ids": (B, 77), "num_instance": int}``
        where B is twice the number of examples with prior preservation.
    """
    images = [e["instance_images"] for e in examples]
    ids = [e["instance_prompt_ids"] for e in examples]
    if with_prior_preservation:
        images += [e["class_images"] for e in examples]
        ids += [e["class_prompt_ids"] for e in examples]
    images = torch.stack(images).contiguous(memory_format=torch.contiguous_format)
    # 3 channels are pixels; 2 x latent channels are cached distribution parameters (mean, logvar)
    key = "pixel_values" if images.shape[1] == 3 else "latent_params"
    return {key: images, "input_ids": torch.stack(ids), "num_instance": len(examples)}


@lru_cache(maxsize=64)
def _epoch_order(n: int, seed: int, epoch: int) -> tuple[int, ...]:
    """A fixed shuffle of ``range(n)`` for one epoch."""
    g = torch.Generator().manual_seed(seed * 100_003 + epoch)
    return tuple(torch.randperm(n, generator=g).tolist())


def batch_indices(position: int, batch_size: int, length: int, seed: int) -> list[int]:
    """Dataset indices of the ``position``-th batch of a shuffled, endlessly repeated dataset.

    The order depends only on ``(seed, position)``, so a resumed run or another rank can
    compute any batch directly: rank ``r`` of ``W`` takes positions ``step * W + r``.
    """
    out = []
    for k in range(position * batch_size, (position + 1) * batch_size):
        epoch, i = divmod(k, length)
        out.append(_epoch_order(length, seed, epoch)[i])
    return out
