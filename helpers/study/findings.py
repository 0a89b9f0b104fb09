"""The study's experiments re-run on ToyWorld and measured: the findings table.

Each experiment trains the same arms as its notebook (``study_config`` with the study's
numbers, mapped through the ``cpu`` profile), so runs the notebooks already made are found
and reused, and the other way round. Every arm is then sampled from fixed prompts and seeds
and scored with :mod:`helpers.toyworld.metrics`. ``benchmarks/toyworld_findings.py`` runs it
all and writes the table; the tests call :func:`score_pipeline` on short runs.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from helpers.profiles import get_profile
from helpers.study.arms import (
    DB_AFTER_TI_LR,
    DB_AFTER_TI_STEPS,
    FACE_STEPS,
    FACE_SUBJECT,
    FINDINGS_INFERENCE_STEPS,
    HIGH_LR,
    LOW_LR,
    OBJECT_STEPS,
    OBJECT_SUBJECTS,
    PLACEHOLDER,
    SCHEDULERS,
    SWEET_SPOT_STEPS,
    SWEET_SPOT_SUBJECTS,
    TI_LR,
    TI_STEPS,
)
from helpers.study.verdicts import SeededFinding, judge_over_seeds
from helpers.toyworld import metrics, world
from helpers.toyworld.subjects import CONTEXTS, SUBJECTS, instance_images, scoring_prompts  # noqa: F401 (CONTEXTS: read by the benchmarks)
from helpers.train.dreambooth import load_trained_pipeline, train_dreambooth
from helpers.train.models import free_memory, resolve_model
from helpers.train.prompts import subject_prompts
from helpers.train.sampling import generate
from helpers.train.settings import default_settings, prepare_subject, study_config
from helpers.train.textual_inversion import (
    TextualInversionConfig,
    dreambooth_after_textual_inversion,
    train_textual_inversion,
)


@dataclass
class Sampling:
    """How every arm is sampled: the same prompts, seeds and sampler for all of them."""

    seeds: tuple[int, ...] = tuple(range(8))
    steps: int = 25
    guidance: float = 7.5
    scheduler: str | None = None  # a key of helpers.train.sampling.SCHEDULERS; None: the model's own (PNDM)
    batch: int = 32


def sample(pipe, prompts: list[str], sampling: Sampling) -> dict[str, list]:
    """``{prompt: images}``, one image per seed, from seeded CPU latents (identical across arms)."""

    pairs = [(p, s) for p in prompts for s in sampling.seeds]
    gen = generate(pipe, [p for p, _ in pairs], [s for _, s in pairs], num_inference_steps=sampling.steps,
                   guidance_scale=sampling.guidance, scheduler=sampling.scheduler,
                   resolution=world.IMAGE_SIZE, batch_size=sampling.batch, progress=False)
    out: dict[str, list] = {p: [] for p in prompts}
    for image, prompt in zip(gen.images, gen.prompts):
        out[prompt].append(image)
    return out


def score_pipeline(pipe, name: str, sampling: Sampling | None = None, identifier: str = "sks") -> dict[str, float]:
    """Sample a pipeline (a base model or a finished run) on a subject's prompts and score it."""
    sampling = sampling or Sampling()
    prompts = scoring_prompts(name, identifier)
    t0 = time.perf_counter()
    images = sample(pipe, [p for role in prompts.values() for p in role], sampling)
    scores = metrics.score_row(images, prompts, instance_images(name), name)
    scores["sample_seconds"] = time.perf_counter() - t0
    return scores


def score_run(run: str | Path, name: str, sampling: Sampling | None = None, ema: bool = False,
              identifier: str = "sks") -> dict[str, float]:
    """Load a run folder (or a model id) on the CPU and score it; ``ema`` uses the run's EMA UNet."""

    pipe = load_trained_pipeline(run, ema=ema)
    pipe.set_progress_bar_config(disable=True)
    try:
        return score_pipeline(pipe, name, sampling, identifier)
    finally:
        del pipe
        free_memory()


# ------------------------------------------------------------------------------------- experiments


@dataclass
class Finding:
    """One row group of the table: what the study found, the arms, their measures, the verdict."""

    key: str
    study: str  # the study's finding, in one sentence
    arms: dict[str, dict[str, float]] = field(default_factory=dict)
    goal: str = ""
    verdict: str = ""  # "met", "not met", or for report-only rows "agrees" / "disagrees" / "mixed"
    notes: str = ""
    seconds: float = 0.0


def _toy_subject(name: str):

    return prepare_subject(name)


def _settings():

    settings = default_settings("cpu")
    if not settings.pretrained_model_name_or_path.startswith("kit:toyworld"):
        raise RuntimeError("The ToyWorld model is not built: see data/toyworld/README.md.")
    return settings


def arm_config(subject, study_lr, study_steps, seed: int = 0, **changes):
    """The training config of one arm, with notebook 01's sample grids so that its progress table finds them.

    ``seed`` is the training seed (the notebooks train with 0); other seeds repeat an arm to see
    how much its result depends on the draw of noise, timesteps and batches.
    """

    grids = {"validation_prompts": subject_prompts(subject, 3)[:2], "validation_seeds": [0, 1],
             "validation_steps": max(1, get_profile("cpu").steps(study_steps) // 4)}
    return study_config(subject, study_lr, study_steps, settings=_settings(), seed=seed, **{**grids, **changes})


def _train(subject, study_lr, study_steps, seed: int = 0, **changes):
    """Train (or reuse) one arm (:func:`arm_config`); returns its run folder."""
    return train_dreambooth(arm_config(subject, study_lr, study_steps, seed, **changes), progress=False).output_dir


# The arm whose goal asks that the subject be learned, per subject: an object at the low LR for 400
# study steps (learning_rate), the face with prior preservation at the study's face settings.
GOAL_ARMS = {
    **{name: ("low LR 2e-6, 400 steps", LOW_LR, OBJECT_STEPS, {}) for name in OBJECT_SUBJECTS},
    FACE_SUBJECT: ("with prior preservation, 2e-6, 1200 steps", LOW_LR, FACE_STEPS,
                   {"with_prior_preservation": True, "face": True}),
}


def goal_arm_config(name: str, seed: int = 0):
    """``(label, config)`` of ``name``'s :data:`GOAL_ARMS` arm with training seed ``seed``."""
    label, lr, steps, changes = GOAL_ARMS[name]
    return label, arm_config(_toy_subject(name), lr, steps, seed, **changes)


def base_model(sampling: Sampling, n_prompts: int = 64, seed: int = 0) -> Finding:
    """The base model on held-out captions, and what it draws for every subject's prompts before training."""

    model = resolve_model(_settings().pretrained_model_name_or_path)
    f = Finding("base", "Stable Diffusion draws the classes, colours and places its captions name.",
                goal="held-out accuracy: class >= 0.9, colour >= 0.8, background >= 0.8")
    report = metrics.evaluate_base_model(model, n_prompts=n_prompts, steps=sampling.steps,
                                         guidance=sampling.guidance)
    f.arms["held-out captions"] = {k: v for k, v in report["accuracy"].items()}
    for name in (*OBJECT_SUBJECTS, FACE_SUBJECT):
        f.arms[f"before training: {name}"] = score_run(model, name, sampling)
    f.verdict, f.notes = judge_one_seed(f.key, f.arms)
    return f


def learning_rate(sampling: Sampling, subjects: tuple[str, ...] = OBJECT_SUBJECTS, seed: int = 0) -> Finding:
    """High (5e-6) vs low (2e-6) LR, 400 study steps, batch 4, no prior preservation, on every object subject."""
    f = Finding("learning_rate", "Objects: at 400 steps a high LR (5e-6) overfits; a low LR (2e-6) learns the "
                "subject and still follows new prompts.",
                goal="low LR: subject fidelity >= 0.7 and context fidelity >= 0.6 on each object; "
                     "high LR: lower prompt fidelity (context and attribute) or more copying than low LR")
    for name in subjects:
        subject = _toy_subject(name)
        for label, lr in (("high LR 5e-6", HIGH_LR), ("low LR 2e-6", LOW_LR)):
            f.arms[f"{name}: {label}"] = score_run(_train(subject, lr, OBJECT_STEPS, seed), name, sampling)
    f.verdict, f.notes = judge_one_seed(f.key, f.arms)
    return f


def steps_sweet_spot(sampling: Sampling, subjects: tuple[str, ...] = SWEET_SPOT_SUBJECTS, seed: int = 0) -> Finding:
    """The low LR (2e-6) for 400, 800 and 1600 study steps: likeness against following new prompts."""
    f = Finding("steps", "Find the sweet spot: with a low LR, add steps until the subject appears; past it the "
                "model overfits and stops following prompts.", goal="report only")
    for name in subjects:
        subject = _toy_subject(name)
        for steps in SWEET_SPOT_STEPS:
            f.arms[f"{name}: {steps} steps"] = score_run(_train(subject, LOW_LR, steps, seed), name, sampling)
    f.verdict, f.notes = judge_one_seed(f.key, f.arms)
    return f


def prior_preservation(sampling: Sampling, seed: int = 0) -> Finding:
    """The face at 2e-6, 1200 study steps, batch 2, with and without prior preservation."""
    subject = _toy_subject(FACE_SUBJECT)
    f = Finding("prior_preservation", "Faces need prior preservation: without it the class word drifts towards "
                "the subject (language drift) and the model overfits.",
                goal="language drift without prior >= with prior + 0.2")
    for label, prior in (("without prior", False), ("with prior", True)):
        f.arms[label] = score_run(_train(subject, LOW_LR, FACE_STEPS, seed, with_prior_preservation=prior, face=True),
                                  FACE_SUBJECT, sampling)
    f.verdict, f.notes = judge_one_seed(f.key, f.arms)
    return f


def schedulers(sampling: Sampling, name: str = OBJECT_SUBJECTS[0], seed: int = 0) -> Finding:
    """The overfit (high-LR) object run sampled with each scheduler at the study's 50 and 100 steps (halved)."""
    subject = _toy_subject(name)
    run = _train(subject, HIGH_LR, OBJECT_STEPS, seed)
    f = Finding("schedulers", "On an overfit model DDIM gives cleaner images than PNDM and LMSDiscrete.",
                goal="report only")
    for key in SCHEDULERS:
        for steps in FINDINGS_INFERENCE_STEPS:
            s = Sampling(sampling.seeds, steps, sampling.guidance, key, sampling.batch)
            f.arms[f"{key}, {steps} steps"] = score_run(run, name, s)
    f.verdict, f.notes = judge_one_seed(f.key, f.arms)
    return f


def text_encoder(sampling: Sampling, seed: int = 0) -> Finding:
    """The face with prior preservation, text encoder frozen vs trained (notebook 04's arms)."""
    subject = _toy_subject(FACE_SUBJECT)
    f = Finding("text_encoder", "Training the text encoder as well gives the best faces and follows complex "
                "prompts better, at a higher memory cost.", goal="report only")
    for label, te in (("frozen text encoder", False), ("text encoder trained", True)):
        f.arms[label] = score_run(_train(subject, LOW_LR, FACE_STEPS, seed, with_prior_preservation=True, face=True,
                                         train_text_encoder=te), FACE_SUBJECT, sampling)
    f.verdict, f.notes = judge_one_seed(f.key, f.arms)
    return f


def ti_config(seed: int = 0) -> TextualInversionConfig:
    """The textual inversion arm of notebook 05 on the ToyWorld face."""
    settings, profile = _settings(), get_profile("cpu")
    subject = _toy_subject(FACE_SUBJECT)
    return TextualInversionConfig(
        pretrained_model_name_or_path=settings.pretrained_model_name_or_path, train_data_dir=subject.folder,
        placeholder_token=PLACEHOLDER, initializer_token=subject.class_noun, resolution=profile.resolution,
        train_batch_size=profile.train_batch_size_faces, max_train_steps=profile.steps(TI_STEPS),
        learning_rate=TI_LR, mixed_precision=profile.mixed_precision, seed=seed)


def after_ti_config(seed: int = 0):
    """The DreamBooth run that starts from :func:`ti_config`'s word (its ``{token}`` filled in when it trains)."""
    subject = _toy_subject(FACE_SUBJECT)
    return study_config(subject, DB_AFTER_TI_LR, DB_AFTER_TI_STEPS, with_prior_preservation=True, face=True,
                        settings=_settings(), seed=seed, instance_prompt=f"a photo of {{token}} {subject.class_noun}")


def textual_inversion_dreambooth(sampling: Sampling, seed: int = 0) -> Finding:
    """Textual inversion (2000 steps), then DreamBooth from it (500 steps, 1e-6), vs notebook 04's two runs."""

    subject = _toy_subject(FACE_SUBJECT)
    ti = train_textual_inversion(ti_config(seed), progress=False)
    ti_db = dreambooth_after_textual_inversion(ti, after_ti_config(seed))
    f = Finding("textual_inversion", "Textual inversion followed by DreamBooth beat plain DreamBooth on faces, "
                "but not DreamBooth with the text encoder.", goal="report only")
    f.arms["textual inversion only"] = score_run(ti.output_dir, FACE_SUBJECT, sampling, identifier=PLACEHOLDER)
    f.arms["TI + DreamBooth"] = score_run(ti_db.output_dir, FACE_SUBJECT, sampling, identifier=PLACEHOLDER)
    f.arms["DreamBooth"] = score_run(_train(subject, LOW_LR, FACE_STEPS, seed, with_prior_preservation=True, face=True),
                                     FACE_SUBJECT, sampling)
    f.arms["DreamBooth + text encoder"] = score_run(
        _train(subject, LOW_LR, FACE_STEPS, seed, with_prior_preservation=True, face=True, train_text_encoder=True),
        FACE_SUBJECT, sampling)
    f.verdict, f.notes = judge_one_seed(f.key, f.arms)
    return f


def ema(sampling: Sampling, name: str = OBJECT_SUBJECTS[0], seed: int = 0) -> Finding:
    """The low-LR object run with EMA: its raw weights against their moving average."""
    subject = _toy_subject(name)
    run = _train(subject, LOW_LR, OBJECT_STEPS, seed, use_ema=True)
    f = Finding("ema", "EMA made little difference over a few hundred steps.", goal="report only")
    f.arms["raw weights"] = score_run(run, name, sampling)
    f.arms["EMA weights"] = score_run(run, name, sampling, ema=True)
    f.verdict, f.notes = judge_one_seed(f.key, f.arms)
    return f


# ------------------------------------------------------------------------------------- verdicts


def judge_one_seed(key: str, arms: dict[str, dict]) -> tuple[str, str]:
    """The verdict of one experiment from one training seed's arms: ``(verdict, notes)``.

    The base model is judged by the course's goals on its held-out accuracy; every other
    experiment as over several seeds (:func:`helpers.study.verdicts.judge_over_seeds`), here with one run per
    arm: a verdict only where the interval of the difference between arms excludes zero.
    """
    if key == "base":
        acc = arms["held-out captions"]
        met = acc["cls"] >= 0.9 and acc["colour"] >= 0.8 and acc["background"] >= 0.8
        return ("met" if met else "not met"), (f"class {acc['cls']:.2f}, colour {acc['colour']:.2f}, "
                                                f"background {acc['background']:.2f}")
    one_run = SeededFinding(key, "", {label: [row] for label, row in arms.items()}, [0])
    judged = judge_over_seeds(one_run)
    return judged.verdict, "; ".join(judged.notes)


EXPERIMENTS = {
    "base": base_model,
    "learning_rate": learning_rate,
    "steps": steps_sweet_spot,
    "prior_preservation": prior_preservation,
    "schedulers": schedulers,
    "text_encoder": text_encoder,
    "textual_inversion": textual_inversion_dreambooth,
    "ema": ema,
}


def run_experiment(key: str, sampling: Sampling | None = None, seed: int = 0) -> Finding:
    """Run (or reuse) one experiment's arms with training seed ``seed`` and score them; times the whole experiment."""
    t0 = time.perf_counter()
    torch.manual_seed(seed)
    finding = EXPERIMENTS[key](sampling or Sampling(), seed=seed)
    finding.seconds = time.perf_counter() - t0
    return finding


# -------------------------------------------------------------------------------------- the table

COLUMNS = ("subject_fidelity", "subject_similarity", "context_fidelity", "attribute_fidelity", "copying",
           "language_drift", "class_fidelity", "diversity")
COLUMN_NAMES = {"cls": "class acc.", "colour": "colour acc.", "background": "background acc.", "all": "all three",
         "subject_fidelity": "subject", "subject_similarity": "similarity", "context_fidelity": "context",
         "attribute_fidelity": "attribute", "copying": "copying", "language_drift": "drift",
         "class_fidelity": "class", "diversity": "diversity"}


def markdown_one_seed(findings: list[Finding]) -> str:
    """The findings as markdown: one table per experiment, the study's finding and the verdict above it."""
    out = []
    for f in findings:
        out.append(f"### {f.key.replace('_', ' ')}\n")
        out.append(f"*Study:* {f.study}  \n*Goal:* {f.goal}  \n*Verdict:* **{f.verdict}**"
                   + (f" ({f.notes})" if f.notes else "") + f"  \n*Time:* {f.seconds / 60:.1f} min\n")
        keys = [k for row in f.arms.values() for k in row if k not in ("sample_seconds", "n", "per_image")]
        cols = [c for c in COLUMNS if c in keys] + list(dict.fromkeys(k for k in keys if k not in COLUMNS))
        out.append("| arm | " + " | ".join(COLUMN_NAMES.get(c, c) for c in cols) + " |")
        out.append("|---|" + "---:|" * len(cols))
        for label, row in f.arms.items():
            out.append(f"| {label} | " + " | ".join(f"{row[c]:.2f}" if c in row else "" for c in cols) + " |")
        out.append("")
    return "\n".join(out)
