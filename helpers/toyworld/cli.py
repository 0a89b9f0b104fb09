"""The ``toyworld`` commands of the kit's command line (see :mod:`helpers.cli`): render, subjects,
train-evaluator, train-autoencoder, ae-error, pretrain, evaluate, latent-mean."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from helpers.base.fields import COUNT, FILE_OUT, FOLDER_IN, FOLDER_OUT, RATE, SEED, SHARE, Field
from helpers.base.paths import DATA_DIR
from helpers.errors import LearnerError
from helpers.toyworld import world
from helpers.toyworld.autoencoder import (
    AutoencoderConfig,
    autoencoder_error,
    load_vae,
    reconstruction_figure,
    train_autoencoder,
)
from helpers.toyworld.evaluator import train_and_save
from helpers.toyworld.metrics import evaluate_base_model
from helpers.toyworld.pretrain import PretrainConfig, add_latent_mean, pretrain, write_facts
from helpers.toyworld.subjects import write_subjects
from helpers.train.sampling import SCHEDULERS

TOY_DIR = DATA_DIR / "toyworld"
# The values each kind of option takes (argparse types): a mistake is one message before anything runs.
INT, SEED_ARG, RATE_ARG, SHARE_ARG = COUNT.arg(int), SEED.arg(int), RATE.arg(float), SHARE.arg(float)
MINUTES = Field(low=0, low_open=True).arg(float)
MODEL_IN, DIR_OUT, FILE = FOLDER_IN.arg(str, "folder"), FOLDER_OUT.arg(str, "folder"), FILE_OUT.arg(str, "file")


def _render(args: argparse.Namespace) -> int:
    """Write a grid of random scenes and print their captions."""
    from PIL import Image

    n, cols = args.count, min(args.count, 8)
    rows = (n + cols - 1) // cols
    grid = Image.new("RGB", (cols * world.IMAGE_SIZE, rows * world.IMAGE_SIZE))
    for i in range(n):
        image, text, _ = world.sample_pair(args.seed + i)
        grid.paste(image, ((i % cols) * world.IMAGE_SIZE, (i // cols) * world.IMAGE_SIZE))
        print(f"{args.seed + i}\t{text}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out)
    print(f"wrote {args.out}")
    return 0


def _subjects(args: argparse.Namespace) -> int:
    """Write the subjects' instance images and manifest."""
    print(f"wrote {write_subjects(args.out_dir)}")
    return 0


def _train_evaluator(args: argparse.Namespace) -> int:
    """Train the evaluator and save its weights and accuracy report."""
    report = train_and_save(
        args.out_dir,
        steps=args.steps,
        seed=args.seed,
        init_dir=args.init,
        vae_dir=args.vae,
        lr=args.lr,
        pool=args.pool,
        redraw_dir=args.redraw,
        pixel_labels=args.pixel_labels,
        wash=args.wash,
    )
    print(json.dumps({k: v for k, v in report.items() if k.startswith("accuracy")}, indent=2))
    return 0


def _train_autoencoder(args: argparse.Namespace) -> int:
    """Train (or resume) the broad autoencoder."""
    changes = {
        "steps": args.steps,
        "vae_channels": tuple(args.channels) if args.channels else None,
        "init_dir": args.init,
        "crop": args.crop,
        "batch": args.batch,
        "lr": args.lr,
        "decoder_only": args.decoder_only or None,
    }
    cfg = AutoencoderConfig(seed=args.seed, **{k: v for k, v in changes.items() if v is not None})
    done = train_autoencoder(args.out_dir, minutes=args.minutes, cfg=cfg)
    print("finished" if done else f"paused; run the same command again to resume from {args.out_dir}/checkpoint")
    return 0


def _ae_error(args: argparse.Namespace) -> int:
    """Measure a VAE's reconstruction error on the subjects' photos and fresh renders."""
    vae = load_vae(args.model)
    report = autoencoder_error(vae, renders=args.renders, start=args.seed)
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps({"model": args.model, **report}, indent=2) + "\n")
    if args.figure:
        print(f"wrote {reconstruction_figure(vae, args.figure)}")
    return 0


def _pretrain(args: argparse.Namespace) -> int:
    """Pretrain (or resume) the base model."""
    if args.init is not None and args.vae is not None:
        raise LearnerError("--init already brings the model's own VAE: leave out --vae.")
    if args.init is not None and args.unet_steps is None:
        raise LearnerError("--init goes on training a finished model: say for how many steps with --unet-steps.")
    cfg = PretrainConfig(vae_dir=args.vae, init_dir=args.init)
    if args.open_captions is not None:
        cfg.open_caption_share = args.open_captions
    if args.unet_steps is not None:
        cfg.unet_steps = args.unet_steps
    done = pretrain(args.out_dir, minutes=args.minutes, cfg=cfg, keep_checkpoint=args.keep_checkpoint)
    print(
        "finished" if done else f"paused; run the same command again to resume from {args.out_dir}/checkpoint"
    )
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    """Judge a model's generations on held-out prompts with the evaluator."""
    report = evaluate_base_model(
        args.model,
        n_prompts=args.prompts,
        steps=args.steps,
        guidance=args.guidance,
        seed=args.seed,
        grid_path=args.grid,
        scheduler=args.scheduler,
        data_mean=not args.plain_noise,
    )
    print(json.dumps(report, indent=2))
    if args.save:
        write_facts(args.model, heldout_evaluation=report)
    return 0


def _latent_mean(args: argparse.Namespace) -> int:
    """Record the training latents' mean in a saved model's VAE config."""
    print("latents_mean:", add_latent_mean(args.model, args.images))
    return 0


def add_commands(sub) -> None:
    """Declare the ToyWorld subcommands on ``sub`` (an ``add_subparsers`` object); each sets ``func``."""
    _add_world_commands(sub)
    _add_part_commands(sub)
    _add_model_commands(sub)


def _add_world_commands(sub) -> None:
    """``render`` and ``subjects``: pictures of the world, and the subjects' photos."""
    p = sub.add_parser("render", help="render random scenes into a grid image")
    p.add_argument("out", type=FILE, help="PNG file to write")
    p.add_argument("--count", type=INT, default=32)
    p.add_argument("--seed", type=SEED_ARG, default=0)
    p.set_defaults(func=_render)

    p = sub.add_parser("subjects", help="write the subjects' instance images and manifest")
    p.add_argument("out_dir", nargs="?", type=DIR_OUT, default=str(TOY_DIR / "subjects"))
    p.set_defaults(func=_subjects)


def _add_part_commands(sub) -> None:
    """``train-evaluator`` and ``train-autoencoder``: the two networks the model and its scores rest on."""
    p = sub.add_parser("train-evaluator", help="train the evaluator network")
    p.add_argument("out_dir", nargs="?", type=DIR_OUT, default=str(TOY_DIR / "evaluator"))
    p.add_argument("--steps", type=INT, default=None, help="training steps (default: the shipped recipe's)")
    p.add_argument("--seed", type=SEED_ARG, default=0)
    p.add_argument("--init", type=MODEL_IN, default=None, help="fine-tune the evaluator in this folder")
    p.add_argument(
        "--vae", type=MODEL_IN, default=None, help="pipeline folder whose VAE reconstructions join the training pool"
    )
    p.add_argument(
        "--redraw", type=MODEL_IN, default=None, help="pipeline folder whose img2img redraws of the renders join the pool"
    )
    p.add_argument("--lr", type=RATE_ARG, default=None)
    p.add_argument("--pool", type=INT, default=None, help="renders in the training pool")
    p.add_argument(
        "--pixel-labels",
        action="store_true",
        help="label the --vae reconstructions by the pixel check: a subject whose feature was lost is 'none'",
    )
    p.add_argument(
        "--wash", type=SHARE_ARG, default=0.0, help="wash half the training images out by up to this much (0.3 ships)"
    )
    p.set_defaults(func=_train_evaluator)

    p = sub.add_parser("train-autoencoder", help="train the autoencoder on broad renders (resumes by itself)")
    p.add_argument("out_dir", type=DIR_OUT, help="the VAE folder to write")
    p.add_argument("--minutes", type=MINUTES, default=None, help="stop (resumable) after this many minutes")
    p.add_argument("--steps", type=INT, default=None, help="optimiser steps (default: the recipe's)")
    p.add_argument(
        "--channels",
        type=Field(low=1, high=1024).arg(int),
        nargs="+",
        default=None,
        help="VAE block widths (default: 16 32 64); wider than --init grows that network, keeping its function",
    )
    p.add_argument("--init", type=MODEL_IN, default=None, help="start from this VAE folder's weights")
    p.add_argument("--crop", type=Field(low=8, high=64, multiple_of=8).arg(int), default=None, help="crop side in pixels (64: whole images)")
    p.add_argument("--batch", type=Field(low=8, multiple_of=8).arg(int), default=None, help="crops per step (a multiple of 8)")
    p.add_argument("--lr", type=RATE_ARG, default=None)
    p.add_argument("--seed", type=SEED_ARG, default=0)
    p.add_argument(
        "--decoder-only",
        action="store_true",
        help="train only the decoder of the --init autoencoder: its latents, and a model trained on them, stay valid",
    )
    p.set_defaults(func=_train_autoencoder)


def _add_model_commands(sub) -> None:
    """``ae-error``, ``pretrain``, ``evaluate`` and ``latent-mean``: the miniature Stable Diffusion."""
    p = sub.add_parser("ae-error", help="a VAE's mean absolute reconstruction error (0-255) on subjects and renders")
    p.add_argument("model", nargs="?", type=MODEL_IN, default=str(TOY_DIR / "model"), help="a pipeline folder or a VAE folder")
    p.add_argument("--renders", type=INT, default=1000, help="fresh pretraining renders to measure")
    p.add_argument("--seed", type=SEED_ARG, default=8_000_000, help="the first render's seed")
    p.add_argument("--figure", type=FILE, default=None, help="also save subject photos above their reconstructions (PNG)")
    p.add_argument("--out", type=FILE, default=None, help="also write the report to this JSON file")
    p.set_defaults(func=_ae_error)

    p = sub.add_parser("pretrain", help="pretrain the miniature Stable Diffusion (resumes by itself)")
    p.add_argument("out_dir", nargs="?", type=DIR_OUT, default=str(TOY_DIR / "model"))
    p.add_argument("--minutes", type=MINUTES, default=None, help="stop (resumable) after this many minutes")
    p.add_argument("--keep-checkpoint", action="store_true", help="keep OUT_DIR/checkpoint when finished")
    p.add_argument(
        "--vae", type=MODEL_IN, default=None, help="a VAE folder from train-autoencoder to use instead of training one (phase 1)"
    )
    p.add_argument(
        "--open-captions",
        type=SHARE_ARG,
        default=None,
        metavar="SHARE",
        help="share of scenes whose caption leaves out colour and/or place (default: the shipped recipe's)",
    )
    p.add_argument(
        "--init",
        type=MODEL_IN,
        default=None,
        metavar="MODEL",
        help="go on training a model made by this command: its weights, then --unet-steps more steps and the polish",
    )
    p.add_argument(
        "--unet-steps", type=INT, default=None, help="steps of the main UNet phase (default: the shipped recipe's)"
    )
    p.set_defaults(func=_pretrain)

    p = sub.add_parser("evaluate", help="score a model's generations on held-out prompts")
    p.add_argument("model", nargs="?", type=MODEL_IN, default=str(TOY_DIR / "model"))
    p.add_argument("--prompts", type=INT, default=64)
    p.add_argument("--steps", type=INT, default=25)
    p.add_argument("--guidance", type=Field(low=0, high=50).arg(float), default=7.5)
    p.add_argument("--seed", type=SEED_ARG, default=0)
    p.add_argument("--scheduler", default=None, choices=list(SCHEDULERS), help="a sampler name (pndm, ddim, dpm++ ...); default: the model's")
    p.add_argument("--grid", type=FILE, default=None, help="also save the generations as a grid PNG")
    p.add_argument("--save", action="store_true", help="record the result in the model's kit_model.json")
    p.add_argument(
        "--plain-noise", action="store_true", help="start from plain Gaussian noise, not from the data's mean"
    )
    p.set_defaults(func=_evaluate)

    p = sub.add_parser(
        "latent-mean", help="record the training latents' mean in a model's VAE (the recipe does it itself)"
    )
    p.add_argument("model", nargs="?", type=MODEL_IN, default=str(TOY_DIR / "model"))
    p.add_argument("--images", type=INT, default=None, help="training scenes to encode (default: all)")
    p.set_defaults(func=_latent_mean)
