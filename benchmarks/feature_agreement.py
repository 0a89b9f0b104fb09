"""Is the evaluator's "subject" the feature a person sees? Its decisions against a direct pixel check.

For every ToyWorld subject, the evaluator's subject head (``metrics.predict``) and the hand-written
pixel check of ``helpers/toyworld/feature_check.py`` (white dots on the red star, yellow checks on
the blue cube, white bands on the green ball, a patch over one eye) judge the same images:

(a) fresh renders: the subject, and the same object without its feature, half and half;
(b) the same renders encoded and decoded by the shipped model's autoencoder
    (``data/toyworld/model/vae``, the broad one of ``data/toyworld/autoencoder``), and the face's
    eyepatch in parts: the patch without its strap (the subject), the strap without the patch (not);
(c) with ``--runs HOME``: generations of finished DreamBooth runs under ``HOME/train/``: each
    subject's goal arm (an object at the low learning rate, the face with prior preservation)
    for training seeds 0-2, sampled like the findings: instance, context and attribute prompts,
    and the plain class prompt, seeds 0-7.

It prints a table and writes ``benchmarks/results/feature_agreement.md``.

    python benchmarks/feature_agreement.py                      # (a) and (b), about a minute
    python benchmarks/feature_agreement.py --runs runs           # (c) too, from a course home
    python benchmarks/feature_agreement.py --runs runs --figure F.png   # and each subject's photos above 8 generations
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
FRESH = 7_200_000  # render seeds used neither by the tests nor while the thresholds were chosen
AUTOENCODERS = {"shipped model's VAE": "model"}


def featureless(name: str, seed: int, background: str) -> dict:
    """The subject's class, colour and details without its pattern or eyepatch."""
    from helpers.toyworld import subjects, world

    subject = subjects.SUBJECTS[name]
    attrs = {k: v for k, v in subject.attrs.items() if k not in ("colour", "pattern", "mark")}
    return world.make_scene(subject.cls, subject.attrs["colour"], background, seed=seed, **attrs)


def renders(name: str, n: int) -> np.ndarray:
    """``n`` renders of the subject then ``n`` of the same object without its feature, every background."""
    from helpers.toyworld import subjects, world

    bgs = world.BACKGROUNDS
    with_feature = [subjects.subject_scene(name, FRESH + i, bgs[i % len(bgs)]) for i in range(n)]
    without = [featureless(name, FRESH + n + i, bgs[i % len(bgs)]) for i in range(n)]
    return np.stack([np.asarray(world.render(s)) for s in with_feature + without])


def eyepatch_parts(n: int) -> np.ndarray:
    """``n`` face-subject renders with the patch but no strap, then ``n`` with the strap but no patch."""
    from helpers.toyworld import subjects, world

    bgs = world.BACKGROUNDS
    scenes = [subjects.subject_scene("patch_face", FRESH + 2 * n + i, bgs[i % len(bgs)]) for i in range(n)]
    shown = [dict(s, mark="patch") for s in scenes] + [dict(s, mark="strap", subject="none") for s in scenes]
    return np.stack([np.asarray(world.render(s)) for s in shown])


def goal_runs(home: Path, seeds: list[int]) -> tuple[list[tuple[str, Path]], list[str]]:
    """Each subject's finished runs of its goal arm (``helpers.study.findings.GOAL_ARMS``), one per training seed.

    The same arms and seeds every time, so that measurements on other models or decoders compare
    like with like. A run counts only where its folder under ``home/train`` holds saved weights and
    its hash matches the arm's config today (so runs of an earlier base model are left out).
    Returns the runs and a note for each one missing.
    """
    from helpers.study import findings
    from helpers.toyworld.subjects import SUBJECTS
    from helpers.train.config import TrainConfig, resolve_output_dir
    from helpers.train.runs import run_status

    found, missing = [], []
    for name in SUBJECTS:
        for seed in seeds:
            label, config = findings.goal_arm_config(name, seed)
            run = home / "train" / resolve_output_dir(config).name  # <instance-prompt>-<config hash>
            saved = (run / "unet").is_dir() and (run / "model_index.json").exists()
            if saved and run_status(run, run.name.rsplit("-", 1)[-1], TrainConfig) == "done":
                found.append((name, run))
            else:
                missing.append(f"{name}, {label}, training seed {seed}: no finished run under {home}/train "
                               "(benchmarks/toyworld_findings.py trains it), skipped")
    return found, missing


def describe_run(run: Path) -> str:
    """One line on how a run was trained, from its ``config.yaml``."""
    import yaml

    c = yaml.safe_load((run / "config.yaml").read_text())
    return (f"run {run.name}: {c.get('max_train_steps')} steps at learning rate {c.get('learning_rate', 0):.1e}, "
            f"prior preservation {c.get('with_prior_preservation')}, text encoder trained {c.get('train_text_encoder')}")


SUBJECT_ROLES = ("instance", "context", "attribute")  # the prompts that name the subject


def run_samples(run: Path, name: str, seeds: int) -> tuple[dict[str, list], dict[str, list[str]]]:
    """A run's generations for the findings' prompts: ``({prompt: images}, findings.scoring_prompts(name))``."""
    from helpers.study import findings
    from helpers.train.dreambooth import load_trained_pipeline

    pipe = load_trained_pipeline(run)
    pipe.set_progress_bar_config(disable=True)
    prompts = findings.scoring_prompts(name)
    images = findings.sample(pipe, [p for ps in prompts.values() for p in ps], findings.Sampling(seeds=tuple(range(seeds))))
    return images, prompts


def row(set_name: str, result: dict) -> dict:
    """One table row from :func:`helpers.toyworld.metrics.agreement`'s result."""
    keep = ("subject", "images", "both_yes", "both_no", "evaluator_only", "pixel_only", "agreement", "kappa",
            "evaluator_yes", "pixel_yes")
    return {"set": set_name, **{k: result[k] for k in keep}}


def pooled(set_name: str, rows: list[dict]) -> dict:
    """The counts of several rows added up, with the agreement and kappa of the sum."""
    from helpers.base.stats import wilson_share
    from helpers.toyworld.metrics import cohen_kappa

    c = {k: sum(r[k] for r in rows) for k in ("images", "both_yes", "both_no", "evaluator_only", "pixel_only")}
    n = c["images"]
    return {
        "set": set_name, "subject": "all", **c,
        "agreement": wilson_share(c["both_yes"] + c["both_no"], n),
        "kappa": cohen_kappa(c["both_yes"], c["evaluator_only"], c["pixel_only"], c["both_no"]),
        "evaluator_yes": wilson_share(c["both_yes"] + c["evaluator_only"], n),
        "pixel_yes": wilson_share(c["both_yes"] + c["pixel_only"], n),
    }


def markdown(rows: list[dict]) -> str:
    """The rows as a markdown table; every share with its count and Wilson 95% interval."""
    from helpers.base.stats import format_estimate

    head = ("| images | subject | n | both yes | both no | evaluator only | pixels only | agreement [95%] "
            "| kappa | evaluator says subject | pixels show feature |\n|---|---|---:|---:|---:|---:|---:|---|---:|---:|---:|\n")
    lines = [
        f"| {r['set']} | {r['subject']} | {r['images']} | {r['both_yes']} | {r['both_no']} | {r['evaluator_only']} "
        f"| {r['pixel_only']} | {format_estimate(r['agreement'], count=False)} | {r['kappa']:.2f} "
        f"| {r['evaluator_yes'].value:.2f} | {r['pixel_yes'].value:.2f} |"
        for r in rows
    ]
    return head + "\n".join(lines) + "\n"


def figure(shown: dict[str, tuple[str, list]], path: Path, cell: int = 96) -> Path:
    """Each subject's photos above the first 8 subject-prompt generations of one of its runs."""
    from PIL import Image

    from helpers.figures import image_grid, with_photos
    from helpers.toyworld.subjects import instance_images

    blocks = []
    for name, (run_name, images) in shown.items():
        row = image_grid(images[:8], 1, len(images[:8]), cell=cell)
        blocks.append(with_photos(row, instance_images(name), cell, title=f"{name}: run {run_name}, 'a photo of sks ...'"))
    out = Image.new("RGB", (max(b.width for b in blocks), sum(b.height + 8 for b in blocks)), "white")
    y = 0
    for b in blocks:
        out.paste(b, (0, y))
        y += b.height + 8
    path.parent.mkdir(parents=True, exist_ok=True)
    out.save(path)
    return path


def measure(n: int, home: Path | None, seeds: int, seeds_trained: list[int],
            shown: dict | None = None) -> tuple[list[dict], list[str]]:
    """Every row of the table, and notes on what was left out; ``shown`` collects one run's images per subject."""
    from helpers.base.paths import DATA_DIR
    from helpers.toyworld import autoencoder as ae
    from helpers.toyworld.metrics import agreement
    from helpers.toyworld.subjects import SUBJECTS
    from helpers.train.prompts import role_images

    rows, notes = [], []
    base = {name: renders(name, n) for name in SUBJECTS}
    sets = {"renders": base}
    for label, folder in AUTOENCODERS.items():
        path = DATA_DIR / "toyworld" / folder
        if not path.exists():
            notes.append(f"{label}: no folder {path.relative_to(DATA_DIR.parent)}, skipped")
            continue
        vae = ae.load_vae(path)
        sets[f"renders through the {label}"] = {name: ae.reconstruct(vae, x) for name, x in base.items()}
    for set_name, images in sets.items():
        part = [row(set_name, agreement(list(images[name]), name)) for name in SUBJECTS]
        rows += part + [pooled(set_name, part)]
    rows.append(row("face renders: the patch without its strap, then the strap without the patch",
                    agreement(list(eyepatch_parts(n)), "patch_face")))
    if home is None:
        notes.append("DreamBooth generations: not measured (no --runs given)")
        return rows, notes
    runs, missing = goal_runs(home, seeds_trained)
    notes += missing
    if runs:
        notes.append("DreamBooth rows: each run's own saved pipeline (its UNet, text encoder and VAE); subject "
                     "prompts are the instance, context and attribute prompts of helpers.toyworld.subjects.scoring_prompts")
    else:
        notes.append(f"DreamBooth generations: no finished run under {home}/train, skipped")
    by_subject: dict[str, list[dict]] = {}
    for name, run in runs:
        notes.append(describe_run(run) + f"; sampled with seeds 0-{seeds - 1} per prompt, 25 steps, guidance 7.5")
        samples = run_samples(run, name, seeds)
        sets = {"subject prompts": role_images(*samples, *SUBJECT_ROLES)[0],
                "class prompt": role_images(*samples, "class")[0]}
        for role, images in sets.items():
            rows.append(row(f"run {run.name}, {role}", agreement(images, name)))
            if role == "subject prompts":
                by_subject.setdefault(name, []).append(rows[-1])
                if shown is not None and name not in shown:
                    shown[name] = (run.name, images)
    if by_subject:
        label = "goal-arm runs, subject prompts"
        totals = [dict(pooled(label, part), subject=name) for name, part in by_subject.items()]
        rows += totals + [pooled(label, totals)]
    return rows, notes


def main(argv: list[str] | None = None) -> int:
    """Measure, print and write the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=24, help="renders per subject with its feature, and as many without")
    parser.add_argument("--runs", type=Path, default=None, help="a course home whose train/ holds finished runs")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2],
                        help="training seeds of each subject's goal arm to score (default: 0 1 2, as the findings)")
    parser.add_argument("--seeds", type=int, default=8, help="sampling seeds per prompt for the runs")
    parser.add_argument("--out", type=Path, default=RESULTS / "feature_agreement.md")
    parser.add_argument("--figure", type=Path, default=None, help="also save the subjects' photos above generations (PNG)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    shown: dict = {}
    rows, notes = measure(args.n, args.runs, args.seeds, args.train_seeds, shown)
    table = markdown(rows)
    text = (
        "# The evaluator's subject decisions against a direct pixel check\n\n"
        "Each image is judged twice: by the evaluator's subject head (is it the subject?) and by the pixel "
        "check of `helpers/toyworld/feature_check.py` (is the subject's feature visible?). *Agreement* is the "
        "share of images on which both say the same, with its Wilson 95% interval and n; kappa is Cohen's "
        f"(agreement beyond chance; nan where one rater says the same of every image). Renders: {args.n} of each "
        f"subject and {args.n} of the same object without its feature (seeds from {FRESH}, every background "
        "in turn); the autoencoder rows are those same renders encoded and decoded. The eyepatch row shows "
        f"{args.n} faces with the patch over the eye but no strap (the subject) and {args.n} with the strap but "
        "the eye showing (not the subject).\n\n"
        + table + "\n" + "".join(f"- {note}\n" for note in notes)
        + f"\n`python benchmarks/feature_agreement.py{' --runs HOME' if args.runs else ''}`; "
        f"{time.perf_counter() - t0:.0f} s.\n"
    )
    print(table)
    for note in notes:
        print(note)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(f"wrote {args.out}")
    if args.figure and shown:
        print(f"wrote {figure(shown, args.figure)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
