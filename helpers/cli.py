"""The kit's command line, every command declared here: ``course-kit <command>`` or ``python -m helpers <command>``.

Training commands take their settings from a YAML file (``--config``), then ``--set key=value``,
then options spelled as in diffusers' training scripts (``--learning_rate 2e-6``). A mistake
the learner can fix prints one message and exits with status 2; ``--debug`` shows the traceback.
For several GPUs start a training command with accelerate, one process per GPU::

    accelerate launch --num_processes 2 -m helpers train --config configs/dog.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence

from helpers.course.budget import course_budget, format_budget
from helpers.course.doctor import diagnose
from helpers.course.workshop import add_commands as add_workshop_commands
from helpers.errors import LearnerError
from helpers.share.export import export_kohya_lora, export_pipeline, export_single_file
from helpers.share.hub import push_run
from helpers.study.findings_table import write_findings_column
from helpers.toyworld.cli import add_commands as add_toyworld_commands
from helpers.train.config import TrainConfig, load_config, parse_overrides
from helpers.train.dreambooth import train_dreambooth
from helpers.train.models import TinySpec, build_tiny_model
from helpers.train.textual_inversion import (
    TextualInversionConfig,
    dreambooth_after_textual_inversion,
    train_textual_inversion,
)

PROG = "course-kit"
FIELD_PREFIX = "field:"  # argparse destinations of the per-field training options


# ------------------------------------------------------------------------------------------ the commands


def _doctor(args: argparse.Namespace) -> int:
    """Print what this machine can do."""
    print(diagnose())
    return 0


def _tiny_model(args: argparse.Namespace) -> int:
    """Build a tiny random Stable Diffusion into a folder."""
    path = build_tiny_model(args.out_dir, spec=TinySpec(sample_size=args.resolution), seed=args.seed)
    print(f"tiny Stable Diffusion saved to {path} (load it with StableDiffusionPipeline.from_pretrained)")
    return 0


def _export(args: argparse.Namespace) -> int:
    """A finished run as one file for AUTOMATIC1111 / ComfyUI."""
    if args.kohya:
        path = export_kohya_lora(args.run_dir, args.kohya, half=args.half)
    elif args.pipeline:
        path = export_pipeline(args.run_dir, args.pipeline, half=args.half, ema=args.ema)
    else:
        path = export_single_file(args.run_dir, args.single_file, half=args.half)
    print(f"wrote {path}")
    return 0


def _push(args: argparse.Namespace) -> int:
    """A finished run to the Hugging Face Hub."""
    print(f"uploaded to {push_run(args.run_dir, args.repo_id, private=not args.public)}")
    return 0


def _train(args: argparse.Namespace) -> int:
    """DreamBooth from the command line."""
    result = train_dreambooth(config_from_args(args, TrainConfig), stop_after_steps=args.stop_after_steps,
                              progress=not args.no_progress)
    print(f"{'reused' if result.reused else 'trained'}: {result.output_dir}")
    return 0


def _textual_inversion(args: argparse.Namespace) -> int:
    """Textual inversion, then (with ``--then-dreambooth``) DreamBooth from its model."""
    config = config_from_args(args, TextualInversionConfig)
    then = load_config(args.then_dreambooth, TrainConfig) if args.then_dreambooth else None
    result = train_textual_inversion(config, progress=not args.no_progress, stop_after_steps=args.stop_after_steps)
    print(f"{'reused' if result.reused else 'trained'}: {result.output_dir} (embedding {result.embedding_path.name})")
    if then is not None:
        db = dreambooth_after_textual_inversion(result, then)
        print(f"{'reused' if db.reused else 'trained'}: {db.output_dir}")
    return 0


def _budget(args: argparse.Namespace) -> int:
    """What the course writes, notebook by notebook, against a free Drive or Kaggle's output limit."""
    print(format_budget(course_budget(args.profile, args.platform), args.profile, args.platform))
    return 0


def _findings_table(args: argparse.Namespace) -> int:
    """A profile's column of the README's findings table, from the notebooks' saved score tables."""
    cells = write_findings_column(args.home, args.readme, args.out, args.profile)
    for experiment, text in cells.items():
        print(f"{experiment}: {text}")
    if args.readme:
        print(f"filled the {args.profile!r} column of {args.readme}")
    return 0


# ------------------------------------------------------------------------------------------- the options


def config_from_args(args: argparse.Namespace, cls: type):
    """The config from ``--config``, then ``--set key=value``, then ``--<field> value`` (later ones win)."""
    values = load_config(args.config, cls).to_dict() if args.config else {}
    values.update(parse_overrides(args.overrides))
    values.update({k.removeprefix(FIELD_PREFIX): v for k, v in vars(args).items() if k.startswith(FIELD_PREFIX)})
    return cls.from_dict(values)


def add_config_options(parser: argparse.ArgumentParser, cls: type) -> None:
    """``--config``, ``--set`` and one option per field of ``cls``, named as in the training script."""
    parser.add_argument("--config", metavar="FILE.yaml", help="settings file (keys as the options below)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change one setting, e.g. --set max_train_steps=800 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the log is still written)")
    parser.add_argument("--stop-after-steps", type=int, default=None, help=argparse.SUPPRESS)
    group = parser.add_argument_group(
        "settings", "each one as in diffusers' training script; unset ones come from --config or the defaults")
    for f in dataclasses.fields(cls):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        kind = str(f.type)  # the annotation's text: "float", "bool", "list[str]" ...
        shape = {"nargs": "+", "metavar": "X"} if kind.startswith("list") else (
            {"nargs": "?", "const": "true", "metavar": "BOOL"} if kind == "bool" else {"metavar": kind.upper()})
        group.add_argument(f"--{f.name}", dest=FIELD_PREFIX + f.name, default=argparse.SUPPRESS,
                           help=f"default: {default!r}", **shape)


def _wide_help(prog: str) -> argparse.HelpFormatter:
    """Help with the defaults beside the option names (one line per setting)."""
    return argparse.HelpFormatter(prog, max_help_position=44, width=100)


def build_parser() -> argparse.ArgumentParser:
    """Every command of the kit, in one tree."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    parser = argparse.ArgumentParser(prog=PROG, parents=[common], description=(
        "The DreamBooth course kit from a shell (also: python -m helpers). "
        "Run `%(prog)s COMMAND --help` for a command's options."))
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_tool_commands(sub, common)
    _add_training_commands(sub, common)
    add_workshop_commands(sub, common)
    return parser


def _add_tool_commands(sub, common: argparse.ArgumentParser) -> None:
    """``doctor``, ``tiny-model``, ``export``, ``push``, ``budget`` and ``findings-table``."""
    p = sub.add_parser("doctor", parents=[common], help="versions, device, fp16/bf16 and 8-bit Adam support, advice")
    p.set_defaults(func=_doctor)

    p = sub.add_parser("tiny-model", parents=[common], help="build a tiny random Stable Diffusion into OUT_DIR")
    p.add_argument("out_dir", help="folder to write the pipeline to")
    p.add_argument("--resolution", type=int, default=32, help="image size the model is built for (default 32)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_tiny_model)

    p = sub.add_parser("export", parents=[common], help="a finished run as one .safetensors file for AUTOMATIC1111 / ComfyUI")
    p.add_argument("run_dir", metavar="RUN", help="the run folder")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--single-file", metavar="OUT", help="a full run as one Stable Diffusion checkpoint")
    target.add_argument("--kohya", metavar="OUT", help="a LoRA run's adapter in kohya's layout")
    target.add_argument("--pipeline", metavar="OUT", help="any finished run as a whole diffusers folder "
                        "(StableDiffusionPipeline.from_pretrained(OUT))")
    p.add_argument("--half", action="store_true", help="float16 weights (half the size)")
    p.add_argument("--ema", action="store_true", help="the EMA weights (with --pipeline)")
    p.set_defaults(func=_export)

    p = sub.add_parser("push", parents=[common], help="upload a finished run to the Hugging Face Hub (private unless --public)")
    p.add_argument("run_dir", metavar="RUN", help="the run folder")
    p.add_argument("repo_id", help="your-name/model-name")
    p.add_argument("--public", action="store_true", help="create the repository as public")
    p.set_defaults(func=_push)

    p = sub.add_parser("budget", parents=[common],
                       help="disk the course needs per notebook (kept, peak, Trash), from its configurations")
    p.add_argument("--profile", default="gpu", choices=["gpu", "cpu", "smoke"], help="default gpu")
    p.add_argument("--platform", default="colab", choices=["colab", "kaggle", "local"],
                   help="where the course home is: colab (Google Drive), kaggle (/kaggle/working) or local")
    p.set_defaults(func=_budget)

    p = sub.add_parser("findings-table", parents=[common],
                       help="the findings table's column of a profile, from the score tables the notebooks saved")
    p.add_argument("--home", default=None, help="the course home (default: the one the notebooks use)")
    p.add_argument("--profile", default="gpu", help="whose tables to use (default gpu)")
    p.add_argument("--readme", default=None, metavar="README.md", help="fill the profile's column of this README")
    p.add_argument("--out", default=None, metavar="FILE.md", help="write every table, with intervals, here")
    p.set_defaults(func=_findings_table)


def _add_training_commands(sub, common: argparse.ArgumentParser) -> None:
    """``train``, ``textual-inversion`` and ``toyworld``: the commands that train."""
    usage = "%(prog)s [--config FILE.yaml] [--set KEY=VALUE ...] [--SETTING VALUE ...] [--debug]"
    p = sub.add_parser("train", parents=[common], help="DreamBooth: fine-tune a model on a subject's photos",
                       description="DreamBooth fine-tuning of Stable Diffusion.", usage=usage,
                       formatter_class=_wide_help)
    add_config_options(p, TrainConfig)
    p.set_defaults(func=_train)

    p = sub.add_parser("textual-inversion", parents=[common], help="textual inversion (then DreamBooth from it)",
                       description="Textual inversion: learn one new word for the subject.", usage=usage,
                       formatter_class=_wide_help)
    add_config_options(p, TextualInversionConfig)
    p.add_argument("--then-dreambooth", metavar="FILE.yaml", default=None,
                   help="a DreamBooth config to run from the new model ('{token}' in prompts = the new word)")
    p.set_defaults(func=_textual_inversion)

    p = sub.add_parser("toyworld", parents=[common], help="the miniature world: render, subjects, evaluator, model",
                       description="ToyWorld: the miniature world of the cpu profile.")
    add_toyworld_commands(p.add_subparsers(dest="toyworld_command", required=True, metavar="COMMAND"))


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns the exit status (2 for a mistake the learner can fix)."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return args.func(args)
    except LearnerError as err:
        if getattr(args, "debug", False):
            raise
        print(f"{PROG} {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
