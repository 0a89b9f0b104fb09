"""Every picture of the course: labelled grids and tables, loss curves, the samples a run saved while
training, plots; saved with their settings in the file name."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import yaml
from PIL import Image, ImageDraw, ImageFont

from helpers.base.paths import runs_dir
from helpers.base.storage import SAMPLES_DIR


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


def validation_grids(run: str | Path, strip_labels: bool = True) -> dict[str, Image.Image]:
    """The sample grids a run saved while training, ``{"step 50": grid, ..., "final": grid}``, in order.

    Args:
        strip_labels: cut off the grids' "seed N" header row (figures label the seeds themselves).
    """
    folder = Path(run) / SAMPLES_DIR
    steps = sorted(folder.glob("step-*.png"), key=lambda p: int(p.stem.split("-")[1]))
    found = {f"step {int(p.stem.split('-')[1])}": p for p in steps}
    if (folder / "final.png").exists() and not (steps and _same_file(steps[-1], folder / "final.png")):
        found["final"] = folder / "final.png"
    grids = {k: Image.open(p).convert("RGB") for k, p in found.items()}
    seeds = _saved_config(run).get("validation_seeds") if strip_labels else None
    return {k: _without_header(g, len(seeds)) for k, g in grids.items()} if seeds else grids


def _saved_config(run: str | Path) -> dict:
    """The configuration a run saved beside its weights (empty when there is none)."""
    path = Path(run) / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _without_header(grid: Image.Image, cols: int) -> Image.Image:
    """A validation grid without its label row: the grid is ``cols`` square cells wide, under a header."""
    cell = grid.width // cols
    header = grid.height % cell
    return grid.crop((0, header, grid.width, grid.height)) if header else grid


def _same_file(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


def cut_grid(grid: Image.Image, rows: int, cols: int, cell: int) -> list[Image.Image]:
    """The cells of a grid of ``rows x cols`` square images of ``cell`` pixels, row by row.

    A label row above the cells (the "seed N" header of validation grids) is cut off first.

    Raises:
        ValueError: the grid is not ``cols`` cells wide and ``rows`` cells (plus a header) high.
    """
    header = grid.height - rows * cell
    if grid.width != cols * cell or not 0 <= header < cell:
        raise ValueError(f"A {grid.width}x{grid.height} grid does not hold {rows} rows x {cols} columns of "
                         f"{cell}-pixel images (under a header row lower than one image).")
    return [grid.crop((c * cell, header + r * cell, (c + 1) * cell, header + (r + 1) * cell))
            for r in range(rows) for c in range(cols)]


def validation_samples(run: str | Path) -> dict[str, dict[str, list[Image.Image]]]:
    """The images a run sampled while training, ``{"step 50": {prompt: [one image per seed]}, ...}``.

    The grids of :func:`validation_grids` (same labels, same order) cut back into their cells with
    the run's ``validation_prompts``, ``validation_seeds`` and ``resolution`` from its config.yaml.

    Raises:
        FileNotFoundError: the run saved no grids (or no config.yaml to read them with).
        ValueError: a grid's shape does not match the run's validation settings.
    """
    config = _saved_config(run)
    prompts, seeds = config.get("validation_prompts") or [], config.get("validation_seeds") or []
    grids = validation_grids(run, strip_labels=False)
    if not (grids and prompts and seeds and config.get("resolution")):
        raise FileNotFoundError(f"The run {Path(run).name} saved no validation grids with their settings: train "
                                "it with validation_prompts and validation_steps (or delete it so it is trained again).")
    by_step = {}
    for label, grid in grids.items():
        try:
            cells = cut_grid(grid, len(prompts), len(seeds), int(config["resolution"]))
        except ValueError as err:
            raise ValueError(f"{err} The grid '{label}' of the run {Path(run).name} does not match its "
                             "config.yaml: delete the run's samples folder, or the run, and train it again.") from None
        by_prompt: dict[str, list[Image.Image]] = {}
        for i, prompt in enumerate(prompts):  # a prompt listed twice keeps the images of both rows
            by_prompt.setdefault(prompt, []).extend(cells[i * len(seeds):(i + 1) * len(seeds)])
        by_step[label] = by_prompt
    return by_step


def with_photos(grid: Image.Image, photos: list[Image.Image], cell: int, label: str = "the subject's photos",
                title: str | None = None) -> Image.Image:
    """``grid`` under a labelled strip of the subject's own photos at the grid's cell size (and ``title`` on top).

    Set beside the generations at the same size, the photos let a reader check with their own
    eyes whether a feature (a pattern, a face) was learned.
    """
    font_size = max(10, min(16, cell // 6))
    font = _font(font_size)
    top = font_size + 10 if title else 0
    strip_height = top + font_size + 8 + cell
    out = Image.new("RGB", (max(grid.width, 4 + len(photos) * (cell + 2)), strip_height + 6 + grid.height), "white")
    draw = ImageDraw.Draw(out)
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    draw.text((4, top + 2), label, fill="black", font=font)
    for i, photo in enumerate(photos):
        out.paste(photo.convert("RGB").resize((cell, cell)), (4 + i * (cell + 2), top + font_size + 8))
    out.paste(grid, (0, strip_height + 6))
    return out


def paste_table(cells: list[list[Image.Image]], row_labels: list[str], col_labels: list[str],
                title: str | None = None, width: int | None = None) -> Image.Image:
    """Paste images of any shape into a labelled table (each scaled to ``width`` pixels wide)."""
    width = width or cells[0][0].width
    scaled = [[im.resize((width, round(im.height * width / im.width))) for im in row] for row in cells]
    heights = [max(im.height for im in row) for row in scaled]
    font_size = max(10, min(16, width // 10))
    try:
        font = ImageFont.load_default(size=font_size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    pad_left = max(len(s) for s in row_labels) * font_size * 6 // 10 + 10
    pad_top = (font_size + 8) * (2 if title else 1)
    title_width = len(title or "") * font_size * 6 // 10 + 8
    size = (max(title_width, pad_left + len(col_labels) * (width + 4)), pad_top + sum(heights) + 4 * len(heights))
    out = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(out)
    if title:
        draw.text((4, 2), title, fill="black", font=font)
    for c, label in enumerate(col_labels):
        draw.text((pad_left + c * (width + 4) + 4, pad_top - font_size - 6), label, fill="black", font=font)
    y = pad_top
    for r, row in enumerate(scaled):
        draw.text((4, y + heights[r] // 2 - font_size // 2), row_labels[r], fill="black", font=font)
        for c, im in enumerate(row):
            out.paste(im, (pad_left + c * (width + 4), y))
        y += heights[r] + 4
    return out


def progress_table(runs: dict[str, str | Path], title: str | None = None, width: int | None = None) -> Image.Image:
    """The runs' validation grids side by side: one row per saved step, one column per run.

    Only the steps every run saved are shown, so the runs must share their validation settings.
    """
    grids = {label: validation_grids(run) for label, run in runs.items()}
    steps = [s for s in next(iter(grids.values())) if all(s in g for g in grids.values())]
    if not steps:
        raise FileNotFoundError("No sample grids common to these runs: train them with validation_prompts and "
                                "the same validation_steps (or delete them so they are trained again).")
    cells = [[grids[label][s] for label in runs] for s in steps]
    return paste_table(cells, steps, list(runs), title, width)


def figures_dir() -> Path:
    """``runs/figures``, created on first use."""
    folder = runs_dir() / "figures"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def save_plot(fig, stem: str, **settings) -> Path:
    """Save a matplotlib figure as ``runs/figures/<stem>_<settings>.png``."""
    path = figures_dir() / figure_name(stem, **settings)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def plot_seconds_per_image(seconds: dict[str, float], title: str | None = None):
    """A horizontal bar chart of sampling time per image, ``{label: seconds}``; returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 0.35 * len(seconds) + 1))
    ax.barh(list(seconds), list(seconds.values()), color="tab:blue")
    ax.invert_yaxis()  # first label on top
    ax.set_xlabel("seconds per image")
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def show_image(img: Image.Image, width: float = 7.0):
    """Show a PIL image (a saved grid or table) with matplotlib at ``width`` inches; returns the figure."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(width, width * img.height / img.width))
    ax.imshow(img)
    ax.axis("off")
    fig.tight_layout()
    return fig
