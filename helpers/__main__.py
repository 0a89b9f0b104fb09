"""The kit's command line: ``python -m helpers <command> ...`` (``--help`` lists the commands)."""

from __future__ import annotations

import argparse
import logging
import sys


def _doctor(args) -> int:
    from .doctor import diagnose

    print(diagnose())
    return 0


def _tiny_model(args) -> int:
    from .models import TinySpec, build_tiny_model

    spec = TinySpec(sample_size=args.resolution)
    path = build_tiny_model(args.out_dir, spec=spec, seed=args.seed)
    print(f"tiny Stable Diffusion saved to {path} (load it with StableDiffusionPipeline.from_pretrained)")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Parse the command and run it; commands with their own options take the rest of the line."""
    argv = list(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    delegated = {
        "train": ("cli_train", "train_main"),
        "textual-inversion": ("cli_train", "textual_inversion_main"),
        "toyworld": ("toyworld.cli", "main"),
    }
    if argv and argv[0] in delegated:
        import importlib

        module, func = delegated[argv[0]]
        return getattr(importlib.import_module(f"helpers.{module}"), func)(argv[1:])

    parser = argparse.ArgumentParser(prog="python -m helpers", description="DreamBooth course kit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")
    sub.add_parser("doctor", help="versions, device, precision and 8-bit Adam support, advice").set_defaults(
        run=_doctor
    )
    tiny = sub.add_parser("tiny-model", help="build a tiny random Stable Diffusion into OUT_DIR")
    tiny.add_argument("out_dir")
    tiny.add_argument("--resolution", type=int, default=32, help="image size the model is built for")
    tiny.add_argument("--seed", type=int, default=0)
    tiny.set_defaults(run=_tiny_model)
    for name, help_text in [
        ("train", "DreamBooth: --config FILE.yaml [--set key=value ...]"),
        ("textual-inversion", "textual inversion (then DreamBooth from it)"),
        ("toyworld", "the miniature world: render, subjects, train-evaluator, pretrain, evaluate"),
    ]:
        sub.add_parser(name, help=help_text, add_help=False)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
