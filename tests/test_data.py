"""Subject images: every mistake a learner can make gets a message that names it."""

import io

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.course.uploads import save_uploads
from helpers.train.data import (
    SubjectDataError,
    list_images,
    load_images,
    make_synthetic_subject,
    open_rgb,
    read_manifest,
    resize_and_crop,
    to_tensor,
)


def test_missing_folder(tmp_path):
    with pytest.raises(SubjectDataError, match="does not exist"):
        list_images(tmp_path / "nope")


def test_empty_folder_and_wrong_files(tmp_path):
    with pytest.raises(SubjectDataError, match="is empty"):
        list_images(tmp_path)
    (tmp_path / "photo.heic").write_bytes(b"x")
    with pytest.raises(SubjectDataError, match="photo.heic"):
        list_images(tmp_path)


def test_unreadable_file_is_named(subject_dir):
    (subject_dir / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(SubjectDataError, match="broken.jpg"):
        load_images(subject_dir, 32)


def test_small_images_warn_with_names(subject_dir):
    with pytest.warns(UserWarning, match="00.png"):
        images = load_images(subject_dir, 64)  # the synthetic photos are 48 px
    assert len(images) == 5 and all(im.size == (64, 64) for im in images)


def test_modes_become_rgb(tmp_path):
    rgba = Image.new("RGBA", (40, 30), (255, 0, 0, 0))  # fully transparent -> white
    rgba.save(tmp_path / "a.png")
    Image.new("L", (40, 30), 100).save(tmp_path / "b.png")
    Image.new("CMYK", (40, 30), (0, 255, 0, 0)).save(tmp_path / "c.jpg")
    assert open_rgb(tmp_path / "a.png").getpixel((0, 0)) == (255, 255, 255)
    assert open_rgb(tmp_path / "b.png").getpixel((0, 0)) == (100, 100, 100)
    assert open_rgb(tmp_path / "c.jpg").mode == "RGB"


def test_exif_orientation_is_applied(tmp_path):
    img = Image.new("RGB", (60, 30), "red")
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 degrees clockwise to display"
    img.save(tmp_path / "phone.jpg", exif=exif)
    assert open_rgb(tmp_path / "phone.jpg").size == (30, 60)


def test_crop_is_square_and_centred():
    img = Image.new("RGB", (100, 50), "black")
    img.paste((255, 255, 255), (40, 0, 60, 50))  # a white band in the middle
    out = resize_and_crop(img, 32)
    assert out.size == (32, 32)
    assert out.getpixel((16, 16)) == (255, 255, 255)


def test_tensor_round_trip():
    img = Image.fromarray(np.arange(48, dtype=np.uint8).reshape(4, 4, 3))
    t = to_tensor(img)
    assert t.shape == (3, 4, 4) and t.min() >= -1 and t.max() <= 1
    assert np.array_equal(np.asarray(to_pil(t)), np.asarray(img))


def test_synthetic_subject_is_deterministic(tmp_path):
    a = make_synthetic_subject(tmp_path / "a", n=3, seed=7)
    b = make_synthetic_subject(tmp_path / "b", n=3, seed=7)
    for x, y in zip(list_images(a), list_images(b)):
        assert np.array_equal(np.asarray(Image.open(x)), np.asarray(Image.open(y)))


def test_uploads_are_checked_then_saved(tmp_path):
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="PNG")
    saved = save_uploads([{"name": "dog.png", "content": memoryview(buf.getvalue())}], tmp_path / "up")
    assert saved[0].read_bytes() == buf.getvalue()
    with pytest.raises(SubjectDataError, match="notes.txt"):
        save_uploads([{"name": "notes.txt", "content": b"hello"}], tmp_path / "up")


def test_manifest_lists_sources_with_licences():
    manifest = read_manifest()
    for name, entry in manifest["subjects"].items():
        assert {"source", "class_noun", "instance_prompt", "licence"} <= entry.keys(), name
    assert "diffusers/dog-example" in {e["source"] for e in manifest["subjects"].values()}


def test_hub_dataset_offline_says_what_to_do(tmp_path, monkeypatch):
    from helpers.train.data import download_hub_dataset

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SubjectDataError, match="upload widget"):
        download_hub_dataset("diffusers/dog-example", tmp_path / "dog")


def test_tensor_dtype():
    assert to_tensor(Image.new("RGB", (2, 2))).dtype == torch.float32


def test_to_tensor_of_a_batch_is_the_stack_of_its_images():
    batch = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    stacked = torch.stack([to_tensor(Image.fromarray(image)) for image in batch])
    assert to_tensor(batch).shape == (3, 3, 8, 8) and torch.equal(to_tensor(batch), stacked)


# ----------------------------------------------------------------- a helper these tests use


def to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor (3, H, W) in [-1, 1] -> PIL RGB image."""
    array = ((tensor.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array)
