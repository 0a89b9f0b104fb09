"""Run the whole course in the `gpu` profile on random weights: every notebook, every code path, a T4's memory.

Builds Stable Diffusion 1.5's architecture with random weights into a local folder (nothing is
downloaded), fills a course home with stand-in photos for the cat toy and the learner's face,
caps each notebook's process at a T4's 15 GiB and runs notebooks 00-07 top to bottom. Steps,
class images and sampling steps are cut by profile overrides; everything else stays as on a
real T4 (fp16, 8-bit AdamW, gradient checkpointing, prior preservation, the text encoder,
textual inversion, EMA, LoRA). The measures under the figures use DINO ViT-S/16 and CLIP
ViT-B/32 at full size, also random. The pictures and numbers are noise: this checks that the
course runs, fits, and prints a measure table under every comparison.

    python scripts/gpu_course_check.py WORK_DIR [--memory-gib 15] [NOTEBOOK ...]
    python scripts/gpu_course_check.py WORK_DIR --cpu [NOTEBOOK ...]

``--cpu`` runs the same notebooks, at the same architecture, on the CPU: fp32 instead of fp16
(mixed precision is off) and 64 px instead of 512, everything else as above (8-bit AdamW where
bitsandbytes runs on this CPU). The weight files are full size (about 4 GB per saved pipeline).

In pieces: NOTEBOOK prefixes run only those notebooks. The course home (WORK_DIR/home, or
WORK_DIR/home-cpu with ``--cpu``) is kept between calls, so a later notebook reuses the runs of
an earlier one (03 uses 01's high-LR run, 04 02's run with prior preservation, 05 04's runs, 07
01's low-LR run), and the report keeps the rows of notebooks run in earlier calls; ``--fresh``
starts over with an empty course home. Where a GPU is lent for a few minutes per command, run
the pieces one after another on the same machine (the course home holds several 2-4 GB runs,
too big to carry from one machine to the next), each call well inside the limit, e.g.

    python scripts/gpu_course_check.py WORK --fresh 00 01   # the first call also builds the model (~40 s)
    python scripts/gpu_course_check.py WORK 02
    python scripts/gpu_course_check.py WORK 03 04
    python scripts/gpu_course_check.py WORK 05
    python scripts/gpu_course_check.py WORK 06 07

and regroup with the seconds column of the report. A notebook stopped half-way loses only its
unfinished run: called again, it reuses the training runs that finished. On the CPU a notebook
takes from seconds to 20 min (2 shared cores: 01 13 min, 02 12, 03 6, 04 20), so there a piece
is one notebook.

Writes WORK_DIR/gpu_course_check.md (``gpu_course_check_cpu.md`` with ``--cpu``): time, peak
memory and bytes written into the course home per notebook, against the course's disk budget
where ``helpers.course.budget`` provides one, and the measure tables the notebooks saved (a missing
one is named).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What is cut: steps to 1%, class images to 4, sampling to 5 steps. Nothing is switched off.
OVERRIDES = {"step_scale": 0.01, "min_steps": 4, "num_class_images": 4, "num_inference_steps": 5, "images_per_prompt": 1}
# On the CPU (--cpu): fp16 needs CUDA, and 512 px would take hours; 64 px keeps every layer of the model.
CPU_OVERRIDES = {"mixed_precision": "no", "resolution": 64}


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
    if not wanted:
        lines.append("- none: these notebooks draw no comparison")
    return "\n".join(lines) + "\n"


def stand_in_photos(home: Path) -> None:
    """Photos where a learner would have them: the cat toy (a Hub download) and their own face."""
    from helpers.train.data import make_synthetic_subject

    for name in ("cat_toy", "upload"):
        folder = home / "subjects" / name
        if not folder.is_dir():
            make_synthetic_subject(folder, n=5, size=512, seed=len(name))




def parse_args(argv: list[str]) -> argparse.Namespace:
    """The command line: WORK_DIR, --cpu or --memory-gib, --fresh, --cell-timeout and notebook prefixes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", type=Path, help="folder for the model, the course home and the report")
    parser.add_argument("notebooks", nargs="*", help="prefixes of the notebooks to run, e.g. 00 03 (default: all)")
    parser.add_argument("--cpu", action="store_true", help="run on the CPU: fp32 (mixed precision off) at 64 px")
    parser.add_argument("--memory-gib", type=float, default=15.0, help="GPU memory each notebook may use (a T4: 15)")
    parser.add_argument("--fresh", action="store_true", help="empty the course home and the report first")
    parser.add_argument("--cell-timeout", type=int, default=1800)
    return parser.parse_intermixed_args(argv)


def profile_overrides(model: Path, backbones: dict[str, str], cpu: bool = False, adam_8bit: bool = True) -> dict:
    """The profile fields changed for the check: the cuts, the local models, and on the CPU fp32 at 64 px.

    Args:
        model: the random SD 1.5 folder.
        backbones: ``dino_model`` and ``clip_model`` folders.
        cpu: running on the CPU (mixed precision off, 64 px).
        adam_8bit: whether bitsandbytes' 8-bit AdamW runs here (only consulted with ``cpu``).
    """
    changes = {**OVERRIDES, "pretrained_model_name_or_path": str(model), **backbones}
    if cpu:
        changes.update(CPU_OVERRIDES, use_8bit_adam=adam_8bit)
    return changes


def cpu_name() -> str:
    """The CPU's model name and core count, for the report's header."""
    name = platform.processor() or platform.machine()
    try:
        name = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                    if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"CPU: {name}, {os.cpu_count()} cores"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    sys.path.insert(0, str(ROOT))
    import torch

    if not args.cpu and not torch.cuda.is_available():
        print("No CUDA GPU is visible: run this on a GPU, or add --cpu to run the same notebooks on the CPU "
              "(fp32, 64 px).")
        return 2
    work = args.work.resolve()
    suffix = "_cpu" if args.cpu else ""
    home, report = work / f"home{suffix.replace('_', '-')}", work / f"gpu_course_check{suffix}.md"
    rows = work / f"notebooks{suffix}.md"  # run_course.py's table, rows kept across calls
    if args.fresh:
        shutil.rmtree(home, ignore_errors=True)
        rows.unlink(missing_ok=True)
    model = build_model(work / "sd15-random")
    backbones = build_backbones(work)
    stand_in_photos(home)
    adam_8bit = True
    if args.cpu:
        from helpers.course.doctor import adam8bit_works

        adam_8bit, why = adam8bit_works("cpu")
        if not adam_8bit:
            print(f"8-bit AdamW does not run on this CPU ({why}): the check uses AdamW.")
    overrides = profile_overrides(model, backbones, args.cpu, adam_8bit)
    env = {**os.environ, "COURSE_PROFILE": "gpu", "COURSE_HOME": str(home), "HF_HUB_OFFLINE": "1",
           "COURSE_INTERACTIVE": "0", "COURSE_PROFILE_OVERRIDES": json.dumps(overrides),
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if args.cpu:
        env["CUDA_VISIBLE_DEVICES"] = ""  # the CPU even where a GPU is present
    else:
        env["COURSE_GPU_MEMORY_GIB"] = str(args.memory_gib)
    command = [sys.executable, str(ROOT / "scripts" / "run_course.py"), "--gpu-report", str(rows),
               "--cell-timeout", str(args.cell_timeout), *args.notebooks]
    result = subprocess.run(command, env=env, check=False)
    if args.cpu:
        where = f"{cpu_name()}, {torch.get_num_threads()} thread(s) per notebook"
    else:
        where = f"{torch.cuda.get_device_name(0)}, each notebook capped at {args.memory_gib:g} GiB"
    shown = {k: v for k, v in overrides.items() if k in {*OVERRIDES, *CPU_OVERRIDES, "use_8bit_adam"}}
    header = (f"# The course in the gpu profile on random weights{' (on the CPU)' if args.cpu else ''}\n\n"
              f"{where}; profile overrides {json.dumps(shown)}; torch {torch.__version__}. Bytes are those of "
              f"files in the course home, sampled every second and after each cell.\n\n")
    if rows.exists():
        ran = [line.split("|")[1].strip()[:2] for line in rows.read_text().splitlines() if line[:3] == "| 0"]
        report.write_text(header + rows.read_text() + "\n" + measure_tables(home, ran))
        print(report.read_text())
    return result.returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
