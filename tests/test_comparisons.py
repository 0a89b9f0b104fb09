"""Comparisons, prompts, tables of training samples, measures and figures (the experiments of the notebooks)."""

import sys
from pathlib import Path

import pytest
import yaml
from PIL import Image

from helpers.base.home import interactive
from helpers.figures import (
    image_grid,
    paste_table,
    plot_seconds_per_image,
    progress_table,
    save_plot,
    validation_grids,
)
from helpers.measure.scores import format_scores
from helpers.sample import Comparison, sample_runs, scheduler_comparison, scheduler_name
from helpers.train.prompts import short_prompt, subject_prompts
from helpers.train.sampling import Generation
from helpers.train.settings import Subject


def solid(value: int, size: int = 16) -> Image.Image:
    """A one-colour square image, so tests can tell images apart by their pixels."""
    return Image.new("RGB", (size, size), (value, value, value))


def fake_comparison(labels=("a", "b"), prompts=("p1", "p2"), seeds=(0, 1)) -> Comparison:
    pairs = [(p, s) for p in prompts for s in seeds]
    gens = {
        label: Generation([solid(10 * k + i) for i in range(len(pairs))], [p for p, _ in pairs], [s for _, s in pairs],
                          seconds=2.0 * (k + 1))
        for k, label in enumerate(labels)
    }
    return Comparison(gens, list(prompts), list(seeds))


def fake_run(folder: Path, steps=(1, 2), seeds=(0, 1), prompts=1, cell=32) -> Path:
    """A run folder holding sample grids laid out as train_dreambooth saves them."""
    (folder / "samples").mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump({"validation_seeds": list(seeds)}))
    for step in steps:
        images = [solid(step * 20 + i, cell) for i in range(prompts * len(seeds))]
        grid = image_grid(images, prompts, len(seeds), col_labels=[f"seed {s}" for s in seeds])
        grid.save(folder / "samples" / f"step-{step:06d}.png")
    return folder


def test_subject_prompts_start_with_the_instance_prompt():
    subject = Subject("striped_ball", "unused", "ball")
    prompts = subject_prompts(subject, 3)
    assert prompts[0] == "a photo of sks ball" and len(prompts) == 3
    assert all("sks ball" in p for p in prompts)


def test_subject_prompts_use_the_identifier_and_fall_back_for_uploads():
    prompts = subject_prompts(Subject("upload", "unused", "person", identifier="zwx"), 3)
    assert prompts[0] == "a photo of zwx person"
    assert len(prompts) == 3 and all("zwx person" in p for p in prompts)
    assert subject_prompts(Subject("upload", "unused", "person"), 1) == ["a photo of sks person"]


def test_short_prompt():
    assert short_prompt("a photo of sks dog on the beach") == "sks dog on the beach"
    assert short_prompt("a painting of sks dog") == "a painting of sks dog"


def test_comparison_keeps_prompt_and_seed_order():
    comp = fake_comparison()
    assert comp.labels == ["a", "b"]
    assert [im.getpixel((0, 0))[0] for im in comp.images("b", "p2")] == [12, 13]
    assert comp.seconds_per_image() == {"a": 0.5, "b": 1.0}


def test_strip_puts_the_seeds_of_one_prompt_side_by_side():
    strip = fake_comparison(seeds=(0, 1, 2)).strip("a", "p2", cell=10)
    assert strip.size == (3 * 10 + 2 * 2, 10)
    assert [strip.getpixel((x, 0))[0] for x in (0, 12, 24)] == [3, 4, 5]


def test_comparison_grid_puts_arms_in_columns_or_rows():
    comp = fake_comparison(labels=("a", "b", "c"), prompts=("p1", "p2"), seeds=(0, 1))
    by_cols, by_rows = comp.grid(cell=20), comp.grid(cell=20, arms_as="rows")
    assert by_rows.height - by_cols.height == 20 + 4  # 3 arm rows instead of 2 prompt rows (20 px + 4 px gap)
    assert by_cols.width > by_rows.width  # 3 arms across instead of 2 prompts


def test_every_scheduler_has_a_figure_name():
    from helpers.train.sampling import SCHEDULERS

    assert all(scheduler_name(k) for k in SCHEDULERS)


def test_scheduler_comparison_names_schedulers_and_steps():
    gen = Generation([solid(0), solid(1)], ["p", "p"], [0, 1], 1.0)
    comp = scheduler_comparison({("ddim", 50): gen, ("lms", 100): gen, ("dpm++", 25): gen}, "p")
    assert comp.labels == ["DDIM, 50", "LMSDiscrete, 100", "DPM-Solver++, 25"]
    assert comp.seeds == [0, 1] and comp.prompts == ["p"]


def test_paste_table_fits_cells_labels_and_title():
    cells = [[solid(0, 10), Image.new("RGB", (20, 10))], [solid(1, 10), solid(2, 10)]]
    table = paste_table(cells, ["r1", "r2"], ["x", "y"], title="a rather long title for two small cells", width=40)
    assert table.width >= 2 * 40 and table.height >= 40 + 20 + 40
    assert table.width > len("a rather long title") * 5  # widened for the title


def test_validation_grids_in_step_order_without_their_label_row(tmp_path):
    run = fake_run(tmp_path / "run", steps=(10, 2), prompts=2, cell=32)
    grids = validation_grids(run)
    assert list(grids) == ["step 2", "step 10"]
    assert grids["step 2"].size == (64, 64)  # 2 seeds x 2 prompts of 32 px, header cut off
    assert validation_grids(run, strip_labels=False)["step 2"].height > 64


def test_validation_grids_drop_a_final_grid_identical_to_the_last_step(tmp_path):
    run = fake_run(tmp_path / "run", steps=(1, 2))
    (run / "samples" / "final.png").write_bytes((run / "samples" / "step-000002.png").read_bytes())
    assert list(validation_grids(run)) == ["step 1", "step 2"]


def test_progress_table_shows_common_steps(tmp_path):
    a = fake_run(tmp_path / "a", steps=(1, 2, 3))
    b = fake_run(tmp_path / "b", steps=(1, 2))
    table = progress_table({"a": a, "b": b}, width=64)
    assert table.height < 3 * 32 + 100  # two common steps, not three


def test_progress_table_explains_missing_samples(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="validation_prompts"):
        progress_table({"x": tmp_path / "empty"})


def test_scores_are_none_for_subjects_outside_toyworld(tmp_path):
    assert toyworld_scores(Subject("striped_ball", str(tmp_path), "ball"), fake_comparison()) is None
    assert "no ToyWorld measures" in format_scores(None)


def test_format_scores_makes_one_line_per_arm():
    text = format_scores({"high": {"subject_fidelity": 0.5}, "low": {"subject_fidelity": 0.25}})
    lines = text.splitlines()
    assert len(lines) == 3 and "subject_fidelity" in lines[0] and lines[2].rstrip().endswith("0.25")


def test_widgets_only_in_a_kernel_and_when_interactive(monkeypatch):
    monkeypatch.setenv("COURSE_INTERACTIVE", "1")
    monkeypatch.delitem(sys.modules, "ipykernel", raising=False)
    assert interactive() is False  # a plain Python process
    monkeypatch.setitem(sys.modules, "ipykernel", object())
    assert interactive() is True
    monkeypatch.setenv("COURSE_INTERACTIVE", "0")
    assert interactive() is False


def test_save_plot_puts_settings_in_the_file_name(runs_dir):
    fig = plot_seconds_per_image({"PNDM, 50": 0.5, "DDIM, 50": 0.4}, title="t")
    path = save_plot(fig, "03_seconds", profile="smoke", seed=0)
    assert path.parent == runs_dir / "figures" and path.name == "03_seconds_profilesmoke_seed0.png"
    assert path.exists()


@pytest.mark.slow
def test_sample_runs_gives_every_arm_the_same_starting_noise(tiny_model_dir):
    comp = sample_runs({"one": tiny_model_dir, "two": tiny_model_dir}, ["a photo of sks ball"], [0, 1],
                       num_inference_steps=2, resolution=32, scheduler="ddim")
    assert comp.labels == ["one", "two"] and len(comp.images("one")) == 2
    one, two = comp.images("one"), comp.images("two")
    assert [im.tobytes() for im in one] == [im.tobytes() for im in two]  # same model, same seeds: same images
    assert one[0].tobytes() != one[1].tobytes()  # different seeds differ


def test_toyworld_scores_read_each_prompt_for_its_role(monkeypatch):
    import torch

    import helpers.measure.scores as ex
    from helpers.toyworld import metrics

    seen = []
    monkeypatch.setattr(ex, "is_toyworld", lambda subject: True)
    monkeypatch.setattr(ex, "reference_photos", lambda subject: [solid(9)])

    def predict(images, model=None):  # a stand-in evaluator: every image is the subject on the beach
        seen.append(len(images))
        return [{"subject": "striped_ball", "cls": "ball", "colour": "red", "background": "sand"} for _ in images]

    monkeypatch.setattr(metrics, "predict", predict)
    monkeypatch.setattr(metrics, "embed", lambda images, model=None: torch.nn.functional.normalize(
        torch.ones(len(images), 4), dim=1))
    prompts = ("a photo of sks ball", "a photo of sks ball on the beach", "a photo of sks ball on the grass",
               "a photo of ball")
    comp = fake_comparison(labels=("only",), prompts=prompts, seeds=(0, 1, 2))
    scores = toyworld_scores(Subject("striped_ball", "x", "ball"), comp, class_prompt="a photo of ball")["only"]
    assert list(scores) == ["subject_fidelity", "subject_similarity", "context_fidelity", "language_drift",
                            "diversity", "copying"]  # no prompt asks for a new look: no column for it
    assert {c: e.n for c, e in scores.items()} == {"subject_fidelity": 9, "subject_similarity": 9,
                                                   "context_fidelity": 6, "language_drift": 3, "diversity": 3,
                                                   "copying": 9}  # every share says how many images it rests on
    assert scores["context_fidelity"].value == pytest.approx(0.5)  # the beach, not the grass
    assert scores["language_drift"].value == 1.0 and scores["subject_fidelity"].value == 1.0
    assert scores["subject_similarity"].value == pytest.approx(1.0)  # identical embeddings


def test_scores_print_with_their_count_and_interval():
    from helpers.measure.scores import as_share

    text = format_scores({"high": {"subject_fidelity": as_share(0.375, 8)}, "low": {"subject_fidelity": as_share(0.125, 8)}})
    assert "0.38 [" in text and "n=8" in text  # 3 of 8, never a bare number
    low = as_share(0.125, 8)
    assert low.low < 0.125 < low.high and low.n == 8


def test_the_subjects_photos_sit_above_the_grid_at_the_cell_size():
    comp = fake_comparison()
    plain = comp.grid(cell=32)
    photos = [solid(200, 10), solid(100, 50)]
    with_them = comp.grid(cell=32, photos=photos)
    assert with_them.height > plain.height + 32 and with_them.width >= plain.width
    strip_top = with_them.height - plain.height - 6 - 32  # the strip's images end just above the grid
    first = with_them.crop((4, strip_top, 4 + 32, strip_top + 32))
    assert set(first.getdata()) == {(200, 200, 200)}  # the first photo, scaled to one cell
    assert with_them.crop((0, with_them.height - plain.height, plain.width, with_them.height)).tobytes() == plain.tobytes()


# ----------------------------------------------------------------- a helper these tests use


def toyworld_scores(subject: Subject, comparison: Comparison, class_prompt: str | None = None) -> dict | None:
    """ToyWorld's measures of each arm, ``{label: {measure: Estimate}}``; None for other subjects.

    The columns and the images each reads are :func:`helpers.toyworld.metrics.score_row`'s; with
    ``class_prompt``, the images of that prompt are scored for language drift only.
    """
    from helpers.measure import scores  # looked up at each call: the tests stand in for its functions

    if not scores.is_toyworld(subject):
        return None
    return scores.score_comparison(subject, comparison, class_prompt).rows
