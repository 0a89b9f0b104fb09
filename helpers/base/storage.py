"""Where a run's weights live, and which of them a course keeps (the Drive budget).

A full-size run writes gigabytes: its checkpoints (weights, optimizer state) and its trained
UNet. A free Google Drive holds 15 GB, and a file deleted through Colab's Drive mount is not
gone: it moves to Drive's Trash, which still counts against the quota for 30 days. Overwriting
a file in place keeps its earlier version as a revision, and revisions of uploaded files also
count against the quota (they go after 30 days or 100 versions). Sources:

- https://support.google.com/drive/answer/2375194 (what counts against storage: "Even items moved
  to Trash take up storage space"; deleting file versions is listed as a way to free space)
- https://developers.google.com/workspace/drive/api/guides/delete (a deleted file goes to Trash
  until it is emptied, or for 30 days)
- https://developers.google.com/drive/manage-revisions (an overwritten uploaded file keeps its
  older revisions for about 30 days or up to 100 of them)
- https://github.com/googlecolab/colabtools/issues/2147 and
  https://github.com/minimaxir/gpt-2-simple/issues/155 (deleting through the Colab mount sends
  files to Trash, and the mount cannot empty it)

So no way of rotating checkpoints on Drive is free of Trash. The kit therefore keeps the bulky
part of a run apart from the run folder when the course home is on Drive and the run saves only
its trained parts (the ``gpu`` profile): checkpoints and final weights go to the machine's own
disk (:data:`LOCAL_WEIGHTS_ROOT`), while the run folder on Drive keeps what is small (its
configuration, loss log, sample grids, sampled comparisons and scores) and a note of where the
weights are. A restarted runtime keeps that disk; a disconnect gives a new machine whose disk is
empty, and costs the steps trained since the run started (the finished runs' figures still redraw
from the samples on Drive). The weights of a run that a later notebook samples again are copied
to Drive once with :func:`keep_weights`, written once, never rotated.

Everywhere else (Kaggle, a local machine, the ``cpu`` and ``smoke`` profiles) the weights stay in
the run folder, as before; :func:`release_weights` deletes the ``gpu`` weights no later notebook needs.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from helpers.base.home import GIB, course_home, drive_folder
from helpers.base.paths import display_path
from helpers.errors import LearnerError

LOCAL_WEIGHTS_ENV = "COURSE_LOCAL_WEIGHTS"  # a folder: put gpu weights there (tests; also honoured off Colab)
LOCAL_WEIGHTS_ROOT = Path("/content/dreambooth-course-weights")  # Colab's own disk, outside Drive
WEIGHTS_NOTE = "weights_location.json"  # in a run folder whose weights live elsewhere
PACKED_NOTE = "packed_without_weights.json"  # in a finished run a workshop pack brought without its weights
TRAIN_PACKED_ENV = "COURSE_TRAIN_PACKED"  # "1": train such runs again when a notebook asks for their weights
CHECKPOINTS = "checkpoints"  # in a run folder, or where its weights live
SAMPLES_DIR = "samples"  # in a run folder: the validation grids saved while training
COMPARISONS_DIR = "comparisons"  # in a run folder: images sampled for figures, by their settings
# What a finished full run keeps: the trained parts, their EMA averages, and the base-model note.
LORA_FILE = "pytorch_lora_weights.safetensors"  # diffusers' name for a LoRA adapter in a run folder
WEIGHT_ENTRIES = ("unet", "text_encoder", "unet_ema", "text_encoder_ema", LORA_FILE, "base_model.json")


class WeightsNotHereError(LearnerError, FileNotFoundError):
    """A finished run's weights are not on this machine (they were on an earlier runtime's disk)."""


def home_on_drive() -> bool:
    """True when the course home lies on Colab's mounted Google Drive."""
    try:
        course_home().resolve().relative_to(drive_folder().resolve())
    except ValueError:
        return False
    return True


def local_weights_root() -> Path | None:
    """Where gpu weights go instead of the run folder: ``$COURSE_LOCAL_WEIGHTS``, Colab's disk with a Drive home, or None."""
    if os.environ.get(LOCAL_WEIGHTS_ENV):
        return Path(os.environ[LOCAL_WEIGHTS_ENV]).expanduser()
    return LOCAL_WEIGHTS_ROOT if home_on_drive() else None


def place_weights(output_dir: Path, config) -> Path:
    """Decide where this run's checkpoints and weights go; leave a note in the run folder when that is elsewhere.

    Only runs that save their trained parts alone (``save_trained_parts``, the ``gpu`` profile) move.
    """
    root = local_weights_root() if getattr(config, "save_trained_parts", False) else None
    if root is None:
        return output_dir
    try:
        relative = output_dir.resolve().relative_to(course_home().resolve())
    except ValueError:  # a run folder outside the course home stays as it is
        return output_dir
    folder = root / relative
    folder.mkdir(parents=True, exist_ok=True)
    (output_dir / WEIGHTS_NOTE).write_text(json.dumps({"folder": str(folder)}) + "\n")
    return folder


def weights_dir(output_dir: str | Path) -> Path:
    """The folder that holds a run's weights and checkpoints: the run folder, or where its note points."""
    output_dir = Path(output_dir)
    note = output_dir / WEIGHTS_NOTE
    if not note.is_file():
        return output_dir
    folder = json.loads(note.read_text())["folder"]
    return output_dir if folder == "." else Path(folder)


def checkpoints_folder(output_dir: str | Path) -> Path:
    """A run's ``checkpoints/`` folder (on the machine's disk when its weights live there)."""
    return weights_dir(output_dir) / CHECKPOINTS


def has_weights(folder: Path) -> bool:
    """True when ``folder`` holds a loadable model: a full pipeline, or trained parts with their base note.

    Trained parts are a UNet (DreamBooth), a text encoder alone (textual inversion) or a LoRA adapter.
    """
    parts = any((folder / name).is_dir() for name in ("unet", "text_encoder")) or (folder / LORA_FILE).is_file()
    return (folder / "model_index.json").is_file() or (parts and (folder / "base_model.json").is_file())


def packed_without_weights(output_dir: str | Path) -> bool:
    """True for a run a workshop pack brought without weights (its figures redraw from saved samples), unless ``COURSE_TRAIN_PACKED=1``."""
    return (Path(output_dir) / PACKED_NOTE).is_file() and os.environ.get(TRAIN_PACKED_ENV) != "1"


def find_weights(output_dir: str | Path) -> Path:
    """The folder to load a finished run from; raises :class:`WeightsNotHereError` with what to do when gone."""
    output_dir = Path(output_dir)
    for folder in (weights_dir(output_dir), output_dir):
        if has_weights(folder):
            return folder
    if packed_without_weights(output_dir):
        raise WeightsNotHereError(
            f"{display_path(output_dir)} came from the workshop pack without its weights: its figures redraw from "
            f"the saved samples. To sample it anew, set os.environ['{TRAIN_PACKED_ENV}'] = '1' and run the "
            "notebook's training cell again (it trains this run: minutes on a GPU).")
    raise WeightsNotHereError(
        f"The weights of {display_path(output_dir)} are not on this machine: they were kept on the disk of an "
        "earlier runtime (the course keeps on Drive only the runs a later notebook samples again). Its figures "
        "redraw from the saved samples; to sample it anew, train it again with "
        "train_dreambooth(config, retrain_missing_weights=True) (same seed, same weights)."
    )


def folder_bytes(path: Path) -> int:
    """Bytes of every file under ``path`` (0 when it does not exist)."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.exists() else 0


def keep_weights(output_dir: str | Path) -> Path:
    """Copy a finished run's final weights into its run folder (on Drive), once, so a later notebook finds them.

    Returns:
        the run folder, which now holds the weights (a run whose weights are there already is left alone).
    """
    output_dir = Path(output_dir)
    source = weights_dir(output_dir)
    if source == output_dir:
        return output_dir
    if not has_weights(source):
        raise WeightsNotHereError(f"{display_path(output_dir)}: no finished weights at {source} to keep.")
    for name in WEIGHT_ENTRIES:
        path = source / name
        if path.is_dir():
            shutil.copytree(path, output_dir / name, dirs_exist_ok=True)
        elif path.is_file():
            shutil.copy2(path, output_dir / name)
    (output_dir / WEIGHTS_NOTE).write_text(json.dumps({"folder": "."}) + "\n")
    shutil.rmtree(source)  # the machine's disk: deleting there leaves no Trash
    return output_dir


def release_weights(runs: dict[str, str | Path], keep: dict[str, str] | None = None) -> dict[str, str]:
    """After a notebook has sampled and scored its runs: keep the weights later notebooks reuse, free the rest.

    Only runs saved as trained parts (``gpu``) are touched; ``cpu`` and ``smoke`` runs keep everything.
    A kept run on a Drive home is copied to Drive once; a released one is deleted from the machine's
    disk (or from the run folder elsewhere). Weights already on Drive are never deleted by the kit:
    that would put them in Drive's Trash, which counts against the quota for 30 days.

    Args:
        runs: ``{label: run folder}`` of this notebook.
        keep: ``{label: why}`` for the runs a later notebook loads again ("notebook 03 samples it").
    Returns:
        ``{label: what happened}``, also printed, one line per run.
    """
    keep = keep or {}
    done = {}
    for label, run in runs.items():
        run = Path(run)
        folder = weights_dir(run)
        if not (run / WEIGHTS_NOTE).is_file() and not (folder / "base_model.json").is_file():
            continue  # a full pipeline (cpu, smoke) or a LoRA adapter: small, kept as saved
        if (folder / "model_index.json").exists() or (folder / "adapter_config.json").exists():
            continue
        if folder == run and (run / LORA_FILE).is_file():
            continue  # an adapter saved in the run folder: a few MB, kept as saved
        if not has_weights(folder):
            done[label] = "weights not on this machine (a notebook that needs them trains the run again)"
            continue
        size = folder_bytes(folder / "unet") + folder_bytes(folder / "text_encoder") + folder_bytes(
            folder / "unet_ema") + folder_bytes(folder / "text_encoder_ema")
        if label in keep:
            keep_weights(run)
            if (run / CHECKPOINTS).is_dir() and not home_on_drive():  # a finished run needs no checkpoint
                shutil.rmtree(run / CHECKPOINTS)
            done[label] = f"kept ({size / GIB:.1f} GiB): {keep[label]}"
        elif folder == run and home_on_drive():
            done[label] = "left on Drive (deleting it there would only move it to the Trash)"
        else:
            for name in (*WEIGHT_ENTRIES, CHECKPOINTS):
                path = folder / name
                if path.is_dir():
                    shutil.rmtree(path)
            done[label] = f"weights freed ({size / GIB:.1f} GiB); samples and scores stay"
    for label, what in done.items():
        print(f"{label}: {what}")
    if not done:
        print("Nothing to free: these runs saved whole models, which this profile keeps (they are small).")
    return done
