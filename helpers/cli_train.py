"""``python -m helpers train`` and ``python -m helpers textual-inversion``: the notebooks' code, from a shell.

Both read a YAML config (``--config``), apply ``--set key=value`` overrides and run. For
several GPUs start them with accelerate, which sets up one process per GPU:

    accelerate launch --num_processes 2 -m helpers train --config configs/dog.yaml
"""

from __future__ import annotations

import argparse
import logging

from .config import ConfigError, TrainConfig, load_config, parse_overrides


def _parser(prog: str, description: str) -> argparse.ArgumentParser:
    """The options both commands share."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--config", help="YAML file of settings (keys as in the config dataclass)")
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one setting, e.g. --set max_train_steps=800 (repeatable)",
    )
    parser.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (logs stay on)")
    return parser


def _config(args, cls):
    """The config from ``--config`` and ``--set`` (only ``--set`` when there is no file)."""
    if args.config:
        return load_config(args.config, cls, args.overrides)
    return cls.from_dict(parse_overrides(args.overrides))


def train_main(argv: list[str]) -> int:
    """DreamBooth from the command line; returns the exit code (2 for a configuration error)."""
    from .training import train_dreambooth

    parser = _parser("python -m helpers train", "DreamBooth fine-tuning of Stable Diffusion")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = _config(args, TrainConfig)
    except ConfigError as err:
        parser.error(str(err))
    result = train_dreambooth(config, stop_after_steps=args.stop_after_steps, progress=not args.no_progress)
    print(f"{'reused' if result.reused else 'trained'}: {result.output_dir}")
    return 0


def textual_inversion_main(argv: list[str]) -> int:
    """Textual inversion from the command line; with ``--then-dreambooth FILE.yaml`` DreamBooth follows."""
    from .textual_inversion import (
        TextualInversionConfig,
        dreambooth_after_textual_inversion,
        train_textual_inversion,
    )

    parser = _parser(
        "python -m helpers textual-inversion", "Textual inversion (optionally followed by DreamBooth)"
    )
    parser.add_argument(
        "--then-dreambooth",
        metavar="FILE.yaml",
        default=None,
        help="a DreamBooth config to run from the new model ('{token}' in prompts = the new word)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        config = _config(args, TextualInversionConfig)
        then = load_config(args.then_dreambooth, TrainConfig) if args.then_dreambooth else None
    except ConfigError as err:
        parser.error(str(err))
    result = train_textual_inversion(config, progress=not args.no_progress)
    print(
        f"{'reused' if result.reused else 'trained'}: {result.output_dir} "
        f"(embedding {result.embedding_path.name})"
    )
    if then is not None:
        db = dreambooth_after_textual_inversion(result, then)
        print(f"{'reused' if db.reused else 'trained'}: {db.output_dir}")
    return 0


if __name__ == "__main__":  # torchrun / accelerate launch can also run this file directly
    import sys

    commands = {"train": train_main, "textual-inversion": textual_inversion_main}
    sys.exit(commands[sys.argv[1]](sys.argv[2:]))
