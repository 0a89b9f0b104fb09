"""Class images for prior preservation: batched, resumable without duplicates, and never reused when stale."""

import pytest

from helpers.train.class_images import (
    ClassImageSpec,
    StaleClassImagesError,
    default_class_dir,
    generate_class_images,
    image_path,
)


@pytest.fixture()
def spec(tiny_model_dir):
    return ClassImageSpec(
        model=str(tiny_model_dir),
        prompt="a photo of dog",
        scheduler="dpm++",
        num_inference_steps=2,
        seed=3,
        resolution=32,
    )


def test_generates_with_a_record_and_reuses(tmp_path, tiny_pipe, spec, monkeypatch):
    paths = generate_class_images(tmp_path / "dog", spec, 3, batch_size=2, pipe=tiny_pipe, progress=False)
    assert [p.name for p in paths] == ["00000.png", "00001.png", "00002.png"]
    assert (tmp_path / "dog" / "class_images.json").exists()
    import helpers.train.class_images

    monkeypatch.setattr(
        helpers.train.class_images, "generate", lambda *a, **k: pytest.fail("regenerated a cached image")
    )
    assert generate_class_images(tmp_path / "dog", spec, 3, pipe=tiny_pipe, progress=False) == paths


def test_interrupted_generation_resumes_without_duplicates(tmp_path, tiny_pipe, spec, monkeypatch):
    import helpers.train.class_images

    real, calls = helpers.train.class_images.generate, []

    def interrupted(pipe, prompts, seeds, **kwargs):  # the second batch never finishes
        calls.append(list(seeds))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(pipe, prompts, seeds, **kwargs)

    monkeypatch.setattr(helpers.train.class_images, "generate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generate_class_images(tmp_path / "a", spec, 4, batch_size=2, pipe=tiny_pipe, progress=False)
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == [
        "00000.png",
        "00001.png",
        "class_images.json",
    ]
    calls.clear()
    monkeypatch.setattr(
        helpers.train.class_images, "generate", lambda *a, **k: calls.append(list(a[2])) or real(*a, **k)
    )
    generate_class_images(tmp_path / "a", spec, 4, batch_size=2, pipe=tiny_pipe, progress=False)
    assert calls == [[5, 6]]  # only images 2 and 3 (seeds 3 + index) were made
    # the same images as an uninterrupted run: image i always comes from seed + i
    generate_class_images(tmp_path / "b", spec, 4, batch_size=2, pipe=tiny_pipe, progress=False)
    for i in range(4):
        assert image_path(tmp_path / "a", i).read_bytes() == image_path(tmp_path / "b", i).read_bytes()


def test_stale_cache_is_refused(tmp_path, tiny_pipe, spec):
    generate_class_images(tmp_path / "dog", spec, 1, pipe=tiny_pipe, progress=False)
    for change in (
        {"prompt": "a photo of cat"},
        {"num_inference_steps": 50},
        {"scheduler": "pndm"},
        {"seed": 0},
    ):
        other = ClassImageSpec(**{**spec.__dict__, **change})
        with pytest.raises(StaleClassImagesError, match=next(iter(change))):
            generate_class_images(tmp_path / "dog", other, 1, pipe=tiny_pipe, progress=False)
    assert default_class_dir(spec) != default_class_dir(ClassImageSpec(**{**spec.__dict__, "seed": 0}))


def test_folder_without_record_is_refused(tmp_path, spec):
    from helpers.train.data import make_synthetic_subject

    folder = make_synthetic_subject(tmp_path / "mine", n=1, size=16)
    with pytest.raises(StaleClassImagesError, match="class_images.json"):
        generate_class_images(folder, spec, 1, progress=False)
