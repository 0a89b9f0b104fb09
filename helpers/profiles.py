"""Profiles: one set of code, three scales (``gpu``, ``cpu``, ``smoke``).

``gpu`` is the study itself: Stable Diffusion 1.x at 512 px with the study's batch sizes,
steps and learning rates. ``cpu`` keeps every ratio of the study (high LR = 2.5x low LR,
faces train 3x longer than objects ...) on a miniature model that trains on a laptop CPU
in minutes. ``smoke`` is for tests: a tiny random model and a handful of steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

from helpers.errors import LearnerError

PROFILE_ENV = "COURSE_PROFILE"
# JSON object of profile fields to change everywhere, e.g. '{"step_scale": 0.01}' (the GPU course check).
OVERRIDES_ENV = "COURSE_PROFILE_OVERRIDES"

# Model references that the kit resolves itself (see helpers.train.models.resolve_model).
TINY_MODEL = "kit:tiny-sd"
TOY_MODEL = "kit:toyworld"


class UnknownProfileError(LearnerError, ValueError):
    """A profile name that is not one of :data:`PROFILES`."""


@dataclass(frozen=True)
class Profile:
    """Settings that change with the hardware; the study's own values live in the notebooks.

    Study values are written once, at full scale, and mapped through :meth:`lr` and
    :meth:`steps`, so a notebook reads ``profile.lr(2e-6)`` and means "the study's low LR".
    """

    name: str
    pretrained_model_name_or_path: str
    resolution: int
    lr_scale: float  # study learning rate x lr_scale = learning rate used here
    step_scale: float  # study steps x step_scale = steps used here
    min_steps: int  # never fewer training steps than this
    train_batch_size_objects: int  # the study: 4 (2 per GPU on 2 GPUs)
    train_batch_size_faces: int  # the study: 2 (1 per GPU)
    num_class_images: int
    sample_batch_size: int
    num_inference_steps: int
    images_per_prompt: int  # samples per prompt in comparison figures
    mixed_precision: str  # "no", "fp16" or "bf16"
    use_8bit_adam: bool
    gradient_checkpointing: bool
    class_inference_steps: int = 25  # sampler steps (DPM-Solver++) per class image
    checkpointing_steps: int = 0  # 0: no intermediate checkpoints; a run resumes from the last one
    checkpoints_total_limit: int = 1
    # What a finished run saves: only its trained parts (and in float16) on gpu, where weights are GBs.
    save_trained_parts: bool = False
    save_fp16: bool = False
    # The backbones that score subjects outside ToyWorld (helpers.measure.backbones): the DreamBooth paper's.
    dino_model: str = "facebook/dino-vits16"
    clip_model: str = "openai/clip-vit-base-patch32"
    description: str = ""

    def lr(self, study_lr: float) -> float:
        """The learning rate that plays the role of ``study_lr`` in this profile."""
        return study_lr * self.lr_scale

    def steps(self, study_steps: int) -> int:
        """The number of steps that plays the role of ``study_steps`` in this profile."""
        return max(self.min_steps, round(study_steps * self.step_scale))

    def override(self, **changes) -> Profile:
        """A copy with some fields changed; an unknown field is an error that lists the valid ones."""
        valid = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise KeyError(f"Profile has no field {unknown}; valid fields are: {', '.join(sorted(valid))}")
        return dataclasses.replace(self, **changes)


PROFILES: dict[str, Profile] = {
    "gpu": Profile(
        name="gpu",
        pretrained_model_name_or_path="CompVis/stable-diffusion-v1-4",
        resolution=512,
        lr_scale=1.0,
        step_scale=1.0,
        min_steps=1,
        train_batch_size_objects=4,
        train_batch_size_faces=2,
        num_class_images=200,
        sample_batch_size=4,
        num_inference_steps=50,
        images_per_prompt=4,
        mixed_precision="fp16",
        use_8bit_adam=True,
        gradient_checkpointing=True,
        class_inference_steps=25,
        checkpointing_steps=200,  # a disconnect loses at most 200 steps
        checkpoints_total_limit=1,
        save_trained_parts=True,  # the UNet (and a trained text encoder) in float16: 1.6 GiB, not 5.2
        save_fp16=True,
        description="Stable Diffusion v1-4 at 512 px with the study's hyperparameters (a 16 GB GPU or more).",
    ),
    "cpu": Profile(
        name="cpu",
        pretrained_model_name_or_path=TOY_MODEL,
        resolution=64,
        lr_scale=100.0,
        # The study's own steps: at half of them the striped ball underfits at the low LR (subject
        # fidelity 0.57 over 5 training seeds), where the study's low-LR objects were learned.
        step_scale=1.0,
        min_steps=20,
        train_batch_size_objects=4,
        train_batch_size_faces=2,
        num_class_images=32,
        sample_batch_size=16,
        num_inference_steps=25,
        images_per_prompt=4,
        mixed_precision="no",
        use_8bit_adam=False,
        gradient_checkpointing=False,
        class_inference_steps=25,
        checkpointing_steps=100,
        checkpoints_total_limit=1,
        description="A miniature Stable Diffusion at 64 px, the study's steps at 100x its LRs (a laptop CPU, minutes).",
    ),
    "smoke": Profile(
        name="smoke",
        pretrained_model_name_or_path=TINY_MODEL,
        resolution=32,
        lr_scale=100.0,
        step_scale=0.005,
        min_steps=2,
        train_batch_size_objects=2,
        train_batch_size_faces=1,
        num_class_images=2,
        sample_batch_size=2,
        num_inference_steps=3,
        images_per_prompt=1,
        mixed_precision="no",
        use_8bit_adam=False,
        gradient_checkpointing=False,
        class_inference_steps=3,
        dino_model="kit:tiny-dino",  # tiny random backbones: the measures' code path, offline
        clip_model="kit:tiny-clip",
        description="A tiny random model and a few steps: proves the code runs (tests and CI).",
    ),
}


def default_profile_name() -> str:
    """``gpu`` where CUDA is present, else ``cpu``."""
    import torch

    return "gpu" if torch.cuda.is_available() else "cpu"


def get_profile(name: str | None = None, **overrides) -> Profile:
    """The profile named ``name``, else ``$COURSE_PROFILE``, else the default for this machine.

    Fields listed in ``$COURSE_PROFILE_OVERRIDES`` (a JSON object) are changed first, then ``overrides``.

    Args:
        name: ``"gpu"``, ``"cpu"`` or ``"smoke"``; None reads the environment.
        **overrides: fields to change, e.g. ``resolution=256``.
    """
    name = name or os.environ.get(PROFILE_ENV) or default_profile_name()
    if not isinstance(name, str) or name not in PROFILES:
        raise UnknownProfileError(
            f"Unknown profile {name!r} (from {PROFILE_ENV} or the call). Choose one of: {', '.join(PROFILES)}."
        )
    profile = PROFILES[name]
    try:
        from_env = json.loads(os.environ.get(OVERRIDES_ENV) or "{}")
    except json.JSONDecodeError as err:
        raise ValueError(f"{OVERRIDES_ENV} must be a JSON object such as '{{\"step_scale\": 0.01}}' ({err}).") from err
    changes = {**from_env, **overrides}
    return profile.override(**changes) if changes else profile
