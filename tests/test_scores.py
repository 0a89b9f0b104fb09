"""One measure table per figure on every profile: ToyWorld's evaluator or the paper's backbones."""

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from helpers.measure import scores
from helpers.profiles import get_profile
from helpers.sample import Comparison, sample_runs
from helpers.toyworld import world
from helpers.toyworld.subjects import scoring_prompts
from helpers.train.prompts import subject_prompts
from helpers.train.sampling import Generation
from helpers.train.settings import Subject, prepare_subject


def noise(seed: int, size: int = 32) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def comparison_of(images_by_label: dict[str, dict[str, list[Image.Image]]]) -> Comparison:
    """A comparison whose arms hold exactly these images (one seed per image)."""
    prompts = list(next(iter(images_by_label.values())))
    seeds = list(range(len(next(iter(images_by_label.values()))[prompts[0]])))
    gens = {label: Generation([im for p in prompts for im in by[p]], [p for p in prompts for _ in by[p]],
                              [s for _ in prompts for s in seeds], seconds=1.0)
            for label, by in images_by_label.items()}
    return Comparison(gens, prompts, seeds)


@pytest.fixture
def photo_subject(tmp_path):
    """A subject outside ToyWorld with three photos on disk (the learner's own, say)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for i in range(3):
        noise(100 + i).save(folder / f"{i}.png")
    return Subject("my_ball", str(folder), "ball")


ROLES = {"instance": ["a photo of sks ball"], "context": ["a photo of sks ball on the beach"],
         "attribute": ["a photo of a purple sks ball"], "class": ["a photo of ball"]}


def test_a_table_on_smoke_uses_the_tiny_backbones_and_has_every_column(runs_dir, photo_subject):
    photos = scores.reference_photos(photo_subject)
    comp = comparison_of({
        "copies": {"a photo of sks ball": photos[:2], "a photo of sks ball on the beach": photos[1:3],
                   "a photo of a purple sks ball": [noise(5), noise(6)], "a photo of ball": [noise(7), noise(8)]},
        "noise": {"a photo of sks ball": [noise(1), noise(2)], "a photo of sks ball on the beach": [noise(9), noise(10)],
                  "a photo of a purple sks ball": [noise(11), noise(12)], "a photo of ball": [noise(3), noise(4)]},
    })
    table = scores.score_comparison(photo_subject, comp, class_prompt="a photo of ball", profile=get_profile("smoke"),
                                    roles=ROLES)
    assert table.judge == "kit:tiny-dino + kit:tiny-clip"
    assert table.columns == list(scores.COLUMNS)
    copies, other = table.rows["copies"], table.rows["noise"]
    assert copies["subject_fidelity"].value > other["subject_fidelity"].value  # the photos themselves score higher
    assert copies["copying"].value > 0.999 > other["copying"].value
    assert copies["subject_fidelity"].n == 4 and copies["language_drift"].n == 2 and copies["diversity"].n == 2
    text = str(table)
    assert "subject (DINO)" in text and "new place (CLIP-T)" in text and "n=2" in text


def test_without_roles_the_prompts_are_sorted_by_what_they_ask(runs_dir, photo_subject):
    comp = comparison_of({"a": {p: [noise(20 + i)] for i, p in enumerate(
        ["a photo of sks ball", "a photo of sks ball on the beach", "a photo of a purple sks ball"])}})
    row = scores.score_comparison(photo_subject, comp, profile=get_profile("smoke")).rows["a"]
    assert row["context_fidelity"].n == 2 and "attribute_fidelity" not in row  # a purple ball is just somewhere new
    given = scores.score_comparison(photo_subject, comp, profile=get_profile("smoke"), roles=ROLES).rows["a"]
    assert given["context_fidelity"].n == 1 and given["attribute_fidelity"].n == 1


def test_toyworld_and_backbones_fill_the_same_columns(runs_dir, photo_subject):
    toy = prepare_subject("striped_ball")
    if not scores.is_toyworld(toy):
        pytest.skip("the ToyWorld evaluator is not built")
    render = [world.render(world.sample_scene(i)) for i in range(2)]
    arms = {"one": {p: render for p in [*subject_prompts(toy, 3, unseen=True), toy.class_prompt]}}
    on_toyworld = scores.score_arms(toy, arms, class_prompt=toy.class_prompt)
    arms = {"one": {p: render for ps in ROLES.values() for p in ps}}
    on_smoke = scores.score_arms(photo_subject, arms, photo_subject.class_prompt, get_profile("smoke"), roles=ROLES)
    assert on_toyworld.judge == "ToyWorld evaluator"
    assert on_toyworld.columns == on_smoke.columns == list(scores.COLUMNS)
    assert set(on_toyworld.headers) == set(on_smoke.headers) == set(scores.COLUMNS)


def test_a_backbone_that_cannot_load_leaves_a_note_not_an_error(runs_dir, photo_subject, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    profile = get_profile("smoke", dino_model="nobody/not-a-model", clip_model="kit:tiny-clip")
    comp = comparison_of({"a": {"a photo of sks ball": [noise(1)]}})
    table = scores.score_comparison(photo_subject, comp, profile=profile, name="01_test")
    assert table.rows == {} and "no measures" in str(table) and "nobody/not-a-model" in str(table)
    assert not (runs_dir / scores.SCORES_DIR / "01_test.json").exists()  # nothing saved without numbers


def test_a_named_table_is_saved_in_the_course_home_and_reads_back(runs_dir, photo_subject):
    comp = comparison_of({"a": {"a photo of sks ball": [noise(1), noise(2)]}})
    table = scores.score_comparison(photo_subject, comp, name="07_lora", profile=get_profile("smoke"))
    saved = scores.load_saved_scores()
    assert "07_lora" in saved
    record = saved["07_lora"]
    assert record["profile"] == "smoke" and record["subject"] == "my_ball"
    cell = record["rows"]["a"]["subject_fidelity"]
    assert cell["n"] == 2 and cell["value"] == pytest.approx(table.rows["a"]["subject_fidelity"].value)
    json.dumps(record)  # plain JSON


def test_unreadable_photos_give_a_note(tmp_path):
    comp = comparison_of({"a": {"p": [noise(1)]}})
    table = scores.score_comparison(Subject("gone", str(tmp_path / "missing"), "ball"), comp)
    assert table.rows == {} and "could not be read" in str(table)


def test_role_prompts_cover_instance_contexts_an_unseen_attribute_and_the_class(tmp_path):
    ball = Subject("synthetic_ball", str(tmp_path), "ball")
    roles = role_prompts(ball)
    assert roles["instance"] == ["a photo of sks ball"] and roles["class"] == ["a photo of ball"]
    assert roles["attribute"] == ["a photo of a purple sks ball"] and len(roles["context"]) >= 1
    person = role_prompts(Subject("upload", str(tmp_path), "person"))
    assert person["attribute"] == ["a photo of sks person wearing glasses"]


@pytest.mark.slow
def test_one_call_scores_a_finished_run_on_every_role(runs_dir, tiny_model_dir, photo_subject):
    profile = get_profile("smoke")
    table = score_finished_run(tiny_model_dir, photo_subject, seeds=[0, 1], profile=profile, label="base")
    row = table.rows["base"]
    assert list(row) == list(scores.COLUMNS)
    roles = role_prompts(photo_subject)
    shown = roles["instance"] + roles["context"]
    assert row["subject_fidelity"].n == 2 * len(shown) and row["language_drift"].n == 2
    assert row["attribute_fidelity"].n == 2 and row["diversity"].n == 2


# ----------------------------------------------------------------- helpers these tests use


PEOPLE = ("person", "face", "man", "woman", "boy", "girl", "child")


def role_prompts(subject: Subject) -> dict[str, list[str]]:
    """The prompts a finished run is scored on, by role, as ToyWorld's findings use them.

    ``instance`` (the training prompt), ``context`` (the subject somewhere new), ``attribute``
    (something its photos never show: another colour, or glasses on a person) and ``class``
    (the plain class prompt, for language drift).
    """
    if scores.is_toyworld(subject):
        return scoring_prompts(subject.name, subject.identifier)
    token = f"{subject.identifier} {subject.class_noun}"
    attribute = (f"a photo of {token} wearing glasses" if subject.class_noun in PEOPLE
                 else f"a photo of a purple {token}")
    context = [p for p in subject_prompts(subject, 6)[1:] if p != attribute]
    return {"instance": [subject.instance_prompt], "context": context, "attribute": [attribute],
            "class": [subject.class_prompt]}


def score_finished_run(run: str | Path, subject: Subject, seeds: Sequence[int] = range(4), profile=None,
                       label: str | None = None, name: str | None = None) -> scores.ScoreTable:
    """Sample a finished run (or a base model) on the :func:`role_prompts` and score it: one call, one row.

    Args:
        run: a run folder or a model id.
        subject: the subject it was trained on.
        seeds: sampling seeds, the same for every prompt (images per prompt).
        profile: sampling steps and resolution, and the backbones (None: the current profile).
        label: the row's label (default: the run folder's name).
        name: save the table as ``scores/<name>.json`` too.
    """
    profile = profile or get_profile()
    roles = role_prompts(subject)
    prompts = [p for ps in roles.values() for p in ps]
    label = label or Path(str(run)).name
    comparison = sample_runs({label: run}, prompts, list(seeds), profile.num_inference_steps, profile.resolution)
    return scores.score_comparison(subject, comparison, class_prompt=roles["class"][0], name=name, profile=profile,
                                   roles=roles)


def test_a_toyworld_table_row_is_the_findings_row(runs_dir):
    """The notebooks' table and the findings score the same images the same way: one row, two formats."""
    from helpers.toyworld import metrics
    from helpers.toyworld.subjects import instance_images

    toy = prepare_subject("dotted_star")
    if not scores.is_toyworld(toy):
        pytest.skip("the ToyWorld evaluator is not built")
    roles = scoring_prompts(toy.name)
    images = {p: [world.render(world.sample_scene(50 * i + k)) for k in range(3)]
              for i, p in enumerate(p for ps in roles.values() for p in ps)}
    table = scores.score_arms(toy, {"arm": images}, class_prompt=toy.class_prompt)  # the roles sorted, not given
    findings = metrics.score_row(images, roles, instance_images(toy.name), toy.name)
    row = table.rows["arm"]
    assert list(row) == list(scores.COLUMNS)
    for column, estimate in row.items():
        assert (estimate.value, estimate.n) == pytest.approx((findings[column], findings["n"][column]), abs=1e-6), column
