"""The kit's command line, every command declared here: ``course-kit <command>`` or ``python -m helpers <command>``.

Training commands take their settings from a YAML file (``--config``), then ``--set key=value``,
then options spelled as in diffusers' training scripts (``--learning_rate 2e-6``). A mistake
the learner can fix prints one message and exits with status 2; ``--debug`` shows the traceback.
For several GPUs, one process per GPU: ``train --gpus 2`` starts them itself (as
``accelerate launch --num_processes 2 -m helpers train --config configs/dog.yaml`` would).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from helpers.base.fields import FILE_IN, FILE_OUT, FOLDER_IN, FOLDER_OUT, SEED, Field
from helpers.course.budget import course_budget, format_budget
from helpers.course.doctor import diagnose
from helpers.course.workshop import add_commands as add_workshop_commands
from helpers.errors import LearnerError
from helpers.share.export import export_kohya_lora, export_pipeline, export_single_file
from helpers.share.hub import push_run
from helpers.study import claims
from helpers.study.findings_table import write_findings_column
from helpers.toyworld.cli import add_commands as add_toyworld_commands
from helpers.train.config import TrainConfig, load_config, parse_overrides, resolve_output_dir
from helpers.train.dreambooth import check_inputs as check_dreambooth_inputs
from helpers.train.dreambooth import train_dreambooth_on_gpus
from helpers.train.models import TinySpec, build_tiny_model
from helpers.train.textual_inversion import (
    TextualInversionConfig,
    dreambooth_after_textual_inversion,
    train_textual_inversion,
)
from helpers.train.textual_inversion import check_inputs as check_ti_inputs

PROG = "course-kit"
FIELD_PREFIX = "field:"  # argparse destinations of the per-field training options
# argparse types of the tool commands' arguments: a wrong path or number is one message before anything runs
RUN_DIR, DIR_OUT = FOLDER_IN.arg(str, "folder"), FOLDER_OUT.arg(str, "folder")
FILE_READ, FILE_WRITE = FILE_IN.arg(str, "file"), FILE_OUT.arg(str, "file")


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
    """DreamBooth from the command line (``--check``: only check the settings; ``--gpus N``: in N processes)."""
    config = config_from_args(args, TrainConfig)
    if args.check:
        check_dreambooth_inputs(config)
        return _checked(args, resolve_output_dir(config, "train"))
    result = train_dreambooth_on_gpus(config, args.gpus, progress=not args.no_progress,
                                      stop_after_steps=args.stop_after_steps)
    print(f"{'reused' if result.reused else 'trained'}: {result.output_dir}")
    return 0


def _textual_inversion(args: argparse.Namespace) -> int:
    """Textual inversion, then (with ``--then-dreambooth``) DreamBooth from its model."""
    config = config_from_args(args, TextualInversionConfig)
    then = load_config(args.then_dreambooth, TrainConfig) if args.then_dreambooth else None
    if args.check:
        check_ti_inputs(config)
        return _checked(args, resolve_output_dir(config, "textual_inversion"))
    result = train_textual_inversion(config, progress=not args.no_progress, stop_after_steps=args.stop_after_steps)
    print(f"{'reused' if result.reused else 'trained'}: {result.output_dir} (embedding {result.embedding_path.name})")
    if then is not None:
        db = dreambooth_after_textual_inversion(result, then)
        print(f"{'reused' if db.reused else 'trained'}: {db.output_dir}")
    return 0


def _checked(args: argparse.Namespace, output_dir) -> int:
    """What ``--check`` prints when every setting, the photos, the model and the disk are fine."""
    print(f"{PROG} {args.command}: the settings are valid; a run would write to {output_dir} (nothing trained)")
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


def _claims(args: argparse.Namespace) -> int:
    """Each claim's status per profile, read from the committed measurements; optionally into a README."""
    if args.readme:
        path = Path(args.readme)
        if not path.is_file():
            raise LearnerError(f"{args.readme} is not a file: give the README whose claims table to renew.")
        path.write_text(claims.fill_readme(path.read_text()))
        print(f"renewed the claims table of {args.readme}")
    else:
        print(claims.table())
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
    parser.add_argument("--config", metavar="FILE.yaml", type=FILE_READ, help="settings file (keys as the options below)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="change one setting, e.g. --set max_train_steps=800 (repeatable)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar (the log is still written)")
    parser.add_argument("--check", action="store_true",
                        help="only check the settings, photos, model and disk space; train nothing, write nothing")
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


class Parser(argparse.ArgumentParser):
    """An argument parser whose mistakes are one line: what is wrong and where the help is (exit status 2)."""

    def error(self, message: str):
        """Print ``message`` on one line and exit with status 2 (argparse prints the usage too)."""
        self.exit(2, f"{self.prog}: error: {message} (`{self.prog} --help` lists the options)\n")


def build_parser() -> argparse.ArgumentParser:
    """Every command of the kit, in one tree."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the full traceback of an error")
    parser = Parser(prog=PROG, parents=[common], description=(
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
    p.add_argument("out_dir", type=DIR_OUT, help="folder to write the pipeline to")
    p.add_argument("--resolution", type=Field(low=8, high=1024, multiple_of=8).arg(int), default=32,
                   help="image size the model is built for (default 32)")
    p.add_argument("--seed", type=SEED.arg(int), default=0)
    p.set_defaults(func=_tiny_model)

    p = sub.add_parser("export", parents=[common], help="a finished run as one .safetensors file for AUTOMATIC1111 / ComfyUI")
    p.add_argument("run_dir", metavar="RUN", type=RUN_DIR, help="the run folder")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--single-file", metavar="OUT", type=FILE_WRITE, help="a full run as one Stable Diffusion checkpoint")
    target.add_argument("--kohya", metavar="OUT", type=FILE_WRITE, help="a LoRA run's adapter in kohya's layout")
    target.add_argument("--pipeline", metavar="OUT", type=DIR_OUT, help="any finished run as a whole diffusers folder "
                        "(StableDiffusionPipeline.from_pretrained(OUT))")
    p.add_argument("--half", action="store_true", help="float16 weights (half the size)")
    p.add_argument("--ema", action="store_true", help="the EMA weights (with --pipeline)")
    p.set_defaults(func=_export)

    p = sub.add_parser("push", parents=[common], help="upload a finished run to the Hugging Face Hub (private unless --public)")
    p.add_argument("run_dir", metavar="RUN", type=RUN_DIR, help="the run folder")
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
    p.add_argument("--home", type=RUN_DIR, default=None, help="the course home (default: the one the notebooks use)")
    p.add_argument("--profile", default="gpu", choices=["gpu", "cpu", "smoke"], help="whose tables to use (default gpu)")
    p.add_argument("--readme", type=FILE_READ, default=None, metavar="README.md", help="fill the profile's column of this README")
    p.add_argument("--out", type=FILE_WRITE, default=None, metavar="FILE.md", help="write every table, with intervals, here")
    p.set_defaults(func=_findings_table)

    p = sub.add_parser("claims", parents=[common],
                       help="each claim of the study and its status per profile, from benchmarks/results/")
    p.add_argument("--readme", default=None, metavar="README.md", help="renew the table between this file's markers")
    p.set_defaults(func=_claims)


def _add_training_commands(sub, common: argparse.ArgumentParser) -> None:
    """``train``, ``textual-inversion`` and ``toyworld``: the commands that train."""
    usage = "%(prog)s [--config FILE.yaml] [--set KEY=VALUE ...] [--SETTING VALUE ...] [--debug]"
    p = sub.add_parser("train", parents=[common], help="DreamBooth: fine-tune a model on a subject's photos",
                       description="DreamBooth fine-tuning of Stable Diffusion.", usage=usage,
                       formatter_class=_wide_help)
    add_config_options(p, TrainConfig)
    p.add_argument("--gpus", type=int, default=1, metavar="N",
                   help="train in N processes, one per GPU (Kaggle's 2x T4); without CUDA, N on the CPU")
    p.set_defaults(func=_train)

    p = sub.add_parser("textual-inversion", parents=[common], help="textual inversion (then DreamBooth from it)",
                       description="Textual inversion: learn one new word for the subject.", usage=usage,
                       formatter_class=_wide_help)
    add_config_options(p, TextualInversionConfig)
    p.add_argument("--then-dreambooth", metavar="FILE.yaml", type=FILE_READ, default=None,
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
