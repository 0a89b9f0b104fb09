"""Run the whole course in the `gpu` profile on random weights: every notebook, every code path, a T4's memory.

Builds Stable Diffusion 1.5's architecture with random weights into a local folder (nothing is
downloaded), fills a fresh course home with stand-in photos for the cat toy and the learner's
face, caps each notebook's process at a T4's 15 GiB and runs notebooks 00-06 top to bottom.
Steps, class images and sampling steps are cut by profile overrides; everything else stays as
on a real T4 (fp16, 8-bit AdamW, gradient checkpointing, prior preservation, the text encoder,
textual inversion, EMA). The measures under the figures use DINO ViT-S/16 and CLIP ViT-B/32 at
full size, also random. The pictures and numbers are noise: this checks that the course runs,
fits, and prints a measure table under every comparison.

    python scripts/gpu_course_check.py WORK_DIR [--memory-gib 15]

Writes WORK_DIR/gpu_course_check.md: time and peak GPU memory per notebook, and the measure
tables the notebooks saved (a missing one is named).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What is cut: steps to 1%, class images to 4, sampling to 5 steps. Nothing is switched off.
OVERRIDES = {"step_scale": 0.01, "min_steps": 4, "num_class_images": 4, "num_inference_steps": 5, "images_per_prompt": 1}


def build_model(folder: Path) -> Path:
    """SD 1.5's architecture with random weights (the builder of benchmarks/train_step.py)."""
    if (folder / "model_index.json").exists():
        return folder
    spec = importlib.util.spec_from_file_location("train_step", ROOT / "benchmarks" / "train_step.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_sd15_random(folder)


def build_backbones(work: Path) -> dict[str, str]:
    """DINO ViT-S/16 and CLIP ViT-B/32 at full size with random weights: the measures' memory and code path."""
    from helpers.measure import backbones as measures

    dino, clip = work / "dino-vits16-random", work / "clip-b32-random"
    if not (dino / "config.json").exists():
        measures.build_tiny_dino(dino, shape=measures.DINO_VITS16_SHAPE)
    if not (clip / "config.json").exists():
        measures.build_tiny_clip(clip, shape=measures.CLIP_B32_SHAPE)
    return {"dino_model": str(dino), "clip_model": str(clip)}


def measure_tables(home: Path, notebooks: list[str]) -> str:
    """Which comparison tables the notebooks saved, and which are missing (every figure should have one)."""
    from helpers.measure.scores import load_saved_scores
    from helpers.study.findings_table import SCORE_FILES

    saved = load_saved_scores(home / "scores")
    wanted = sorted({n for names in SCORE_FILES.values() for n in names} | {"03_newer_samplers"})
    wanted = [n for n in wanted if not notebooks or any(n.startswith(prefix) for prefix in notebooks)]
    lines = ["## Measure tables under the figures\n"]
    for name in wanted:
        record = saved.get(name)
        lines.append(f"- {name}: " + (f"{len(record['rows'])} arms, scored by {Path(record['judge'].split(' + ')[0]).name} + "
                                      f"{Path(record['judge'].split(' + ')[1]).name}" if record else "MISSING"))
    return "\n".join(lines) + "\n"


def stand_in_photos(home: Path) -> None:
    """Photos where a learner would have them: the cat toy (a Hub download) and their own face."""
    from helpers.train.data import make_synthetic_subject

    for name in ("cat_toy", "upload"):
        folder = home / "subjects" / name
        if not folder.is_dir():
            make_synthetic_subject(folder, n=5, size=512, seed=len(name))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="folder for the model, the course home and the report")
    parser.add_argument("--memory-gib", type=float, default=15.0, help="GPU memory each notebook may use (a T4: 15)")
    parser.add_argument("--cell-timeout", type=int, default=1800)
    parser.add_argument("notebooks", nargs="*", help="prefixes of the notebooks to run (default: all)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    if not torch.cuda.is_available():
        print("No CUDA GPU is visible: this check needs one.")
        return 2
    work = args.work.resolve()
    model = build_model(work / "sd15-random")
    backbones = build_backbones(work)
    home = work / "home"
    stand_in_photos(home)
    env = {**os.environ, "COURSE_PROFILE": "gpu", "COURSE_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "COURSE_INTERACTIVE": "0", "COURSE_GPU_MEMORY_GIB": str(args.memory_gib),
           "COURSE_PROFILE_OVERRIDES": json.dumps({**OVERRIDES, "pretrained_model_name_or_path": str(model),
                                                   **backbones}),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    report = work / "gpu_course_check.md"
    command = [sys.executable, str(ROOT / "scripts" / "run_course.py"), "--gpu-report", str(report),
               "--cell-timeout", str(args.cell_timeout), *args.notebooks]
    result = subprocess.run(command, env=env, check=False)
    name = torch.cuda.get_device_name(0)
    header = (f"# The course in the gpu profile on random weights\n\n{name}, each notebook capped at "
              f"{args.memory_gib:g} GiB; profile overrides {json.dumps(OVERRIDES)}; torch {torch.__version__}.\n\n")
    if report.exists():
        report.write_text(header + report.read_text() + "\n" + measure_tables(home, args.notebooks))
        print(report.read_text())
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
