"""The direct pixel check of each subject's feature, and its agreement with the evaluator."""

from __future__ import annotations

import math

import numpy as np
import pytest

from helpers.toyworld import feature_check as fc
from helpers.toyworld import metrics, subjects, world

FRESH = 7_100_000  # seeds no render used while the thresholds were chosen
RENDERS = 24  # per subject and kind: four of each background


def _featureless(name: str, seed: int, background: str) -> dict:
    """The subject's own class, colour and details, without its feature (pattern or eyepatch)."""
    subject = subjects.SUBJECTS[name]
    attrs = {k: v for k, v in subject.attrs.items() if k not in ("colour", "pattern", "mark")}
    return world.make_scene(subject.cls, subject.attrs["colour"], background, seed=seed, **attrs)


def _renders(name: str, feature: bool, n: int = RENDERS) -> list:
    make = subjects.subject_scene if feature else _featureless
    return [
        world.render(make(name, FRESH + i, world.BACKGROUNDS[i % len(world.BACKGROUNDS)])) for i in range(n)
    ]


def _share_visible(images: list, name: str) -> float:
    return float(np.mean([fc.check(im, name).visible for im in images]))


@pytest.mark.parametrize("name", list(subjects.SUBJECTS))
def test_accepts_fresh_renders_and_the_instance_images(name):
    assert _share_visible(_renders(name, feature=True), name) >= 0.9
    assert _share_visible(subjects.instance_images(name), name) == 1.0


@pytest.mark.parametrize("name", list(subjects.SUBJECTS))
def test_rejects_the_same_object_without_its_feature(name):
    assert _share_visible(_renders(name, feature=False), name) <= 0.1


@pytest.mark.parametrize("name", list(subjects.SUBJECTS))
def test_rejects_the_other_subjects(name):
    others = [im for other in subjects.SUBJECTS if other != name for im in _renders(other, True, 8)]
    assert _share_visible(others, name) <= 0.1


def test_rejects_random_pretraining_scenes():
    images = [world.render(world.sample_scene(FRESH + i)) for i in range(120)]
    for name in subjects.SUBJECTS:
        assert _share_visible(images, name) <= 0.05, name


def test_evidence_counts_what_the_feature_is_made_of():
    scene = subjects.subject_scene("dotted_star", FRESH, "plain", angle=0.0)
    dotted = fc.check(world.render(scene), "dotted_star")
    plain = fc.check(world.render(_featureless("dotted_star", FRESH, "plain")), "dotted_star")
    assert dotted.evidence["dots"] >= fc.MIN_DOTS and plain.evidence["dots"] == 0
    cube = fc.check(world.render(subjects.subject_scene("checked_cube", FRESH, "sky")), "checked_cube")
    assert fc.MIN_CHECK_SHARE <= cube.evidence["yellow_share"] <= fc.MAX_CHECK_SHARE
    face = fc.check(world.render(subjects.subject_scene("patch_face", FRESH, "grass")), "patch_face")
    assert face.evidence["other_eye"] < face.evidence["patch_radius"]
    assert "feature visible" in str(dotted) and "no feature" in str(plain)


def test_takes_arrays_and_other_sizes():
    scene = subjects.subject_scene("striped_ball", FRESH, "water")
    small, large = world.render(scene), world.render(scene, size=128)
    assert fc.check(np.asarray(small), "striped_ball").visible
    assert fc.check(np.asarray(small) / 255.0, "striped_ball").visible  # floats in 0..1
    assert fc.check(large, "striped_ball").visible


def test_mistakes_say_what_to_do():
    image = world.render(world.sample_scene(1))
    with pytest.raises(KeyError, match="choose one of"):
        fc.check(image, "dotted_cube")
    with pytest.raises(ValueError, match="RGB image"):
        fc.check(np.zeros((64, 64)), "dotted_star")
    with pytest.raises(KeyError, match="choose one of"):
        metrics.agreement([image], "dotted_cube")


def test_cohen_kappa():
    assert metrics.cohen_kappa(5, 0, 0, 5) == 1.0
    assert metrics.cohen_kappa(0, 5, 5, 0) == -1.0
    assert metrics.cohen_kappa(2, 2, 2, 2) == 0.0
    assert metrics.cohen_kappa(0, 46, 0, 10) == 0.0  # the pixels say no to all: no agreement beyond chance
    assert math.isnan(metrics.cohen_kappa(4, 0, 0, 0))  # both say yes to everything: chance explains it all
    assert math.isnan(metrics.cohen_kappa(0, 0, 0, 0))


def test_agreement_counts_add_up():
    name = "checked_cube"
    images = _renders(name, True, 6) + _renders(name, False, 6) + _renders("dotted_star", True, 4)
    result = metrics.agreement(images, name)
    counts = [result[k] for k in ("both_yes", "both_no", "evaluator_only", "pixel_only")]
    assert sum(counts) == result["images"] == len(images) == len(result["per_image"])
    assert result["agreement"].n == len(images)
    assert result["agreement"].value == pytest.approx((result["both_yes"] + result["both_no"]) / len(images))
    assert result["agreement"].low <= result["agreement"].value <= result["agreement"].high
    pixel = [seen for _, seen in result["per_image"]]
    assert pixel == [True] * 6 + [False] * 10  # the pixel check itself is right on every one of these renders
    assert result["pixel_yes"].value == pytest.approx(6 / 16)
    line = format_agreement(result)
    assert name in line and f"n={len(images)}" in line


def test_the_agreement_benchmark_scores_each_subjects_goal_arm_per_training_seed(tmp_path):
    import importlib.util
    import json
    from pathlib import Path

    from helpers.study import findings
    from helpers.train.config import config_hash, resolve_output_dir, save_config

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "feature_agreement.py"
    spec = importlib.util.spec_from_file_location("feature_agreement", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    _, star0 = findings.goal_arm_config("dotted_star", 0)
    _, star1 = findings.goal_arm_config("dotted_star", 1)
    _, face0 = findings.goal_arm_config("patch_face", 0)
    assert face0.with_prior_preservation and not star0.with_prior_preservation
    assert config_hash(star0) != config_hash(star1)  # the seed makes another run
    folders = {}
    for key, config, done in (("star0", star0, True), ("star1", star1, False), ("face0", face0, True)):
        run = tmp_path / "train" / resolve_output_dir(config).name
        (run / "unet").mkdir(parents=True)
        (run / "model_index.json").write_text("{}")
        save_config(config, run / "config.yaml")
        if done:
            (run / "done.json").write_text(json.dumps({"hash": "x"}))
        folders[key] = run
    other = tmp_path / "train" / (folders["star0"].name[:-12] + "0123456789ab")  # another base model's run
    (other / "unet").mkdir(parents=True)
    save_config(star0, other / "config.yaml")
    runs, missing = bench.goal_runs(tmp_path, [0, 1])
    assert runs == [("dotted_star", folders["star0"]), ("patch_face", folders["face0"])]
    assert len(missing) == 4 * 2 - 2 and any("dotted_star" in m and "seed 1" in m for m in missing)


def test_the_eyepatch_is_seen_by_its_patch_with_or_without_the_strap():
    scenes = [subjects.subject_scene("patch_face", FRESH + i, world.BACKGROUNDS[i % len(world.BACKGROUNDS)]) for i in range(RENDERS)]
    assert _share_visible([world.render(dict(s, mark="patch")) for s in scenes], "patch_face") >= 0.9
    assert _share_visible([world.render(dict(s, mark="strap")) for s in scenes], "patch_face") <= 0.1


@pytest.mark.parametrize("skin", [(120, 115, 40), (105, 80, 30), (150, 150, 60)])
def test_the_face_is_found_by_its_hair_when_the_skin_colour_drifts(skin):
    # Generations tint the brown skin towards the background (olive, darker, pale green); the orange
    # hair still frames the face, so the patch is still seen, and a face without it still is not.
    scenes = [subjects.subject_scene("patch_face", FRESH + i, world.BACKGROUNDS[i % len(world.BACKGROUNDS)]) for i in range(RENDERS)]
    assert _share_visible([world.render(dict(s, skin=skin)) for s in scenes], "patch_face") >= 0.9
    assert _share_visible([world.render(dict(s, skin=skin, mark="none", subject="none")) for s in scenes], "patch_face") <= 0.1


# ----------------------------------------------------------------- a helper these tests use


def format_agreement(result: dict) -> str:
    """One line for a learner: the four counts, the agreement with its interval and kappa."""
    a = result["agreement"]
    return (
        f"{result['subject']}: {result['images']} images; both yes {result['both_yes']}, both no {result['both_no']}, "
        f"evaluator only {result['evaluator_only']}, pixels only {result['pixel_only']}; "
        f"agreement {a.value:.2f} [{a.low:.2f}, {a.high:.2f}] (n={result['images']}), kappa {result['kappa']:.2f}"
    )
