"""Figures: labelled image grids and loss curves, saved with their settings in the file name."""

from __future__ import annotations

import csv
import re
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont


def slug(text: str) -> str:
    """A file-name-safe version of ``text`` (``"lr=2e-06, seed 0"`` -> ``"lr2e-06_seed0"``)."""
    text = re.sub(r"[=\s,]+", "_", str(text).strip())
    return re.sub(r"[^A-Za-z0-9._+-]", "", text).strip("_")


def figure_name(stem: str, **settings) -> str:
    """A file name that carries the settings, e.g. ``figure_name("lr", seed=0, steps=400)``."""
    parts = [slug(stem)] + [slug(f"{k}{v}") for k, v in settings.items()]
    return "_".join(p for p in parts if p) + ".png"


def _font(size: int):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has one fixed-size default font
        return ImageFont.load_default()


def image_grid(
    images: list[Image.Image],
    rows: int,
    cols: int,
    row_labels: list[str] | None = None,
    col_labels: list[str] | None = None,
    title: str | None = None,
    cell: int | None = None,
) -> Image.Image:
    """Paste images row by row into a grid, with optional row/column labels and a title.

    Args:
        images: ``rows * cols`` images, row-major.
        cell: size each image is shown at; None keeps the first image's width.
    """
    if len(images) != rows * cols:
        raise ValueError(f"A {rows}x{cols} grid needs {rows * cols} images, got {len(images)}.")
    cell = cell or images[0].width
    font_size = max(10, min(18, cell // 6))
    font = _font(font_size)
    pad_left = max((len(s) for s in row_labels), default=0) * font_size * 6 // 10 + 8 if row_labels else 0
    pad_top = (font_size + 8 if col_labels else 0) + (font_size + 10 if title else 0)
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    title_width = int(measure.textlength(title, font=font)) + 8 if title else 0
    grid = Image.new("RGB", (max(pad_left + cols * cell, title_width), pad_top + rows * cell), "white")
    draw = ImageDraw.Draw(grid)
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    for c, label in enumerate(col_labels or []):
        draw.text((pad_left + c * cell + 4, pad_top - font_size - 6), label, fill="black", font=font)
    for r, label in enumerate(row_labels or []):
        draw.text((4, pad_top + r * cell + cell // 2 - font_size // 2), label, fill="black", font=font)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        grid.paste(img.convert("RGB").resize((cell, cell)), (pad_left + c * cell, pad_top + r * cell))
    return grid


def save_image(img: Image.Image, folder: str | Path, stem: str, **settings) -> Path:
    """Save ``img`` as ``folder/<stem>_<settings>.png`` and return the path."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / figure_name(stem, **settings)
    img.save(path)
    return path


def show_grid(images, rows, cols, row_labels=None, col_labels=None, title=None, figsize_per_cell=1.6):
    """Show a grid with matplotlib (labels as axis titles); returns the figure."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, cols, figsize=(cols * figsize_per_cell, rows * figsize_per_cell), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.imshow(images[i])
        ax.set_xticks([]), ax.set_yticks([])
        r, c = divmod(i, cols)
        if r == 0 and col_labels:
            ax.set_title(col_labels[c], fontsize=9)
        if c == 0 and row_labels:
            ax.set_ylabel(row_labels[r], fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def read_loss_log(path: str | Path) -> dict[str, list[float]]:
    """Columns of a training log CSV (``step``, ``loss``, ...) as lists of floats."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    columns: dict[str, list[float]] = {k: [] for k in (rows[0] if rows else {})}
    for row in rows:
        for k, v in row.items():
            columns[k].append(float(v) if v not in ("", None) else float("nan"))
    return columns


def smooth(values: list[float], window: int = 10) -> list[float]:
    """Trailing moving average, so noisy diffusion losses show their trend."""
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_losses(runs: dict[str, str | Path | dict], key: str = "loss", window: int = 10, title: str | None = None):
    """Plot one smoothed loss curve per run: ``{label: log.csv path or columns dict}``; returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for label, run in runs.items():
        cols = run if isinstance(run, dict) else read_loss_log(run)
        ax.plot(cols["step"], smooth(cols[key], window), label=label)
    ax.set_xlabel("step")
    ax.set_ylabel(f"{key} (moving average of {window})")
    if title:
        ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig
