"""Figures: grids of the right size, file names that carry the settings, loss plots from logs."""

import matplotlib

matplotlib.use("Agg")

import pytest
from PIL import Image

from helpers.figures import figure_name, image_grid, plot_losses, read_loss_log, save_image, smooth


def test_grid_size_and_labels():
    images = [Image.new("RGB", (16, 16), c) for c in ("red", "green", "blue", "white", "black", "gray")]
    plain = image_grid(images, 2, 3)
    assert plain.size == (48, 32)
    labelled = image_grid(images, 2, 3, row_labels=["lr 2e-6", "lr 5e-6"], col_labels=["a", "b", "c"], title="t")
    assert labelled.width > 48 and labelled.height > 32
    assert plain.getpixel((20, 5)) == (0, 128, 0)  # second cell of the first row is green


def test_grid_needs_the_right_number_of_images():
    with pytest.raises(ValueError, match="needs 4"):
        image_grid([Image.new("RGB", (4, 4))] * 3, 2, 2)


def test_file_name_carries_settings(tmp_path):
    assert figure_name("lr compare", seed=0, lr=2e-06) == "lr_compare_seed0_lr2e-06.png"
    path = save_image(Image.new("RGB", (4, 4)), tmp_path, "grid", seed=1)
    assert path.name == "grid_seed1.png" and Image.open(path).size == (4, 4)


def test_loss_plot_from_csv(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("step,loss,lr\n" + "".join(f"{i},{1 / (i + 1)},0.1\n" for i in range(30)))
    cols = read_loss_log(log)
    assert cols["step"][-1] == 29 and cols["loss"][0] == 1.0
    fig = plot_losses({"run": log})
    assert len(fig.axes[0].lines) == 1


def test_smooth_is_a_trailing_mean():
    assert smooth([1, 3, 5, 7], window=2) == [1, 2, 4, 6]


def test_long_title_widens_the_grid():
    images = [Image.new("RGB", (8, 8))] * 2
    narrow = image_grid(images, 1, 2)
    titled = image_grid(images, 1, 2, title="a long title that is much wider than two small cells")
    assert titled.width > narrow.width
