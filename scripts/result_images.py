"""Copy each notebook's headline figure from a finished course into docs/images/results/, small.

Every notebook opens with the result it builds, shown from the repository's raw URL so that
GitHub, Colab and Kaggle display it before anything runs. After `make course` on `cpu`:

    python scripts/result_images.py runs/figures

rewrites the eight images (at most WIDTH pixels wide, 256 colours). A figure missing from the
folder is reported and the command exits 1, so a stale image is never kept silently.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "images" / "results"
RAW_URL = "https://raw.githubusercontent.com/dreambooth-course/dreambooth-course-kit/main/docs/images/results/"
WIDTH = 900
# notebook -> the figure that shows its result (the stem `figures.save_image` / `save_plot` wrote it under)
HEADLINES = {
    "00_setup": "00_subject",
    "01_learning_rate": "01_lr_comparison",
    "02_prior_preservation": "02_language_drift",
    "03_schedulers": "03_study_schedulers",
    "04_text_encoder": "04_text_encoder",
    "05_textual_inversion_dreambooth": "05_ti_dreambooth",
    "06_ema_and_memory": "06_memory",
    "07_lora_or_full": "07_lora_or_full",
}


def newest(folder: Path, stem: str) -> Path | None:
    """The newest ``<stem>_*.png`` (or ``<stem>.png``) in ``folder``."""
    found = [p for p in folder.glob(f"{stem}*.png") if p.stem == stem or p.stem.startswith(f"{stem}_")]
    return max(found, key=lambda p: p.stat().st_mtime, default=None)


def shrink(source: Path, target: Path, width: int = WIDTH) -> int:
    """Write ``source`` at most ``width`` px wide, as a 256-colour PNG; return its size in bytes."""
    img = Image.open(source).convert("RGB")
    if img.width > width:
        img = img.resize((width, round(img.height * width / img.width)), Image.Resampling.LANCZOS)
    target.parent.mkdir(parents=True, exist_ok=True)
    img.quantize(256).save(target, optimize=True)
    return target.stat().st_size


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("figures", type=Path, help="the figures folder of a finished course (runs/figures)")
    args = parser.parse_args(argv)
    missing = []
    for notebook, stem in HEADLINES.items():
        source = newest(args.figures, stem)
        if source is None:
            missing.append(f"{notebook} ({stem}*.png)")
            continue
        size = shrink(source, OUT / f"{notebook}.png")
        print(f"{notebook}: {source.name} -> docs/images/results/{notebook}.png, {size / 1024:.0f} KiB")
    if missing:
        print("missing in " + str(args.figures) + ": " + ", ".join(missing) + "; run `make course` first",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
