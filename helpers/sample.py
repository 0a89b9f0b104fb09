"""Sample finished runs side by side from identical prompts and seeds (introduced in ``01_learning_rate``).

A comparison samples every run (an "arm" of an experiment) from the same prompts and the same
seeds, so the only thing that differs between two columns of a figure is the thing compared.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from tqdm.auto import tqdm

from helpers.base.storage import COMPARISONS_DIR
from helpers.figures import paste_table, show_image, with_photos
from helpers.train.dreambooth import load_trained_pipeline
from helpers.train.models import free_memory, resolve_model
from helpers.train.prompts import short_prompt
from helpers.train.sampling import SCHEDULERS, Generation, generate


def pipeline_device() -> tuple[str, torch.dtype]:
    """Where to sample and in which precision: CUDA in float16 when there is a GPU, else CPU in float32."""
    return ("cuda", torch.float16) if torch.cuda.is_available() else ("cpu", torch.float32)


def load_run(run: str | Path, ema: bool = False):
    """A finished run's pipeline (or a base model id), on the sampling device, progress bars off."""
    device, dtype = pipeline_device()
    return load_trained_pipeline(run, ema=ema, torch_dtype=dtype, device=device)


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

    def grid(self, title: str | None = None, arms_as: str = "cols", cell: int | None = None,
             photos: list[Image.Image] | None = None) -> Image.Image:
        """A labelled grid: one row per prompt and one column per arm (the study's layout), or arms as rows.

        Each cell holds the seeds of one (prompt, arm) pair, left to right.

        Args:
            arms_as: ``"cols"`` (prompts down, arms across) or ``"rows"`` (arms down, prompts across).
            cell: size of each image in pixels; None: the images' own size, at least 96.
            photos: the subject's own photos, shown above the grid at the same size.
        """
        first = next(iter(self.generations.values())).images[0]
        cell = cell or max(96, first.width)
        table = [[self.strip(label, p, cell) for label in self.labels] for p in self.prompts]
        prompts = [short_prompt(p) for p in self.prompts]
        heading = None if photos else title  # with photos, the title goes above them
        if arms_as == "rows":
            grid = paste_table([list(col) for col in zip(*table)], self.labels, prompts, heading, table[0][0].width)
        else:
            grid = paste_table(table, prompts, self.labels, heading, table[0][0].width)
        return with_photos(grid, photos, cell, title=title) if photos else grid

    def show(self, title: str | None = None, arms_as: str = "cols", width: float | None = None,
             photos: list[Image.Image] | None = None):
        """The grid drawn with matplotlib (under the subject's ``photos`` when given); returns the figure."""
        across = len(self.labels) if arms_as == "cols" else len(self.prompts)
        return show_image(self.grid(title, arms_as, photos=photos),
                          width or min(10.0, 1.1 * across * len(self.seeds) + 2.5))


def sample_runs(runs: dict[str, str | Path], prompts: list[str], seeds: list[int], num_inference_steps: int,
                resolution: int | None = None, scheduler: str | None = None, ema: bool = False) -> Comparison:
    """Load each run in turn (a run folder or a base model id), sample prompts x seeds, free it.

    Args:
        runs: ``{label: run folder or model id}``, in the order the figure shows them.
        prompts, seeds: every arm gets every prompt with every seed.
        scheduler: a key of ``helpers.train.sampling.SCHEDULERS``; None keeps each pipeline's own.
    Returns:
        a :class:`Comparison`, one :class:`~helpers.train.sampling.Generation` per label.
    """
    generations = {}
    settings = {"steps": num_inference_steps, "scheduler": scheduler or "default", "seeds": list(seeds)}
    key = {**settings, "prompts": list(prompts), "resolution": resolution, "ema": ema}
    for label, run in tqdm(list(runs.items()), desc="sampling runs"):
        cached = read_samples(run, key)
        if cached is not None:  # sampled before with these settings: no weights needed
            generations[label] = cached
            continue
        pipe = load_run(run, ema=ema)
        generations[label] = sample_pipeline(pipe, prompts, seeds, num_inference_steps, resolution, scheduler)
        del pipe  # one pipeline in memory at a time
        free_memory()
        write_samples(run, key, generations[label])
    return Comparison(generations, list(prompts), list(seeds), settings)


def samples_folder(run: str | Path, key: dict) -> Path | None:
    """Where a run keeps the images sampled with the settings ``key``; None for a base model id."""
    run = Path(run)
    if not (run / "config.yaml").is_file():
        return None
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return run / COMPARISONS_DIR / digest


def write_samples(run: str | Path, key: dict, generation: Generation) -> None:
    """Save a run's sampled images (PNG, lossless) with the settings that made them."""
    folder = samples_folder(run, key)
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(generation.images):
        image.save(folder / f"{i:03d}.png")
    record = {"key": key, "prompts": generation.prompts, "seeds": generation.seeds, "seconds": generation.seconds}
    (folder / "samples.json").write_text(json.dumps(record, indent=1) + "\n")  # written last: marks them complete


def read_samples(run: str | Path, key: dict) -> Generation | None:
    """The images a run sampled before with the settings ``key``, or None when there are none (or not all)."""
    folder = samples_folder(run, key)
    if folder is None or not (folder / "samples.json").is_file():
        return None
    record = json.loads((folder / "samples.json").read_text())
    paths = [folder / f"{i:03d}.png" for i in range(len(record["prompts"]))]
    if record["key"] != key or not all(p.is_file() for p in paths):
        return None
    images = []
    for path in paths:
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    return Generation(images, record["prompts"], record["seeds"], record["seconds"])


SCHEDULER_NAMES = {"pndm": "PNDM", "lms": "LMSDiscrete", "ddim": "DDIM", "dpm++": "DPM-Solver++", "euler": "Euler",
                   "unipc": "UniPC"}


def scheduler_name(key: str) -> str:
    """How figures name a scheduler of ``helpers.train.sampling.SCHEDULERS`` ("dpm++" -> "DPM-Solver++")."""
    return SCHEDULER_NAMES.get(key) or SCHEDULERS[key].removesuffix("Scheduler")


def own_sampler(model: str) -> str:
    """The key (in ``helpers.train.sampling.SCHEDULERS``) of the scheduler a model samples with by default.

    ``"pndm"`` for Stable Diffusion 1.x, as in the study; ``"dpm++"`` for the ToyWorld model.
    """
    from diffusers import DiffusionPipeline

    cls = DiffusionPipeline.load_config(resolve_model(model))["scheduler"][1]
    return {v: k for k, v in SCHEDULERS.items()}.get(cls, cls)


def scheduler_comparison(results: dict[tuple[str, int], Generation], prompt: str) -> Comparison:
    """Turn :func:`helpers.train.sampling.compare_schedulers` results into a :class:`Comparison` (one arm per pair)."""
    generations = {f"{scheduler_name(name)}, {n}": g for (name, n), g in results.items()}
    seeds = next(iter(results.values())).seeds
    return Comparison(generations, [prompt], list(seeds))
