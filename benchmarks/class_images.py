"""Class-image generation speed: the script's default (PNDM, 50 steps, batch 4) against faster samplers.

Every sampler starts from the same seeded noise, so results can be compared image by image: each
is measured as the mean absolute pixel difference (0-255) to a many-step reference (DDIM, 100
steps by default) and to the script's own PNDM-50 images. On the random tiny model this only shows
that the samplers agree with each other; judge quality on the real model (``--model``).

    python benchmarks/class_images.py            # tiny model at 64 px on this machine
    python benchmarks/class_images.py --model CompVis/stable-diffusion-v1-4 --resolution 512 --images 16
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

RESULTS = Path(__file__).resolve().parent / "results"
SAMPLERS = [("pndm", 50), ("dpm++", 25), ("dpm++", 20), ("unipc", 20), ("euler", 25)]
BASELINE = ("pndm", 50)


def pixels(paths: list[Path]) -> np.ndarray:
    """Images as one float array (N, H, W, 3) in 0-255."""
    from PIL import Image

    return np.stack([np.asarray(Image.open(p).convert("RGB"), dtype=np.float32) for p in paths])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: model, resolution, images, batch size and the reference's steps."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="pipeline folder or Hub id (default: tiny model)")
    parser.add_argument("--resolution", type=int, default=64)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--reference-steps", type=int, default=100, help="DDIM steps of the reference images")
    return parser.parse_args(argv)


def time_sampler(
    args: argparse.Namespace, model: str, pipe, out_dir: Path, name: str, steps: int
) -> tuple[float, np.ndarray]:
    """Generate ``args.images`` class images with one sampler; returns images per second and the images."""
    from helpers.train.class_images import ClassImageSpec, generate_class_images

    spec = ClassImageSpec(
        model=model,
        prompt="a photo of dog",
        scheduler=name,
        num_inference_steps=steps,
        seed=0,
        resolution=args.resolution,
    )
    start = time.perf_counter()
    paths = generate_class_images(
        out_dir / f"{name}-{steps}", spec, args.images, args.batch_size, pipe=pipe, progress=False
    )
    return args.images / (time.perf_counter() - start), pixels(paths)


def compare_samplers(args: argparse.Namespace, model: str, pipe, out_dir: Path) -> list[dict]:
    """One row per sampler of :data:`SAMPLERS`: speed, speed-up and pixel differences to the reference and PNDM-50."""
    time_sampler(args, model, pipe, out_dir, "pndm", 2)  # warm-up (first-call allocations), not measured
    _, reference = time_sampler(args, model, pipe, out_dir, "ddim", args.reference_steps)
    rows, baseline = [], None
    for name, steps in SAMPLERS:
        speed, images = time_sampler(args, model, pipe, out_dir, name, steps)
        baseline = images if baseline is None else baseline  # PNDM-50 comes first
        rows.append(
            {
                "scheduler": name,
                "steps": steps,
                "images_per_s": speed,
                "mean_abs_diff_to_reference": float(np.abs(images - reference).mean()),
                "mean_abs_diff_to_pndm50": float(np.abs(images - baseline).mean()),
            }
        )
    base = rows[0]["images_per_s"]
    for row in rows:
        row["speedup"] = row["images_per_s"] / base
    return rows


def markdown(rows: list[dict], title: str, reference_steps: int) -> str:
    """The rows as a markdown table under ``title``."""
    lines = [
        f"### {title}",
        "",
        f"| sampler | steps | images/s | speed-up | diff to DDIM-{reference_steps} | diff to PNDM-50 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r['scheduler']} | {r['steps']} | {r['images_per_s']:.2f} | {r['speedup']:.2f}x | "
        f"{r['mean_abs_diff_to_reference']:.2f} | {r['mean_abs_diff_to_pndm50']:.2f} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Time each sampler through the kit's ``generate_class_images``; print and save the table."""
    from helpers.train.models import TinySpec, build_tiny_model, load_pipeline

    args = parse_args(argv)
    os.environ.setdefault("COURSE_RUNS_DIR", tempfile.mkdtemp(prefix="bench-runs-"))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    with tempfile.TemporaryDirectory(prefix="bench-class-") as tmp:
        tmp = Path(tmp)
        model = args.model or str(build_tiny_model(tmp / "tiny", TinySpec(sample_size=args.resolution)))
        pipe = load_pipeline(model, torch_dtype=torch.float16 if device == "cuda" else None, device=device)
        rows = compare_samplers(args, model, pipe, tmp)
    title = (
        f"class images: {model if args.model else 'tiny model'}, {args.resolution} px, {args.images} images, "
        f"batch {args.batch_size}, {device}"
    )
    text = markdown(rows, title, args.reference_steps)
    RESULTS.mkdir(exist_ok=True)
    label = "gpu" if device == "cuda" else "cpu"
    (RESULTS / f"class_images_{label}.json").write_text(
        json.dumps({"title": title, "rows": rows}, indent=2) + "\n"
    )
    (RESULTS / f"class_images_{label}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
