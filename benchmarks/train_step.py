"""Seconds per training step and peak memory for a matrix of DreamBooth configurations.

Every configuration runs in its own process (so peak memory is its own), on the tiny model
at 64 px on the CPU, or on the full Stable Diffusion 1.5 architecture with random weights
at 512 px on a GPU (``--full-sd``). The kit's step is also timed against a bare loop that
does the same forward, backward and update with nothing else around it.

    python benchmarks/train_step.py            # CPU matrix -> benchmarks/results/train_step_cpu.{json,md}
    python benchmarks/train_step.py --full-sd  # GPU: SD 1.5 at 512 px (memory goals < 12 / < 10 GiB; LoRA < 8 GiB)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

RESULTS = Path(__file__).resolve().parent / "results"
GIB = 1024**3

# name -> TrainConfig changes; the base is batch 2 (+2 class images), fp32 AdamW, nothing cached.
CPU_MATRIX = {
    "unet, no prior": {"with_prior_preservation": False},
    "unet, prior": {},
    "unet+te, prior (reference)": {"train_text_encoder": True},
    "unet+te, prior, 8-bit AdamW": {"train_text_encoder": True, "use_8bit_adam": True},
    "unet+te, prior, checkpointing": {"train_text_encoder": True, "gradient_checkpointing": True},
    "unet+te, prior, latents cached": {"train_text_encoder": True, "cache_latents": True},
    "unet, prior, latents+text cached": {"cache_latents": True, "cache_text_embeddings": True},
    "unet, prior, bf16": {"mixed_precision": "bf16"},
    "LoRA unet, prior": {"use_lora": True},
    "LoRA unet+te, prior": {"use_lora": True, "train_text_encoder": True},
}
GPU_MATRIX = {
    "unet, prior, fp16, AdamW": {"train_batch_size": 1, "mixed_precision": "fp16"},
    "unet, prior, fp16+8bit+ckpt (goal < 10 GiB)": {
        "train_batch_size": 1,
        "mixed_precision": "fp16",
        "use_8bit_adam": True,
        "gradient_checkpointing": True,
    },
    "unet+te, prior, fp16+8bit+ckpt (goal < 12 GiB)": {
        "train_batch_size": 1,
        "mixed_precision": "fp16",
        "use_8bit_adam": True,
        "gradient_checkpointing": True,
        "train_text_encoder": True,
    },
    "unet+te, prior, fp16+8bit+ckpt, cached": {
        "train_batch_size": 1,
        "mixed_precision": "fp16",
        "use_8bit_adam": True,
        "gradient_checkpointing": True,
        "train_text_encoder": True,
        "cache_latents": True,
    },
    "LoRA unet, prior, fp16, AdamW (goal < 8 GiB)": {
        "train_batch_size": 1,
        "mixed_precision": "fp16",
        "use_lora": True,
    },
    "LoRA unet+te, prior, fp16, AdamW": {
        "train_batch_size": 1,
        "mixed_precision": "fp16",
        "use_lora": True,
        "train_text_encoder": True,
    },
}


def build_sd15_random(out_dir: Path) -> Path:
    """Stable Diffusion 1.5's architecture with random weights, saved as a pipeline folder (no download)."""
    from diffusers import AutoencoderKL, PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from helpers.base.paths import TOKENIZER_DIR
    from helpers.train.models import save_pipeline

    unet = UNet2DConditionModel(
        sample_size=64,
        cross_attention_dim=768,
        attention_head_dim=8,
        block_out_channels=(320, 640, 1280, 1280),
    )
    vae = AutoencoderKL(
        block_out_channels=(128, 256, 512, 512),
        latent_channels=4,
        sample_size=512,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
    )
    tokenizer = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=768,
            intermediate_size=3072,
            num_hidden_layers=12,
            num_attention_heads=12,
            max_position_embeddings=77,
            hidden_act="quick_gelu",
        )
    )
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
    save_pipeline(
        {
            "vae": vae,
            "text_encoder": text_encoder,
            "tokenizer": tokenizer,
            "unet": unet,
            "scheduler": scheduler,
        },
        out_dir,
    )
    return out_dir


def peak_memory(device: torch.device) -> int:
    """Peak bytes: allocated on CUDA, resident set size on the CPU."""
    from helpers.train.optim import peak_memory_bytes

    return peak_memory_bytes(device)


def bare_loop(job: dict) -> list[float]:
    """The floor: the same forward, backward and AdamW update as the kit's step, and nothing else."""
    import torch.nn.functional as F

    from helpers.train.batches import tokenize
    from helpers.train.data import load_images, to_tensor
    from helpers.train.models import load_components

    torch.manual_seed(0)
    parts = load_components(job["model"])
    unet, te, vae, sched = parts["unet"], parts["text_encoder"], parts["vae"], parts["noise_scheduler"]
    vae.requires_grad_(False)
    te.requires_grad_(job.get("train_text_encoder", False))
    res, bs = job["resolution"], job["train_batch_size"]
    pixels = [to_tensor(i) for i in load_images(job["instance_data_dir"], res)][:bs]
    prompts = [job["instance_prompt"]] * bs
    if job.get("with_prior_preservation", True):
        pixels += [to_tensor(i) for i in load_images(job["class_data_dir"], res)][:bs]
        prompts += [job["class_prompt"]] * bs
    pixels = torch.stack(pixels)
    ids = torch.cat([tokenize(parts["tokenizer"], p) for p in prompts])
    params = list(unet.parameters()) + (list(te.parameters()) if job.get("train_text_encoder") else [])
    opt = torch.optim.AdamW(params, lr=1e-4, weight_decay=1e-2)
    times = []
    for _ in range(job["steps"]):
        start = time.perf_counter()
        with torch.no_grad():
            latents = vae.encode(pixels).latent_dist.sample() * vae.config.scaling_factor
        noise = torch.randn_like(latents)
        t = torch.randint(0, sched.config.num_train_timesteps, (len(latents),))
        pred = unet(sched.add_noise(latents, noise, t), t, te(ids)[0]).sample
        if job.get("with_prior_preservation", True):
            loss = F.mse_loss(pred[:bs], noise[:bs]) + F.mse_loss(pred[bs:], noise[bs:])
        else:
            loss = F.mse_loss(pred, noise)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        loss.item()
        times.append(time.perf_counter() - start)
    return times


def job_config(job: dict):
    """The ``TrainConfig`` of a benchmark job (its model, and its steps where it names them)."""
    from helpers.train.config import TrainConfig

    fields = {k: v for k, v in job.items() if k not in ("kind", "model", "steps")}
    steps = {"max_train_steps": job["steps"]} if "steps" in job else {}
    return TrainConfig.from_dict({**fields, "pretrained_model_name_or_path": job["model"], **steps})


def kit_loop(job: dict) -> list[float]:
    """The kit's own ``train_dreambooth`` (logging included), timed per step."""
    from helpers.train.dreambooth import train_dreambooth

    return train_dreambooth(job_config(job), progress=False).step_seconds


def worker(job: dict) -> dict:
    """Run one job in this process and return its timings and peak memory."""
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = (bare_loop if job["kind"] == "bare" else kit_loop)(job)
    warm = times[job.get("warmup", 4) :] or times
    return {
        "median_s": statistics.median(warm),
        "steps_timed": len(warm),
        "peak_bytes": peak_memory(device),
        "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
        # what the caching allocator held at most: closer to what the card must have free
        **({"peak_reserved_bytes": torch.cuda.max_memory_reserved()} if device.type == "cuda" else {}),
    }


def run_job(job: dict) -> dict:
    """Run ``job`` in a fresh process (peak memory is then the job's own)."""
    done = subprocess.run(
        [sys.executable, __file__, "--worker", json.dumps(job)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    if done.returncode != 0:
        print(done.stderr[-4000:], file=sys.stderr, flush=True)  # the whole traceback, for the log
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def prepare(work: Path, full_sd: bool, resolution: int) -> dict:
    """Model, subject photos and class images shared by every job."""
    from helpers.train.class_images import generate_class_images
    from helpers.train.data import make_synthetic_subject
    from helpers.train.dreambooth import class_image_spec
    from helpers.train.models import TinySpec, build_tiny_model

    if full_sd:
        model = build_sd15_random(work / "sd15")
    else:
        model = build_tiny_model(work / "tiny", TinySpec(sample_size=resolution))
    subject = make_synthetic_subject(work / "subject", n=4, size=resolution)
    base = {
        "model": str(model),
        "instance_data_dir": str(subject),
        "class_data_dir": str(work / "class"),
        "instance_prompt": "a photo of sks dog",
        "class_prompt": "a photo of dog",
        "with_prior_preservation": True,  # the study's face recipe; jobs that turn it off say so
        "resolution": resolution,
        "num_class_images": 4,
        "class_inference_steps": 2,
        "class_scheduler": "dpm++",
        "train_batch_size": 2,
        "learning_rate": 1e-4,
        "cache_latents": False,
        "cache_text_embeddings": False,
    }
    # the spec the training itself will ask for, so that every job finds the folder complete and valid
    generate_class_images(work / "class", class_image_spec(job_config(base)), 4, batch_size=4, progress=False)
    return base


def markdown(rows: list[dict], title: str) -> str:
    """The results as a markdown table (with the allocator's reserved peak on a GPU)."""
    reserved = any("peak_reserved_bytes" in r for r in rows)
    lines = [
        f"### {title}",
        "",
        "| configuration | s / step (median) | peak memory (GiB) |" + (" peak reserved (GiB) |" if reserved else ""),
        "|---|---:|---:|" + ("---:|" if reserved else ""),
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error'][:60]} | |" + (" |" if reserved else ""))
        else:
            line = f"| {r['name']} | {r['median_s']:.3f} | {r['peak_bytes'] / GIB:.2f} |"
            if reserved:
                line += f" {r.get('peak_reserved_bytes', 0) / GIB:.2f} |"
            lines.append(line)
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line: GPU or CPU matrix, steps, resolution, overhead rounds (and the worker's job)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full-sd", action="store_true", help="SD 1.5 architecture at 512 px (needs a GPU)")
    parser.add_argument("--steps", type=int, default=14, help="steps per job (the first 4 are not timed)")
    parser.add_argument("--resolution", type=int, default=None, help="default: 64 (tiny) or 512 (--full-sd)")
    parser.add_argument(
        "--rounds", type=int, default=3, help="bare / kit alternations for the overhead check"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def run_matrix(base: dict, matrix: dict[str, dict], steps: int, tmp: str) -> list[dict]:
    """One row per configuration of ``matrix``, each run in its own process; prints each row as it comes."""
    rows = []
    for runs, (name, changes) in enumerate(matrix.items(), start=1):
        job = {**base, **changes, "kind": "kit", "steps": steps, "output_dir": f"{tmp}/out{runs}"}
        rows.append({"name": name, **changes, **run_job(job)})
        print(markdown(rows[-1:], name).splitlines()[-1], flush=True)
    return rows


def overhead_check(base: dict, steps: int, rounds: int, tmp: str, runs: int) -> dict:
    """The kit's step against the bare loop (and with cached latents), alternating to share the machine's noise.

    ``runs`` is the number of jobs run so far, so that every job writes its own output folder.
    """
    ref = {**base, "train_text_encoder": True, "steps": steps}
    bare, kit, cached = [], [], []
    for _ in range(rounds):
        runs += 1
        bare.append(run_job({**ref, "kind": "bare"})["median_s"])
        kit.append(run_job({**ref, "kind": "kit", "output_dir": f"{tmp}/out{runs}"})["median_s"])
        cached.append(
            run_job({**ref, "kind": "kit", "cache_latents": True, "output_dir": f"{tmp}/out{runs}c"})["median_s"]
        )
        print(f"bare {bare[-1]:.3f}  kit {kit[-1]:.3f}  kit+cached latents {cached[-1]:.3f}", flush=True)
    overhead = {
        "bare_s": statistics.median(bare),
        "kit_s": statistics.median(kit),
        "kit_cached_latents_s": statistics.median(cached),
        "rounds": rounds,
        "bare_runs": bare,
        "kit_runs": kit,
        "kit_cached_runs": cached,
    }
    overhead["kit_over_bare"] = overhead["kit_s"] / overhead["bare_s"]
    overhead["cached_over_bare"] = overhead["kit_cached_latents_s"] / overhead["bare_s"]
    return overhead


def overhead_text(overhead: dict, rounds: int) -> str:
    """The overhead check as one sentence under the table (empty when it did not run)."""
    if not overhead:
        return ""
    return (
        f"\nKit step vs bare loop (unet+te, prior, fp32 AdamW, median of {rounds} "
        "alternating runs): "
        f"bare {overhead['bare_s']:.3f} s, kit {overhead['kit_s']:.3f} s "
        f"({overhead['kit_over_bare']:.3f}x), kit with cached latents "
        f"{overhead['kit_cached_latents_s']:.3f} s ({overhead['cached_over_bare']:.3f}x).\n"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the matrix (and the bare-loop comparison on the CPU), print and save the results."""
    args = parse_args(argv)
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return 0
    if args.full_sd and not torch.cuda.is_available():
        print("--full-sd needs a CUDA GPU and none is visible here; nothing measured.")
        return 1
    resolution = args.resolution or (512 if args.full_sd else 64)
    os.environ.setdefault("COURSE_RUNS_DIR", tempfile.mkdtemp(prefix="bench-runs-"))
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        base = prepare(Path(tmp), args.full_sd, resolution)
        matrix = GPU_MATRIX if args.full_sd else CPU_MATRIX
        rows = run_matrix(base, matrix, args.steps, tmp)
        overhead = {} if args.full_sd else overhead_check(base, args.steps, args.rounds, tmp, len(matrix))
    label = "gpu" if args.full_sd else "cpu"
    title = (
        f"{'SD 1.5 architecture, random weights' if args.full_sd else 'tiny model'}, {resolution} px, "
        f"batch {base['train_batch_size'] if not args.full_sd else 1} + class images, {args.steps} steps "
        f"({rows[0].get('device', '?')})"
    )
    result = {
        "title": title,
        "resolution": resolution,
        "steps": args.steps,
        "rows": rows,
        "overhead": overhead,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"train_step_{label}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(rows, title) + overhead_text(overhead, args.rounds)
    (RESULTS / f"train_step_{label}.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
