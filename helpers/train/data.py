"""Image folders on disk: find the subject and class images, check them, load them (training batches: ``batches``).

A DreamBooth subject is a handful of photos in one folder. Most problems a learner
hits are here (a wrong folder, a HEIC file, a tiny thumbnail, a photo shown sideways),
so every check names the files and says what to do.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from helpers.base.paths import DATA_DIR
from helpers.errors import LearnerError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
MANIFEST = DATA_DIR / "subjects.json"


class SubjectDataError(LearnerError, ValueError):
    """The subject or class images cannot be used as they are."""


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted; errors say what is wrong with the folder."""
    folder = Path(folder).expanduser()
    if not folder.exists():
        raise SubjectDataError(f"Image folder {folder} does not exist. Check the path, or upload photos first.")
    if not folder.is_dir():
        raise SubjectDataError(f"{folder} is a file; give the folder that holds the images.")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."))
    if not files:
        others = sorted(p.name for p in folder.iterdir())[:5]
        hint = f" It holds {others} ..." if others else " It is empty."
        raise SubjectDataError(
            f"No images ({', '.join(sorted(IMAGE_SUFFIXES))}) in {folder}.{hint} "
            "Put 3-10 photos of the subject there (convert HEIC photos to JPEG first)."
        )
    return files


def open_rgb(path: str | Path) -> Image.Image:
    """Open an image upright (EXIF orientation applied) and in RGB (from RGBA, CMYK, greyscale, palette)."""
    try:
        with Image.open(path) as img:
            img = ImageOps.exif_transpose(img)
            if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
                img = img.convert("RGBA")
                background = Image.new("RGBA", img.size, (255, 255, 255, 255))
                img = Image.alpha_composite(background, img)  # transparent areas become white
            return img.convert("RGB")
    except (UnidentifiedImageError, OSError) as err:
        raise SubjectDataError(f"Cannot read {path} as an image ({err}). Re-save it as JPEG or PNG, or remove it.") from err


def resize_and_crop(img: Image.Image, resolution: int, center_crop: bool = True) -> Image.Image:
    """Scale the short side to ``resolution``, then crop a square (centre, or top-left if not ``center_crop``)."""
    w, h = img.size
    scale = resolution / min(w, h)
    img = img.resize((max(resolution, round(w * scale)), max(resolution, round(h * scale))), Image.BICUBIC)
    w, h = img.size
    left, top = ((w - resolution) // 2, (h - resolution) // 2) if center_crop else (0, 0)
    return img.crop((left, top, left + resolution, top + resolution))


def image_problems(folder: str | Path, resolution: int) -> tuple[list[str], list[str]]:
    """Every problem of an image folder: (unreadable files, images smaller than ``resolution``)."""
    unreadable, small = [], []
    for path in list_images(folder):
        try:
            with Image.open(path) as img:
                img.verify()  # reads the whole file: a truncated or corrupt one fails here
            with Image.open(path) as img:
                size = ImageOps.exif_transpose(img).size
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
            unreadable.append(path.name)
            continue
        if min(size) < resolution:
            small.append(f"{path.name} ({size[0]}x{size[1]})")
    return unreadable, small


def check_image_folder(folder: str | Path, resolution: int) -> None:
    """Check a subject folder before training; all of its problems are reported in one message.

    Unreadable files are an error; images smaller than ``resolution`` are named in the error (or
    in a warning when nothing else is wrong: they are upscaled and look soft).
    """
    unreadable, small = image_problems(folder, resolution)
    small_text = (f"{len(small)} image(s) are smaller than {resolution} px and would be upscaled: "
                  f"{', '.join(small)}; use larger photos for sharper results.") if small else ""
    if unreadable:
        raise SubjectDataError(
            f"Cannot read {len(unreadable)} file(s) in {folder}: {', '.join(unreadable)}. "
            "Re-save them as JPEG or PNG, or move them out of the folder." + (f" Also: {small_text}" if small else "")
        )
    if small:
        warnings.warn(f"In {folder}: {small_text}", stacklevel=2)


def load_images(folder: str | Path, resolution: int, center_crop: bool = True) -> list[Image.Image]:
    """All images of a folder, upright, RGB and ``resolution`` px square.

    The folder is checked first (:func:`check_image_folder`): unreadable files are an error
    that lists them, small images a warning that lists them.
    """
    check_image_folder(folder, resolution)
    return [resize_and_crop(open_rgb(path), resolution, center_crop) for path in list_images(folder)]


def to_tensor(images: Image.Image | np.ndarray) -> torch.Tensor:
    """A PIL RGB image, or uint8 images ``(H, W, 3)`` / ``(N, H, W, 3)``, as floats in [-1, 1], the range the VAE expects.

    Returns:
        ``(3, H, W)``, or ``(N, 3, H, W)`` for a batch.
    """
    pixels = torch.from_numpy(np.asarray(images, dtype=np.float32)) / 127.5 - 1.0
    return pixels.movedim(-1, -3).contiguous()




def make_synthetic_subject(folder: str | Path, n: int = 5, size: int = 64, seed: int = 0) -> Path:
    """Write ``n`` photos of a made-up subject (a striped ball in varying poses; the "synthetic_ball" subject) for tests.

    The same seed writes the same images; the subject stays the same across images while
    its position, size, background and lighting vary, as in a real subject folder.
    """
    from PIL import ImageDraw

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(n):
        bg = tuple(int(c) for c in rng.integers(40, 220, 3))
        img = Image.new("RGB", (size, size), bg)
        draw = ImageDraw.Draw(img)
        r = int(size * rng.uniform(0.22, 0.34))
        cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
        for k, y in enumerate(range(cy - r, cy + r, max(2, r // 3))):
            colour = (230, 60, 40) if k % 2 == 0 else (250, 220, 60)
            draw.rectangle([cx - r, y, cx + r, y + max(2, r // 3)], fill=colour)
        mask = Image.new("L", (size, size), 0)
        ImageDraw.Draw(mask).ellipse([cx - r, cy - r, cx + r, cy + r], fill=255)
        img = Image.composite(img, Image.new("RGB", (size, size), bg), mask)
        img.save(folder / f"{i:02d}.png")
    return folder


def read_manifest() -> dict:
    """The subject sources the kit knows about (``data/subjects.json``): class noun, prompts, licence."""
    return json.loads(MANIFEST.read_text())


def download_hub_dataset(repo_id: str, folder: str | Path) -> Path:
    """Download the images of a Hub dataset (e.g. ``diffusers/dog-example``) into ``folder``.

    A folder that already holds images is used as it is (nothing is downloaded twice).
    """
    folder = Path(folder)
    if folder.is_dir() and any(p.suffix.lower() in IMAGE_SUFFIXES for p in folder.iterdir()):
        return folder
    from huggingface_hub import snapshot_download

    try:
        snapshot_download(repo_id, repo_type="dataset", local_dir=folder, allow_patterns=["*.jp*g", "*.png", "*.webp"])
    except Exception as err:
        raise SubjectDataError(
            f"Could not download the dataset {repo_id!r} ({type(err).__name__}: {err}). Without internet, "
            "use the bundled toy subjects (data/toyworld/subjects), a local folder, or the upload widget."
        ) from err
    nested = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.parent != folder)
    for p in nested:  # some datasets keep images in a subfolder; training reads one flat folder
        p.rename(folder / p.name)
    list_images(folder)
    return folder
