"""Experiments of the study: sample finished runs side by side and lay the results out as the study did.

Introduced in ``01_learning_rate``; ``02`` to ``06`` use the same functions. A comparison
samples every run (an "arm" of an experiment) from the same prompts and the same seeds, so
the only thing that differs between two columns of a figure is the thing being compared.
"""

from __future__ import annotations

import gc
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont
from tqdm.auto import tqdm

from .course import TOY_SUBJECTS, Subject
from .figures import figure_name
from .paths import runs_dir
from .sampling import Generation, generate

SAMPLES_DIR = "samples"  # where train_dreambooth saves its validation grids, inside a run folder


# ------------------------------------------------------------------------------------------- prompts


def widgets_enabled() -> bool:
    """True in a live Jupyter kernel unless ``COURSE_INTERACTIVE=0`` (tests and headless runs)."""
    return os.environ.get("COURSE_INTERACTIVE", "1") == "1" and "ipykernel" in sys.modules


def subject_prompts(subject: Subject, n: int = 3) -> list[str]:
    """The instance prompt, then up to ``n - 1`` prompts that put the subject somewhere new.

    The extra prompts come from the ToyWorld manifest or ``data/subjects.json``; a subject
    without any (an upload) gets generic ones.
    """
    from .data import read_manifest

    toy_manifest = TOY_SUBJECTS / "manifest.json"
    toy = json.loads(toy_manifest.read_text())["subjects"] if toy_manifest.exists() else {}
    if subject.name in toy and Path(subject.folder).resolve().is_relative_to(TOY_SUBJECTS.resolve()):
        extra = toy[subject.name].get("recontext_prompts", [])
    else:
        extra = read_manifest()["subjects"].get(subject.name, {}).get("prompts", [])
    token = f"{subject.identifier} {subject.class_noun}"
    extra = [p.replace(f"sks {subject.class_noun}", token) for p in extra] or [
        f"a photo of {token} on the beach", f"a painting of {token}"]
    return [subject.instance_prompt, *extra][:n]


def short_prompt(prompt: str) -> str:
    """A prompt without its leading "a photo of ", for figure labels."""
    return prompt.removeprefix("a photo of ")


# ------------------------------------------------------------------------------------------- sampling


def pipeline_device() -> tuple[str, torch.dtype]:
    """Where to sample and in which precision: CUDA in float16 when there is a GPU, else CPU in float32."""
    return ("cuda", torch.float16) if torch.cuda.is_available() else ("cpu", torch.float32)


def load_run(run: str | Path, ema: bool = False):
    """A finished run's pipeline (or a base model id), on the sampling device, progress bars off."""
    from .training import load_trained_pipeline

    device, dtype = pipeline_device()
    return load_trained_pipeline(run, ema=ema, torch_dtype=dtype, device=device)


def release_memory() -> None:
    """Give back the memory of models no longer referenced (call after ``del pipe``)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def sample_pipeline(pipe, prompts: list[str], seeds: list[int], num_inference_steps: int,
                    resolution: int | None = None, scheduler: str | None = None) -> Generation:
    """One image per (prompt, seed) pair, prompt by prompt: every prompt gets the same seeds."""
    pairs = [(p, s) for p in prompts for s in seeds]
    return generate(pipe, [p for p, _ in pairs], [s for _, s in pairs], num_inference_steps=num_inference_steps,
                    scheduler=scheduler, resolution=resolution, batch_size=max(1, len(seeds)), progress=False)


@dataclass
class Comparison:
    """The same prompts and seeds sampled from several arms of an experiment (``{label: Generation}``)."""

    generations: dict[str, Generation]
    prompts: list[str]
    seeds: list[int]
    settings: dict = field(default_factory=dict)  # what every arm shared (steps, scheduler ...), for titles

    @property
    def labels(self) -> list[str]:
        return list(self.generations)

    def images(self, label: str, prompt: str | None = None) -> list[Image.Image]:
        """The images of one arm, all of them or those of one prompt."""
        gen = self.generations[label]
        return [im for im, p in zip(gen.images, gen.prompts) if prompt is None or p == prompt]

    def seconds_per_image(self) -> dict[str, float]:
        """Sampling time per image of each arm."""
        return {k: g.seconds / max(1, len(g.images)) for k, g in self.generations.items()}

    def strip(self, label: str, prompt: str, cell: int) -> Image.Image:
        """The images of one arm and one prompt side by side, seeds left to right, each ``cell`` px."""
        images = self.images(label, prompt)
        out = Image.new("RGB", (cell * len(images) + 2 * (len(images) - 1), cell), "white")
        for i, im in enumerate(images):
            out.paste(im.convert("RGB").resize((cell, cell)), (i * (cell + 2), 0))
        return out

    def grid(self, title: str | None = None, arms_as: str = "cols", cell: int | None = None) -> Image.Image:
        """A labelled grid: one row per prompt and one column per arm (the study's layout), or arms as rows.

        Each cell holds the seeds of one (prompt, arm) pair, left to right.

        Args:
            arms_as: ``"cols"`` (prompts down, arms across) or ``"rows"`` (arms down, prompts across).
            cell: size of each image in pixels; None: the images' own size, at least 96.
        """
        first = next(iter(self.generations.values())).images[0]
        cell = cell or max(96, first.width)
        table = [[self.strip(label, p, cell) for label in self.labels] for p in self.prompts]
        prompts = [short_prompt(p) for p in self.prompts]
        if arms_as == "rows":
            return paste_table([list(col) for col in zip(*table)], self.labels, prompts, title, table[0][0].width)
        return paste_table(table, prompts, self.labels, title, table[0][0].width)

    def show(self, title: str | None = None, arms_as: str = "cols", width: float | None = None):
        """The grid drawn with matplotlib, small; returns the figure."""
        across = len(self.labels) if arms_as == "cols" else len(self.prompts)
        return show_image(self.grid(title, arms_as), width or min(10.0, 1.1 * across * len(self.seeds) + 2.5))


def sample_runs(runs: dict[str, str | Path], prompts: list[str], seeds: list[int], num_inference_steps: int,
                resolution: int | None = None, scheduler: str | None = None, ema: bool = False) -> Comparison:
    """Load each run in turn (a run folder or a base model id), sample prompts x seeds, free it.

    Args:
        runs: ``{label: run folder or model id}``, in the order the figure shows them.
        prompts, seeds: every arm gets every prompt with every seed.
        scheduler: a key of ``helpers.sampling.SCHEDULERS``; None keeps each pipeline's own.
    Returns:
        a :class:`Comparison`, one :class:`~helpers.sampling.Generation` per label.
    """
    generations = {}
    for label, run in tqdm(list(runs.items()), desc="sampling runs"):
        pipe = load_run(run, ema=ema)
        generations[label] = sample_pipeline(pipe, prompts, seeds, num_inference_steps, resolution, scheduler)
        del pipe  # one pipeline in memory at a time
        release_memory()
    settings = {"steps": num_inference_steps, "scheduler": scheduler or "default", "seeds": seeds}
    return Comparison(generations, list(prompts), list(seeds), settings)


SCHEDULER_NAMES = {"pndm": "PNDM", "lms": "LMSDiscrete", "ddim": "DDIM", "dpm++": "DPM-Solver++", "euler": "Euler",
                   "unipc": "UniPC"}


def scheduler_name(key: str) -> str:
    """How figures name a scheduler of ``helpers.sampling.SCHEDULERS`` ("dpm++" -> "DPM-Solver++")."""
    from .sampling import SCHEDULERS

    return SCHEDULER_NAMES.get(key) or SCHEDULERS[key].removesuffix("Scheduler")


def own_sampler(model: str) -> str:
    """The key (in ``helpers.sampling.SCHEDULERS``) of the scheduler a model samples with by default.

    ``"pndm"`` for Stable Diffusion 1.x, as in the study; ``"dpm++"`` for the ToyWorld model.
    """
    from diffusers import DiffusionPipeline

    from .models import resolve_model
    from .sampling import SCHEDULERS

    cls = DiffusionPipeline.load_config(resolve_model(model))["scheduler"][1]
    return {v: k for k, v in SCHEDULERS.items()}.get(cls, cls)


def scheduler_comparison(results: dict[tuple[str, int], Generation], prompt: str) -> Comparison:
    """Turn :func:`helpers.sampling.compare_schedulers` results into a :class:`Comparison` (one arm per pair)."""
    generations = {f"{scheduler_name(name)}, {n}": g for (name, n), g in results.items()}
    seeds = next(iter(results.values())).seeds
    return Comparison(generations, [prompt], list(seeds))


# ------------------------------------------------------------------------------------- during training


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
    import yaml

    path = Path(run) / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.exists() else {}


def _without_header(grid: Image.Image, cols: int) -> Image.Image:
    """A validation grid without its label row: the grid is ``cols`` square cells wide, under a header."""
    cell = grid.width // cols
    header = grid.height % cell
    return grid.crop((0, header, grid.width, grid.height)) if header else grid


def _same_file(a: Path, b: Path) -> bool:
    return a.read_bytes() == b.read_bytes()


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


# ----------------------------------------------------------------------------------------- measures


def is_toyworld(subject: Subject) -> bool:
    """True when ``subject`` is a ToyWorld subject and the ToyWorld evaluator is there to score it."""
    from .toyworld.metrics import EVALUATOR_DIR
    from .toyworld.subjects import SUBJECTS

    shipped = Path(subject.folder).resolve().is_relative_to(TOY_SUBJECTS.resolve())
    return shipped and subject.name in SUBJECTS and (EVALUATOR_DIR / "evaluator.safetensors").exists()


def toyworld_scores(subject: Subject, comparison: Comparison, class_prompt: str | None = None) -> dict | None:
    """ToyWorld's measures of each arm, ``{label: {measure: value}}``; None for other subjects.

    Subject fidelity counts images recognised as the subject, prompt fidelity images that
    show what their prompt asks for; with ``class_prompt``, the images of that prompt are
    scored for language drift instead (the share that show the subject: 0 is no drift).
    """
    if not is_toyworld(subject):
        return None
    from .toyworld import metrics

    scores = {}
    for label in comparison.labels:
        gen = comparison.generations[label]
        own = [(im, p) for im, p in zip(gen.images, gen.prompts) if p != class_prompt]
        row = {}
        if own:
            images, prompts = [im for im, _ in own], [p for _, p in own]
            row["subject_fidelity"] = metrics.subject_fidelity(images, subject.name)
            row["prompt_fidelity"] = metrics.prompt_fidelity(images, prompts)
        if class_prompt is not None:
            row["language_drift"] = metrics.language_drift(comparison.images(label, class_prompt), subject.name)
        scores[label] = row
    return scores


def format_scores(scores: dict | None) -> str:
    """A small text table of :func:`toyworld_scores` (or a note when there are none)."""
    if not scores:
        return "(no ToyWorld measures: the subject is not a ToyWorld subject, or the evaluator is not built)"
    names = list(next(iter(scores.values())))
    width = max(len(k) for k in scores) + 2
    lines = [" " * width + "".join(f"{n:>18}" for n in names)]
    lines += [f"{label:<{width}}" + "".join(f"{row.get(n, float('nan')):>18.2f}" for n in names)
              for label, row in scores.items()]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- figures


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
