"""The sweet-spot curve: saved validation grids cut back into images, scored step by step, plotted."""

import numpy as np
import pytest
import yaml
from PIL import Image

from helpers.base.stats import wilson_share
from helpers.figures import cut_grid, image_grid, validation_samples
from helpers.measure.curves import (
    CurvePoint,
    StepScores,
    plot_sweet_spot,
    samples_by_step,
    score_steps,
    step_number,
)
from helpers.profiles import get_profile
from helpers.train.settings import Subject

CELL = 32
PROMPTS = ["a photo of sks ball", "a photo of sks ball on the beach"]
SEEDS = [0, 1, 2]


def noise(seed: int, size: int = CELL) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def save_grid(images, path, header=True):
    """Save images as train_dreambooth does: one row per prompt, one column per seed, "seed N" on top."""
    labels = [f"seed {s}" for s in SEEDS] if header else None
    image_grid(images, len(PROMPTS), len(SEEDS), col_labels=labels).save(path)


def fake_run(folder, steps=(5, 10), final=None, max_steps=15, resolution=CELL):
    """A run folder with a config.yaml and one validation grid per step (and ``final``: its images)."""
    (folder / "samples").mkdir(parents=True)
    config = {"validation_prompts": PROMPTS, "validation_seeds": SEEDS, "resolution": resolution,
              "max_train_steps": max_steps}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    n = len(PROMPTS) * len(SEEDS)
    cells = {}
    for step in steps:
        cells[step] = [noise(100 * step + i) for i in range(n)]
        save_grid(cells[step], folder / "samples" / f"step-{step:06d}.png")
    if final is not None:
        cells["final"] = final
        save_grid(final, folder / "samples" / "final.png")
    return folder, cells


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return a.size == b.size and np.array_equal(np.asarray(a.convert("RGB")), np.asarray(b.convert("RGB")))


@pytest.fixture
def photo_subject(tmp_path):
    """A subject outside ToyWorld (scored by the smoke profile's tiny backbones) with three photos."""
    folder = tmp_path / "photos"
    folder.mkdir()
    photos = [noise(900 + i) for i in range(3)]
    for i, im in enumerate(photos):
        im.save(folder / f"{i}.png")
    return Subject("my_ball", str(folder), "ball"), photos


# ------------------------------------------------------------------------------------- cutting grids


@pytest.mark.parametrize("header", [True, False])
def test_cut_grid_returns_the_exact_cells_row_by_row(tmp_path, header):
    images = [noise(i) for i in range(6)]
    save_grid(images, tmp_path / "grid.png", header=header)
    cells = cut_grid(Image.open(tmp_path / "grid.png").convert("RGB"), len(PROMPTS), len(SEEDS), CELL)
    assert len(cells) == 6 and all(same_pixels(c, im) for c, im in zip(cells, images))


def test_validation_samples_are_the_saved_images_by_step_prompt_and_seed(tmp_path):
    folder, cells = fake_run(tmp_path / "run", final=[noise(7000 + i) for i in range(6)])
    samples = validation_samples(folder)
    assert list(samples) == ["step 5", "step 10", "final"]
    for label, key in (("step 5", 5), ("step 10", 10), ("final", "final")):
        assert list(samples[label]) == PROMPTS
        for r, prompt in enumerate(PROMPTS):
            got = samples[label][prompt]
            assert len(got) == len(SEEDS)
            assert all(same_pixels(g, cells[key][r * len(SEEDS) + c]) for c, g in enumerate(got))


def test_a_run_without_grids_says_how_to_get_them(tmp_path):
    folder, _ = fake_run(tmp_path / "run", steps=())
    with pytest.raises(FileNotFoundError, match="validation_prompts"):
        validation_samples(folder)


def test_a_grid_that_does_not_match_the_config_is_refused(tmp_path):
    folder, _ = fake_run(tmp_path / "run", resolution=CELL * 2)
    with pytest.raises(ValueError, match="config.yaml"):
        validation_samples(folder)


def test_the_final_grid_counts_as_the_last_training_step(tmp_path):
    folder, cells = fake_run(tmp_path / "run", steps=(5, 10), final=[noise(50 + i) for i in range(6)], max_steps=15)
    by_step = samples_by_step(folder)
    assert list(by_step) == [5, 10, 15]
    assert same_pixels(by_step[15][PROMPTS[0]][0], cells["final"][0])
    assert step_number("step 200", 400) == 200 and step_number("final", 400) == 400
    with pytest.raises(ValueError, match="step N"):
        step_number("checkpoint-3", 400)


def test_a_step_grid_at_the_last_step_is_not_counted_twice(tmp_path):
    folder, cells = fake_run(tmp_path / "run", steps=(5, 10), final=[noise(50 + i) for i in range(6)], max_steps=10)
    by_step = samples_by_step(folder)
    assert list(by_step) == [5, 10] and same_pixels(by_step[10][PROMPTS[0]][0], cells[10][0])


# ------------------------------------------------------------------------------------- scoring


def test_every_saved_step_of_every_run_gets_a_point_on_its_own_images(tmp_path, photo_subject):
    subject, photos = photo_subject
    likeness = [photos[i % 3] for i in range(6)]  # the subject's own photos: the best possible likeness
    high, _ = fake_run(tmp_path / "high", steps=(5, 10), final=likeness, max_steps=15)
    low, _ = fake_run(tmp_path / "low", steps=(5,), final=None)
    curve = score_steps(subject, {"high": high, "low": low}, profile=get_profile("smoke"))
    assert curve.runs == ["high", "low"] and curve.judge == "kit:tiny-dino + kit:tiny-clip"
    for run, steps in (("high", [5, 10, 15]), ("low", [5])):
        for column, prompts in (("subject_fidelity", PROMPTS), ("context_fidelity", PROMPTS[1:])):
            got_steps, estimates = curve.series(run, column)
            assert got_steps == steps and all(e.n == len(prompts) * len(SEEDS) for e in estimates)
    _, fidelity = curve.series("high", "subject_fidelity")
    assert fidelity[2].value > max(fidelity[0].value, fidelity[1].value)  # the step that shows the photos
    assert "high, step 15" in str(curve) and "n=6" in str(curve)


def test_a_judge_that_cannot_load_leaves_a_note_and_an_empty_plot(tmp_path, photo_subject, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    subject, _ = photo_subject
    folder, _ = fake_run(tmp_path / "run")
    profile = get_profile("smoke", dino_model="nobody/not-a-model", clip_model="kit:tiny-clip")
    curve = score_steps(subject, {"a": folder}, profile=profile)
    assert curve.points == [] and "nobody/not-a-model" in curve.note
    fig = plot_sweet_spot(curve)
    assert any("nobody/not-a-model" in t.get_text() for t in fig.axes[0].texts)


# ------------------------------------------------------------------------------------- plot


def made_up_curve() -> StepScores:
    """Four images per point for the subject, two for the new place (one prompt of two)."""
    points = [CurvePoint(run, step, column, wilson_share(k * n // 4, n))
              for run, steps in (("high", (50, 100, 150, 200)), ("low", (50, 100, 200)))
              for k, step in enumerate(steps) for column, n in (("subject_fidelity", 4), ("context_fidelity", 2))]
    return StepScores(points, {"subject_fidelity": "subject (share)", "context_fidelity": "new place (share)"}, "a judge")


def test_the_plot_has_one_line_per_run_and_one_point_per_saved_step():
    import matplotlib.pyplot as plt

    fig = plot_sweet_spot(made_up_curve(), title="ball, seed 0")
    assert len(fig.axes) == 2
    for ax in fig.axes:
        lines = [c.lines[0] for c in ax.containers]  # one error-bar line per run
        assert [len(line.get_xdata()) for line in lines] == [4, 3]
    low = [list(ax.containers[1].lines[0].get_ydata()) for ax in fig.axes]
    assert low == [[0.0, 0.25, 0.5], [0.0, 0.0, 0.5]]  # 0, 1, 2 of 4 images; 0, 0, 1 of 2
    legends = [[t.get_text() for t in ax.get_legend().get_texts()] for ax in fig.axes]
    assert legends == [["high (n=4 images per point)", "low (n=4 images per point)"],
                       ["high (n=2 images per point)", "low (n=2 images per point)"]]  # each panel its own count
    assert list(fig.axes[1].get_xticks()) == [50, 100, 150, 200]
    assert "ball, seed 0" in fig._suptitle.get_text() and "95%" in fig._suptitle.get_text()
    plt.close(fig)


def test_the_legend_counts_one_image_in_the_singular():
    import matplotlib.pyplot as plt

    curve = StepScores([CurvePoint("only", 1, "subject_fidelity", wilson_share(1, 1))], {}, "a judge")
    fig = plot_sweet_spot(curve, columns=["subject_fidelity"])
    assert [t.get_text() for t in fig.axes[0].get_legend().get_texts()] == ["only (n=1 image per point)"]
    plt.close(fig)
