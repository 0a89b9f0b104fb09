"""The course's disk budget, notebook by notebook, computed from its configurations (nothing is downloaded).

``python -m helpers budget --profile gpu`` prints, in course order, what earlier notebooks kept
in the course home, the notebook's own peak there, the Trash it leaves, and their sum; then
``course peak: X GiB, kept: Y GiB``. Where the files go follows :mod:`helpers.base.storage`:

- ``colab``: the course home is on Google Drive (the quota counts). A ``gpu`` run's checkpoints and
  final weights go to the machine's own disk; only the runs a later notebook loads again are copied
  to Drive, once. The kit deletes nothing on Drive, so it leaves no Trash.
- ``kaggle`` and ``local``: everything is in the course home (on Kaggle ``/kaggle/working``, of which
  at most 20 GB are saved). A finished run's checkpoint is deleted when it ends, and the weights no
  later notebook needs when the notebook ends (deleting there frees the space at once).

The goal on ``gpu``: a free 15 GB Drive that is already a third full (about 10 GiB free) holds the
course, so the peak and what stays are each at most :data:`DRIVE_GOAL_GIB`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from helpers.base.home import GIB
from helpers.profiles import get_profile
from helpers.study import arms
from helpers.train.config import config_for_profile
from helpers.train.dreambooth import run_bytes
from helpers.train.models import model_bytes

DRIVE_GOAL_GIB = 8.0
SAMPLED_IMAGES_PER_RUN = 40  # sample grids during training and the comparison images (saved as PNG)
NOTEBOOKS = ("00", "01", "02", "03", "04", "05", "06", "07")


@dataclass(frozen=True)
class Arm:
    """One run of a notebook, as its budget sees it."""

    label: str
    study_lr: float
    study_steps: int
    face: bool = False
    prior: bool = False
    changes: dict = field(default_factory=dict)
    same_as: str = ""  # "NN/label": the same run as an earlier notebook's, reused when its weights were kept
    keep_for: str = ""  # the later notebooks that load this run again: its weights are kept
    text_inversion: bool = False  # a textual-inversion run: its text encoder (fp32) and tokenizer, kept


# Each notebook's runs on its default path, with the study's values (as the notebooks declare them).
PLAN: dict[str, list[Arm]] = {
    "00": [],
    "01": [Arm("high LR", *arms.OVERFIT_RUN, keep_for="03"), Arm("low LR", arms.LOW_LR, arms.OBJECT_STEPS)],
    "02": [Arm("with prior", arms.FACE_LR, arms.FACE_STEPS, face=True, prior=True, keep_for="04, 05"),
           Arm("without prior", arms.FACE_LR, arms.FACE_STEPS, face=True)],
    "03": [Arm("overfit run", *arms.OVERFIT_RUN, same_as="01/high LR")],
    "04": [Arm("frozen text encoder", arms.FACE_LR, arms.FACE_STEPS, face=True, prior=True, same_as="02/with prior"),
           Arm("text encoder trained", arms.FACE_LR, arms.FACE_STEPS, face=True, prior=True,
               changes={"train_text_encoder": True}, keep_for="05")],
    "05": [Arm("textual inversion", arms.TI_LR, arms.TI_STEPS, text_inversion=True),
           Arm("TI + DreamBooth", arms.DB_AFTER_TI_LR, arms.DB_AFTER_TI_STEPS, face=True, prior=True),
           Arm("DreamBooth", arms.FACE_LR, arms.FACE_STEPS, face=True, prior=True, same_as="02/with prior"),
           Arm("DreamBooth + text encoder", arms.FACE_LR, arms.FACE_STEPS, face=True, prior=True,
               changes={"train_text_encoder": True}, same_as="04/text encoder trained")],
    "06": [Arm("EMA", arms.LOW_LR, arms.OBJECT_STEPS, changes={"use_ema": True})],
    "07": [Arm("full", arms.LOW_LR, arms.OBJECT_STEPS, same_as="01/low LR"),
           Arm(f"LoRA rank {arms.LORA_RANK}", arms.LORA_LR, arms.OBJECT_STEPS,
               changes={"use_lora": True, "rank": arms.LORA_RANK}, keep_for="07's prompt box")],
}


@dataclass
class NotebookBudget:
    """One notebook's line of the budget, in bytes."""

    notebook: str
    kept_before: int  # in the course home when it starts (earlier notebooks' results, kept weights, Trash)
    peak: int  # the most the notebook itself has in the course home at one time
    trash: int  # what it deletes on Drive (still counted for 30 days); 0 elsewhere
    machine_peak: int  # the most it has on the machine's own disk outside the course home (checkpoints ...)
    kept_after: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Kept before + peak + Trash: what the course home must have room for during this notebook."""
        return self.kept_before + self.peak + self.trash


def arm_bytes(profile_name: str, arm: Arm) -> dict[str, int]:
    """What one run writes, by kind (see :func:`helpers.train.dreambooth.run_bytes`), from its configuration alone."""
    profile = get_profile(profile_name)
    config = config_for_profile(profile, arm.study_lr, arm.study_steps, faces=arm.face,
                                instance_prompt="a photo of sks person" if arm.face else "a photo of sks toy",
                                with_prior_preservation=arm.prior, **arm.changes)
    parts = run_bytes(config)
    if arm.text_inversion:  # the text encoder with its new word (float32) and the tokenizer; tiny checkpoints
        model = profile.pretrained_model_name_or_path
        parts["weights"] = model_bytes(model, ["text_encoder"] if profile.save_trained_parts else None)
        parts["checkpoints"] = 0
    parts["samples"] = SAMPLED_IMAGES_PER_RUN * profile.resolution**2 * 3 // 2
    return parts


def course_budget(profile: str = "gpu", platform: str = "colab") -> list[NotebookBudget]:
    """Simulate the course in order on ``platform`` and return each notebook's budget line."""
    weights_apart = platform == "colab" and get_profile(profile).save_trained_parts
    release = get_profile(profile).save_trained_parts  # cpu and smoke keep every run as saved
    kept: dict[str, int] = {}  # "NN/label" -> bytes of weights still in the course home
    home_small = 0  # samples, logs, scores, class images: never deleted
    classes_made: set[bool] = set()
    lines = []
    for notebook in NOTEBOOKS:
        before = home_small + sum(kept.values())
        peak = 0  # above `before`
        now = 0  # this notebook's bytes in the course home
        machine_peak = 0
        trained_here: dict[str, int] = {}
        notes = []
        for arm in PLAN[notebook]:
            key = f"{notebook}/{arm.label}"
            if arm.same_as and arm.same_as in kept:
                notes.append(f"{arm.label}: reuses {arm.same_as}")
                continue
            parts = arm_bytes(profile, arm)
            small = parts["samples"] + (parts["classes"] if arm.prior and arm.face not in classes_made else 0)
            if arm.prior:
                classes_made.add(arm.face)
            in_home = arm.text_inversion or not weights_apart
            if in_home:  # checkpoint and weights in the course home while it trains
                peak = max(peak, now + small + parts["checkpoints"] + parts["weights"])
                now += small + parts["weights"]  # its checkpoint goes when it ends (gpu)
                if not release:
                    now += parts["checkpoints"]
            else:
                machine_peak = max(machine_peak, sum(trained_here.values()) + parts["checkpoints"] + parts["weights"])
                now += small
                peak = max(peak, now)
            home_small += small
            trained_here[key] = parts["weights"]
            if arm.keep_for or arm.text_inversion or not release:
                kept[key] = parts["weights"]
                if weights_apart and not arm.text_inversion:  # copied to Drive once at the notebook's end
                    now += parts["weights"]
                    peak = max(peak, now)
                notes.append(f"{arm.label}: weights kept" + (f" for {arm.keep_for}" if arm.keep_for else ""))
            elif in_home:
                now -= parts["weights"]  # released when the notebook ends
        lines.append(NotebookBudget(notebook, before, peak, 0, machine_peak, home_small + sum(kept.values()), notes))
    return lines


def format_budget(lines: list[NotebookBudget], profile: str, platform: str) -> str:
    """The budget as a table, ending with ``course peak: X GiB, kept: Y GiB``."""
    where = {"colab": "Google Drive (course home) and the machine's disk",
             "kaggle": "/kaggle/working (Kaggle saves at most 20 GB)", "local": "the course home"}[platform]
    heading = (f"Disk budget of the course, profile {profile}, on {platform}: {where}. Estimated from the "
               "configurations (Stable Diffusion 1.x sizes where the model is not downloaded).")
    out = [heading, "",
           "| notebook | kept before | own peak | Trash left | sum | machine disk | kept after | notes |",
           "|---|---|---|---|---|---|---|---|"]
    for b in lines:
        out.append(f"| {b.notebook} | {b.kept_before / GIB:.2f} | {b.peak / GIB:.2f} | {b.trash / GIB:.2f} | "
                   f"{b.total / GIB:.2f} | {b.machine_peak / GIB:.2f} | {b.kept_after / GIB:.2f} | "
                   f"{'; '.join(b.notes)} |")
    peak = max(b.total for b in lines)
    out += ["", "GiB. machine disk: checkpoints and weights on the runtime's own disk (lost at a disconnect).",
            f"course peak: {peak / GIB:.2f} GiB, kept: {lines[-1].kept_after / GIB:.2f} GiB"]
    return "\n".join(out)
