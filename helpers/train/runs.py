"""A training run's life cycle, shared by every trainer (DreamBooth, textual inversion, ...).

A trainer reads as four moves, each a call into this module:

1. :meth:`Run.open`: check everything a learner can get wrong (before anything is written),
   then reuse a finished run with the same configuration, refuse a folder that holds another
   run, or create the folder; start accelerate.
2. :meth:`Run.resume` and :meth:`Run.steps`: continue from the last complete checkpoint, and
   count the steps with a progress bar.
3. :meth:`Run.end_step`: after each optimizer update, average the losses over all processes,
   stop every process together on a NaN, log, checkpoint and sample.
4. :meth:`Run.finish`: save the outputs, write the run record, mark the run done.

Checkpoints are written under a temporary name and renamed when complete, so a run killed while
it writes one (out of memory, a closed laptop, a Colab disconnect) never leaves a checkpoint that
looks complete; resuming skips an incomplete one and says so.
"""

from __future__ import annotations

import csv
import json
import math
import os
import platform
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from helpers.base.paths import display_path
from helpers.base.storage import (
    WEIGHTS_NOTE,
    checkpoints_folder,
    find_weights,
    packed_without_weights,
    place_weights,
)
from helpers.errors import LearnerError
from helpers.train.config import ConfigError, config_hash, load_config, resolve_output_dir, save_config
from helpers.train.optim import check_mixed_precision, peak_memory_bytes

LOG_COLUMNS = ["step", "loss", "instance_loss", "prior_loss", "lr"]
RECORD_NAME = "run.json"
LOG_FILE = "logs/train_log.csv"  # inside the run folder
CONFIG_NAME = "config.yaml"
PARTIAL_SUFFIX = ".partial"  # a checkpoint being written
DONE_NAME = "done.json"  # a finished run's mark (its hash); helpers.course.cleanup reads it too
CHECKPOINT_MARK = "checkpoint.json"  # a complete checkpoint's mark (its step)


class NonFiniteLossError(LearnerError, RuntimeError):
    """The loss became NaN or infinite; the run was stopped."""


class RunExistsError(LearnerError, RuntimeError):
    """The output folder holds a different run; the kit never overwrites one silently."""


class MissingCheckpointError(LearnerError, FileNotFoundError):
    """The checkpoint to resume from is not there, or was not written to the end."""


@dataclass
class RunResult:
    """What a training run left behind."""

    output_dir: Path
    losses: dict[str, list[float]]  # the log's columns: step, loss, instance_loss, prior_loss, lr
    reused: bool  # True when a finished run with the same configuration was found instead of training
    config: object
    record: dict = field(default_factory=dict)
    models: dict | None = None  # with keep_models=True: the trained models, still in memory
    step_seconds: list[float] = field(default_factory=list)  # wall time of each step of this call


def finished_result(config, kind: str) -> RunResult:
    """The :class:`RunResult` of a run another process trained: its log and record, read from its folder."""
    output_dir = resolve_output_dir(config, kind)
    record_file = output_dir / RECORD_NAME
    record = json.loads(record_file.read_text()) if record_file.is_file() else {}
    return RunResult(output_dir, read_log(output_dir / LOG_FILE), False, config, record)


# ---------------------------------------------------------------------------------------- the folder


def run_status(output_dir: Path, run_hash: str, config_cls: type) -> str:
    """``"done"`` (finished, same config), ``"partial"`` (unfinished), ``"empty"``, ``"abandoned"`` or ``"other"``.

    ``"abandoned"`` is a folder where a start failed before the first step (a config and nothing
    trained): it never blocks the corrected re-run.
    """
    if not output_dir.exists() or not any(output_dir.iterdir()):
        return "empty"
    config_file = output_dir / CONFIG_NAME
    if not config_file.exists():
        return "other"
    try:
        same = config_hash(load_config(config_file, config_cls)) == run_hash
    except ConfigError:
        same = False
    if same:
        return "done" if (output_dir / DONE_NAME).exists() else "partial"
    return "abandoned" if never_trained(output_dir) else "other"


def weights_present(output_dir: Path) -> bool:
    """True when a finished run's weights can be loaded on this machine."""
    try:
        find_weights(output_dir)
    except FileNotFoundError:
        return False
    return True


def never_trained(output_dir: Path) -> bool:
    """True when a run folder holds only what a failed start writes (its config, an empty log)."""
    kit_files = {CONFIG_NAME, "logs", WEIGHTS_NOTE}
    if any(p.name not in kit_files for p in output_dir.iterdir()):
        return False
    return not read_log(output_dir / LOG_FILE)["step"]


# ------------------------------------------------------------------------------------------- the log


def read_log(path: Path) -> dict[str, list[float]]:
    """The training log's columns as float lists (empty prior_loss cells become NaN)."""
    if not path.exists():
        return {k: [] for k in LOG_COLUMNS}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return {k: [float(r[k]) if r[k] not in ("", None) else math.nan for r in rows] for k in LOG_COLUMNS}


def trim_log(path: Path, last_step: int) -> None:
    """Drop log rows after ``last_step`` (a resumed run rewrites them)."""
    if not path.exists():
        return
    with open(path, newline="") as f:
        rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, LOG_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


class LossLogger:
    """Per-step CSV log (and TensorBoard when it is installed), written by the main process only."""

    def __init__(self, output_dir: Path, active: bool):
        self.path = output_dir / LOG_FILE
        self.active = active
        self.tb = None
        if not active:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists()
        self.file = open(self.path, "a", newline="")  # noqa: SIM115 (kept open for the whole run)
        self.writer = csv.writer(self.file)
        if new:
            self.writer.writerow(LOG_COLUMNS)
        try:
            from torch.utils.tensorboard import SummaryWriter  # optional: tensorboard may not be installed

            self.tb = SummaryWriter(str(output_dir / "logs" / "tensorboard"))
        except ImportError:
            pass

    def log(self, step: int, values: dict[str, float]) -> None:
        """Append one row (a missing or None value leaves its cell empty)."""
        if not self.active:
            return
        self.writer.writerow(
            [step] + ["" if values.get(k) is None else f"{values[k]:.6g}" for k in LOG_COLUMNS[1:]]
        )
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                if v is not None:
                    self.tb.add_scalar(f"train/{k}", v, step)

    def close(self) -> None:
        """Flush and close the files."""
        if self.active and not self.file.closed:
            self.file.close()
            if self.tb is not None:
                self.tb.close()


# ----------------------------------------------------------------------------------------- checkpoints


def checkpoint_step(path: Path) -> int:
    """The step a checkpoint folder was saved at (``checkpoint-200`` -> 200)."""
    return int(path.name.split("-")[-1])


def is_complete(checkpoint: Path) -> bool:
    """True for a checkpoint written to the end (its mark file is there)."""
    return (checkpoint / CHECKPOINT_MARK).is_file()


def list_checkpoints(output_dir: Path, complete: bool = True) -> list[Path]:
    """Checkpoint folders of a run, oldest first: complete ones only, or (``complete=False``) every one."""
    folder = checkpoints_folder(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("checkpoint-*") if p.is_dir() and p.name.split("-")[-1].isdigit()]
    return sorted((p for p in found if is_complete(p) or not complete), key=checkpoint_step)


def incomplete_checkpoints(output_dir: Path) -> list[Path]:
    """Checkpoints a killed run left half-written (a temporary folder, or one without its mark)."""
    folder = checkpoints_folder(output_dir)
    partial = sorted(folder.glob(f"*{PARTIAL_SUFFIX}")) if folder.is_dir() else []
    return partial + [p for p in list_checkpoints(output_dir, complete=False) if not is_complete(p)]


def find_checkpoint(output_dir: Path, which: str) -> Path | None:
    """The checkpoint to resume from: ``"latest"`` (complete ones only) or ``"checkpoint-N"``; None when none."""
    found = list_checkpoints(output_dir)
    if which == "latest":
        return found[-1] if found else None
    path = checkpoints_folder(output_dir) / which
    if not path.is_dir() or not is_complete(path):
        names = ", ".join(p.name for p in found) or "none"
        state = "is incomplete (the run was stopped while writing it)" if path.is_dir() else "does not exist"
        raise MissingCheckpointError(
            f"Checkpoint {which!r} in {display_path(checkpoints_folder(output_dir))} {state}. Complete checkpoints: "
            f"{names}. Set resume_from_checkpoint to one of them, or to 'latest'."
        )
    return path


def save_checkpoint(accelerator, output_dir: Path, step: int, total_limit: int) -> Path:
    """Save the full training state (weights, optimizer, LR schedule, EMA, RNG), keeping ``total_limit``.

    The state goes to ``checkpoint-N.partial`` and is renamed to ``checkpoint-N`` once complete.
    """
    folder = checkpoints_folder(output_dir)
    final, partial = folder / f"checkpoint-{step}", folder / f"checkpoint-{step}{PARTIAL_SUFFIX}"
    if accelerator.is_main_process:
        for stale in incomplete_checkpoints(output_dir):
            shutil.rmtree(stale)
        if total_limit > 0:  # make room first: the disk never holds more than total_limit checkpoints
            kept = list_checkpoints(output_dir)
            for old in kept[: max(0, len(kept) - total_limit + 1)]:
                shutil.rmtree(old)
        folder.mkdir(parents=True, exist_ok=True)
    accelerator.wait_for_everyone()
    accelerator.save_state(str(partial))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        (partial / CHECKPOINT_MARK).write_text(json.dumps({"step": step}) + "\n")
        if final.exists():  # a run restarted from an earlier step passes this step again
            shutil.rmtree(final)
        os.replace(partial, final)
    accelerator.wait_for_everyone()
    return final


def resume_state(accelerator, output_dir: Path, resume: str) -> tuple[int, Path | None]:
    """Load the checkpoint ``resume`` names (``"latest"``, ``"checkpoint-N"`` or ``""``).

    Returns:
        the step to start at and the checkpoint loaded (None when starting from step 0). The
        checkpoint restores weights, optimizer, LR schedule, EMA and RNG; the CSV log is cut to match.
    """
    for broken in incomplete_checkpoints(output_dir) if resume else []:
        accelerator.print(f"Skipping {broken.name}: incomplete (the run was stopped while writing it).")
    checkpoint = find_checkpoint(output_dir, resume) if resume else None
    first_step = 0
    if checkpoint is not None:
        accelerator.load_state(str(checkpoint))
        first_step = checkpoint_step(checkpoint)
        accelerator.print(f"Resuming from {checkpoint.name} at step {first_step}.")
    elif not resume and list_checkpoints(output_dir):  # an interrupted run of this same configuration
        accelerator.print(
            f"{display_path(output_dir)} has checkpoints from an interrupted run of this configuration; "
            "starting again from step 0. Set resume_from_checkpoint: latest to continue from the last one."
        )
    if accelerator.is_main_process:
        trim_log(output_dir / LOG_FILE, first_step)
    return first_step, checkpoint


# ------------------------------------------------------------------------------- accelerate and optimizer


def make_accelerator(config, output_dir: Path):
    """An ``Accelerator`` for this run (fresh in a single process, so a notebook can switch precision)."""
    from accelerate import Accelerator  # heavy: imported when a run starts
    from accelerate.state import AcceleratorState
    from accelerate.utils import ProjectConfiguration

    check_mixed_precision(config.mixed_precision)
    if AcceleratorState._shared_state and AcceleratorState().num_processes == 1:
        AcceleratorState._reset_state()  # a notebook may train several times with different precisions
    # Several processes without CUDA (torchrun / accelerate launch on CPUs): accelerate then uses gloo.
    cpu_processes = not torch.cuda.is_available() and int(os.environ.get("WORLD_SIZE", "1")) > 1
    return Accelerator(
        cpu=cpu_processes,
        mixed_precision=config.mixed_precision,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        project_config=ProjectConfiguration(project_dir=str(output_dir)),
    )


def scaled_learning_rate(config, num_processes: int) -> float:
    """``learning_rate``, times the total batch (batch x accumulation x processes) when ``scale_lr`` is on."""
    factor = config.train_batch_size * config.gradient_accumulation_steps * num_processes
    return config.learning_rate * (factor if config.scale_lr else 1)


def make_lr_scheduler(config, optimizer, num_processes: int):
    """The LR schedule; accelerate steps it once per process per update, hence the ``num_processes`` factors."""
    from diffusers.optimization import get_scheduler

    return get_scheduler(
        config.lr_scheduler,
        optimizer,
        num_warmup_steps=config.lr_warmup_steps * num_processes,
        num_training_steps=config.max_train_steps * num_processes,
    )


def make_ema(accelerator, model, decay: float, with_config: bool = True):
    """An EMA of ``model``'s weights on the run's device, saved and restored with every checkpoint.

    Args:
        with_config: keep the model's class and config so the average can be saved as a model folder.
    """
    from diffusers.training_utils import EMAModel

    raw = accelerator.unwrap_model(model)
    extra = {"model_cls": type(raw), "model_config": raw.config} if with_config else {}
    ema = EMAModel(raw.parameters(), decay=decay, **extra)
    ema.to(accelerator.device)
    accelerator.register_for_checkpointing(ema)
    return ema


def environment_record(accelerator) -> dict:
    """Library versions and the device, for the run record."""
    import accelerate
    import diffusers
    import transformers

    device = accelerator.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "accelerate": accelerate.__version__,
    }
    try:
        versions["bitsandbytes"] = version("bitsandbytes")
    except PackageNotFoundError:
        versions["bitsandbytes"] = None
    return {
        "versions": versions,
        "device": str(device),
        "device_name": name,
        "num_processes": accelerator.num_processes,
        "mixed_precision": accelerator.mixed_precision,
    }


# ------------------------------------------------------------------------------------------------ the run


class Run:
    """One training run, from its folder to its record; see the module's docstring for the order of calls."""

    def __init__(self, config, output_dir: Path, run_hash: str, nan_help: str):
        self.config, self.output_dir, self.hash, self.nan_help = config, output_dir, run_hash, nan_help
        self.reused = False
        self.accelerator = None
        self.logger: LossLogger | None = None
        self.first_step, self.last_step, self.checkpoint = 0, config.max_train_steps, None
        self.start_time = time.time()
        self.step_seconds: list[float] = []
        self._tick = 0.0
        self._last_saved = -1

    @classmethod
    def open(
        cls, config, kind: str, checks: Callable[[], None] | None = None, nan_help: str = "",
        retrain_missing_weights: bool = False,
    ) -> Run:
        """Check, then reuse, refuse or create the run folder; start accelerate unless the run is reused.

        Args:
            kind: the folder under ``runs/`` for default output folders (``"train"``, ``"textual_inversion"``).
            checks: everything a learner can get wrong (folders, model, disk); run before anything is written.
            nan_help: the message of :class:`NonFiniteLossError`, with ``{value}``, ``{step}`` and ``{checkpoints}``.
            retrain_missing_weights: train a finished run again when its weights are not on this machine
                (a ``gpu`` run on Colab whose weights stayed on an earlier runtime's disk).
        """
        output_dir, run_hash = resolve_output_dir(config, kind), config_hash(config)
        run = cls(config, output_dir, run_hash, nan_help)
        status = run_status(output_dir, run_hash, type(config))
        if (status == "done" and retrain_missing_weights and not weights_present(output_dir)
                and not packed_without_weights(output_dir)):  # a workshop pack's run redraws from its samples
            print(f"The weights of {display_path(output_dir)} are not on this machine; training it again "
                  "(same configuration and seeds, so the same weights).")
            (output_dir / DONE_NAME).unlink()
            status = "partial"
        if status == "done":  # a notebook re-run: the same configuration already finished here
            print(f"Reusing the finished run in {display_path(output_dir)} (same configuration, hash "
                  f"{run_hash}); not retraining.")
            run.reused = True
            return run
        if checks is not None:
            checks()
        if status == "other":
            raise RunExistsError(
                f"{output_dir} holds another run (a different configuration or files the kit did not "
                "write). Leave output_dir empty to get a folder named after this configuration, choose a "
                "new folder, or delete it."
            )
        if status == "abandoned":
            print(f"Replacing what a failed start left in {display_path(output_dir)} (nothing was trained).")
            shutil.rmtree(output_dir)
        run.accelerator = make_accelerator(config, output_dir)
        if run.accelerator.device.type == "cuda":  # the record's peak is this run's, not an earlier one's in the kernel
            torch.cuda.reset_peak_memory_stats(run.accelerator.device)
        if run.accelerator.is_main_process:
            save_config(config, output_dir / CONFIG_NAME)
            if kind == "train":  # DreamBooth weights: the run folder, or the machine's disk (helpers.base.storage)
                place_weights(output_dir, config)
        run.accelerator.wait_for_everyone()
        return run

    @property
    def num_processes(self) -> int:
        """Number of processes (GPUs) taking part."""
        return self.accelerator.num_processes

    def resume(self, stop_after_steps: int | None = None) -> int:
        """Load the checkpoint ``resume_from_checkpoint`` asks for and open the log; returns the first step.

        Args:
            stop_after_steps: end after this step as if interrupted (to demonstrate and test resuming).
        """
        self.first_step, self.checkpoint = resume_state(
            self.accelerator, self.output_dir, self.config.resume_from_checkpoint
        )
        self.last_step = min(self.config.max_train_steps, stop_after_steps or self.config.max_train_steps)
        self.logger = LossLogger(self.output_dir, self.accelerator.is_main_process)
        return self.first_step

    def steps(self, desc: str, progress: bool = True) -> Iterator[int]:
        """The steps still to train (0-based), with a progress bar on the main process."""
        from tqdm.auto import tqdm

        self.bar = tqdm(range(self.first_step, self.last_step), desc=desc,
                        disable=not (progress and self.accelerator.is_main_process))
        self._tick = time.perf_counter()
        yield from self.bar

    def end_step(
        self, step: int, losses: dict[str, torch.Tensor | None], lr: float,
        sample: Callable[[str], object] | None = None,
    ) -> float:
        """Bookkeeping after update ``step``: average over processes, NaN stop, log, checkpoint, samples.

        Args:
            losses: ``{"loss": ..., "instance_loss": ..., "prior_loss": ...}`` of this process (None: not logged).
            sample: called with a name (``"step-000200"``) every ``validation_steps`` updates.
        Returns:
            the loss, averaged over every process (every process gets the same value).
        """
        names = [k for k, v in losses.items() if v is not None]
        values = torch.stack([losses[k].detach().float().reshape(()) for k in names]).to(self.accelerator.device)
        if self.num_processes > 1:
            values = self.accelerator.reduce(values, "mean")
        logged = dict(zip(names, values.tolist()))  # one device sync per step
        loss = logged["loss"]
        if not math.isfinite(loss):  # the reduced value: every process stops at the same step
            self.logger.close()
            checkpoints = display_path(checkpoints_folder(self.output_dir))
            raise NonFiniteLossError(self.nan_help.format(value=loss, step=step + 1, checkpoints=checkpoints))
        self.logger.log(step + 1, {**logged, "lr": lr})
        self.bar.set_postfix(loss=f"{loss:.4f}")
        every = self.config.checkpointing_steps
        if every and (step + 1) % every == 0:
            self.save_checkpoint(step + 1)
        every = getattr(self.config, "validation_steps", 0)
        if sample is not None and self.config.validation_prompts and every and (step + 1) % every == 0:
            sample(f"step-{step + 1:06d}")
        self.step_seconds.append(time.perf_counter() - self._tick)  # logging and checkpoints included
        self._tick = time.perf_counter()
        return loss

    def save_checkpoint(self, step: int) -> Path:
        """Save the whole training state at ``step`` (see :func:`save_checkpoint`)."""
        self._last_saved = step
        return save_checkpoint(self.accelerator, self.output_dir, step, self.config.checkpoints_total_limit)

    def stopped_early(self) -> bool:
        """After the loop: True (with a checkpoint to resume from) when ``stop_after_steps`` ended it early."""
        self.logger.close()
        if self.last_step >= self.config.max_train_steps:
            return False
        if self._last_saved != self.last_step:
            self.save_checkpoint(self.last_step)
        self.accelerator.end_training()
        self.accelerator.print(f"Stopped after step {self.last_step} of {self.config.max_train_steps}; "
                               "resume with resume_from_checkpoint: latest.")
        return True

    def finish(self, save_outputs: Callable[[], None], record: dict) -> dict:
        """Save the outputs (main process), write ``run.json`` and ``done.json``; returns the full record.

        Args:
            save_outputs: writes the trained weights and samples into the run folder.
            record: what this trainer adds to the common record (optimizer, tokens ...).
        """
        self.accelerator.wait_for_everyone()
        full = {}
        if self.accelerator.is_main_process:
            save_outputs()
            seconds = sorted(self.step_seconds)
            full = {
                "hash": self.hash,
                "seed": self.config.seed,
                "steps": self.config.max_train_steps,
                **record,
                "wall_time_s": round(time.time() - self.start_time, 2),
                "median_step_s": round(seconds[len(seconds) // 2], 4) if seconds else None,
                "peak_memory_bytes": peak_memory_bytes(self.accelerator.device),
                "resumed_from": self.checkpoint.name if self.checkpoint is not None else None,
                **environment_record(self.accelerator),
            }
            (self.output_dir / RECORD_NAME).write_text(json.dumps(full, indent=2) + "\n")
            (self.output_dir / DONE_NAME).write_text(json.dumps({"hash": self.hash}) + "\n")
        self.accelerator.wait_for_everyone()
        self.accelerator.end_training()
        return full

    def result(self, record: dict | None = None, models: dict | None = None) -> RunResult:
        """The :class:`RunResult` of this run (a reused run reads its log and record back)."""
        if record is None and (self.output_dir / RECORD_NAME).exists() and self.reused:
            record = json.loads((self.output_dir / RECORD_NAME).read_text())
        return RunResult(self.output_dir, read_log(self.output_dir / LOG_FILE), self.reused, self.config,
                         record or {}, models, self.step_seconds)
