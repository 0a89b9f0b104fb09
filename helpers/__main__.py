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


def _export(args) -> int:
    from .export import ExportError, export_kohya_lora, export_single_file

    try:
        if args.kohya:
            path = export_kohya_lora(args.run_dir, args.kohya, half=args.half)
        else:
            path = export_single_file(args.run_dir, args.single_file, half=args.half)
    except ExportError as err:
        print(err, file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


def _push(args) -> int:
    from .hub_push import PushError, push_run

    try:
        print(f"uploaded to {push_run(args.run_dir, args.repo_id, private=not args.public)}")
    except PushError as err:
        print(err, file=sys.stderr)
        return 1
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
    export = sub.add_parser("export", help="a finished run for AUTOMATIC1111 / ComfyUI (one .safetensors file)")
    export.add_argument("run_dir", metavar="RUN", help="the run folder")
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--single-file", metavar="OUT", help="a full run as one Stable Diffusion checkpoint")
    target.add_argument("--kohya", metavar="OUT", help="a LoRA run's adapter in kohya's layout")
    export.add_argument("--half", action="store_true", help="float16 weights (half the size)")
    export.set_defaults(run=_export)
    push = sub.add_parser("push", help="upload a finished run to the Hugging Face Hub (private unless --public)")
    push.add_argument("run_dir", metavar="RUN", help="the run folder")
    push.add_argument("repo_id", help="your-name/model-name")
    push.add_argument("--public", action="store_true", help="create the repository as public")
    push.set_defaults(run=_push)
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
