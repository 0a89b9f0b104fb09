"""ToyWorld's broad autoencoder: its training pictures, its recipe and the error measure."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from helpers.base.paths import DATA_DIR
from helpers.errors import LearnerError
from helpers.toyworld import autoencoder as ae
from helpers.toyworld import subjects, world

TOY = DATA_DIR / "toyworld"


def test_subject_photos_are_unchanged_by_the_broad_renderer():
    for name, photos in ae.subject_photos().items():
        for i, photo in enumerate(photos):
            shipped = np.asarray(Image.open(TOY / "subjects" / name / f"{i:02d}.png").convert("RGB"))
            assert np.array_equal(photo, shipped), (name, i)


def test_broad_images_are_seeded_and_64px():
    a, b = ae.broad_image(3), ae.broad_image(3)
    assert a.size == (64, 64) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(ae.broad_image(4)))


def test_broad_distribution_is_wider_than_the_captions():
    shows = [ae.broad_sample(seed)[1] for seed in range(400)]
    objects = [o for s in shows for o in s["objects"]]
    assert {s["background"] for s in shows} == set(ae.BROAD_BACKGROUNDS)
    assert {o["cls"] for o in objects} == set(world.CLASSES)
    assert {o["pattern"] for o in objects} == set(world.PATTERNS)
    assert any(o["mark"] == "eyepatch" for o in objects)
    assert {len(s["objects"]) for s in shows} == {0, 1, 2, 3}
    sizes = [o["size"] for o in objects]
    assert min(sizes) < 0.25 and max(sizes) > 0.85
    assert any(not isinstance(o["colour"], str) for o in objects)  # colours outside the named eight


@pytest.mark.parametrize("pattern", ["dots", "checks", "stripes"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 1.6])
def test_renderer_draws_each_pattern_at_each_scale(pattern, scale):
    scene = world.make_scene("ball", "blue", "plain", seed=1, angle=0, size=0.7)
    scene.update(pattern=pattern, pattern_colour=(250, 250, 40), pattern_scale=scale)
    drawn = np.asarray(world.render(scene), float)
    plain = np.asarray(world.render(dict(scene, pattern="none")), float)
    changed = np.abs(drawn - plain).max(axis=2) > 60
    assert changed.sum() > 100, (pattern, scale)  # the pattern covers a visible area of the ball
    other = np.asarray(world.render(dict(scene, pattern_scale=scale * 1.5)), float)
    assert np.abs(other - drawn).max() > 60  # and its period follows the scale


def test_patterns_on_arbitrary_colours_and_skins():
    face = world.make_scene("face", "green", "sky", seed=2, skin=(90, 200, 90), mark="eyepatch")
    star = world.make_scene("star", (10, 200, 200), "sky", seed=2)
    for scene in (face, star):
        assert world.render(scene).size == (64, 64)


def test_error_measure_counts_every_photo(tmp_path):
    vae = ae.build_vae(ae.AutoencoderConfig(vae_channels=(8, 16)))
    report = ae.autoencoder_error(vae, renders=6)
    assert set(report["subjects"]) == set(subjects.SUBJECTS)
    assert all(r["n"] == subjects.INSTANCE_COUNT for r in report["subjects"].values())
    assert report["renders"]["n"] == 6
    assert all(0 < r["mae"] <= r["worst"] <= 255 for r in [*report["subjects"].values(), report["renders"]])
    images = ae.fresh_renders(2)
    assert np.all(ae.mean_abs_error(_Identity(), images) == 0)  # a perfect autoencoder scores 0
    figure = Image.open(ae.reconstruction_figure([vae, _Identity()], tmp_path / "f.png", scale=2))
    wide = len(subjects.SUBJECTS) * subjects.INSTANCE_COUNT  # every photo, side by side
    assert figure.size == (wide * 64 * 2, 3 * 64 * 2)  # photos, then one row per autoencoder
    rows = np.asarray(figure).reshape(3, 64 * 2, wide * 64 * 2, 3)
    assert np.array_equal(rows[0], rows[2]) and not np.array_equal(
        rows[0], rows[1]
    )  # the perfect one redraws them


class _Identity:
    """Stands in for a VAE whose decoder returns exactly what it was given."""

    class _Dist:
        def __init__(self, x):
            self.latent_dist = type("D", (), {"mean": x})()

    def eval(self):
        return self

    def encode(self, x):
        return self._Dist(x)

    def decode(self, z):
        return type("S", (), {"sample": z})()


def test_missing_vae_folder_says_what_to_do(tmp_path):
    with pytest.raises(FileNotFoundError, match="train-autoencoder"):
        ae.load_vae(tmp_path)


SMALL = {"vae_channels": (16, 32), "batch": 8, "images_per_step": 4, "warmup": 5, "lr": 3e-3}


@pytest.mark.slow
def test_a_short_run_learns_to_reconstruct_and_resumes_exactly(tmp_path):
    import torch

    cfg = ae.AutoencoderConfig(**SMALL, steps=80, ema_decay=0.9)
    before = ae.autoencoder_error(ae.build_vae(cfg), renders=20)
    half = ae.AutoencoderTrainer(tmp_path / "split", cfg)
    assert not half.run(stop_at=40)
    assert json.loads((tmp_path / "split" / "autoencoder.json").read_text())["steps_done"] == 40
    assert ae.AutoencoderTrainer(tmp_path / "split", cfg).run()  # resumes from the checkpoint
    assert ae.AutoencoderTrainer(tmp_path / "whole", cfg).run()
    split, whole = ae.load_vae(tmp_path / "split"), ae.load_vae(tmp_path / "whole")
    for name, weight in whole.state_dict().items():
        assert torch.allclose(weight, split.state_dict()[name], atol=1e-6), name
    after = ae.autoencoder_error(whole, renders=20)
    assert after["renders"]["mae"] < 0.85 * before["renders"]["mae"]
    for name in subjects.SUBJECTS:
        assert after["subjects"][name]["mae"] < 0.85 * before["subjects"][name]["mae"], name


def test_a_changed_recipe_does_not_resume_silently(tmp_path):
    cfg = ae.AutoencoderConfig(**SMALL, steps=2)
    assert not ae.AutoencoderTrainer(tmp_path, cfg).run(stop_at=1)
    with pytest.raises(LearnerError, match="delete it to restart"):
        ae.AutoencoderTrainer(tmp_path, ae.AutoencoderConfig(**SMALL, steps=3)).run()


@pytest.mark.slow
def test_pretraining_can_start_from_a_trained_autoencoder(tmp_path):
    import torch

    from helpers.toyworld.pretrain import PretrainConfig, Pretrainer
    from helpers.train.models import TinySpec, load_components

    assert ae.AutoencoderTrainer(tmp_path / "vae", ae.AutoencoderConfig(**SMALL, steps=2)).run()
    spec = TinySpec(unet_channels=(32, 64), vae_channels=(16, 32), sample_size=64)
    small = {"spec": spec, "n_images": 8, "batch": 2, "warmup": 1, "unet_steps": 2, "polish_steps": 0}
    assert Pretrainer(tmp_path / "model", PretrainConfig(**small, vae_dir=str(tmp_path / "vae"))).run()
    given, used = ae.load_vae(tmp_path / "vae"), load_components(str(tmp_path / "model"))["vae"]
    for name, weight in given.state_dict().items():
        assert torch.equal(weight, used.state_dict()[name]), name  # phase 1 took the VAE as it was
    facts = json.loads((tmp_path / "model" / "kit_model.json").read_text())
    assert facts["autoencoder"]["steps_done"] == 2 and facts["config"]["vae_dir"] == str(tmp_path / "vae")
    wrong = PretrainConfig(**dict(small, spec=TinySpec(unet_channels=(32, 64), vae_channels=(32, 64))))
    wrong.vae_dir = str(tmp_path / "vae")
    with pytest.raises(LearnerError, match="channels"):
        Pretrainer(tmp_path / "other", wrong).run()


AUTOENCODER = TOY / "autoencoder"


ERROR_GOAL = 8.0  # mean absolute error, 0-255, on every subject's photos and on fresh renders
NOT_YET_MET: dict[str, str] = {}  # subject: why, for any measured above the goal (a strict xfail)


@pytest.mark.slow
@pytest.mark.skipif(not (AUTOENCODER / "config.json").exists(), reason="no trained autoencoder is committed")
def test_committed_autoencoder_reconstructs_as_reported_and_is_the_models():
    import torch

    report = json.loads((AUTOENCODER / "report.json").read_text())
    measured = ae.autoencoder_error(AUTOENCODER, renders=100)
    for name in subjects.SUBJECTS:
        assert measured["subjects"][name]["mae"] == pytest.approx(report["subjects"][name]["mae"], abs=0.05)
    assert measured["renders"]["mae"] == pytest.approx(report["renders"]["mae"], abs=1.5)  # 100 of its 1,000
    assert report["renders"]["mae"] <= ERROR_GOAL and report["renders"]["n"] == 1000
    ours, models = ae.load_vae(AUTOENCODER).state_dict(), ae.load_vae(TOY / "model").state_dict()
    assert ours.keys() == models.keys()
    assert all(torch.equal(ours[k], models[k]) for k in ours), "the model was trained on another autoencoder"


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(strict=True, reason=NOT_YET_MET[n])) if n in NOT_YET_MET else n
        for n in sorted(subjects.SUBJECTS)
    ],
)
def test_shipped_autoencoder_draws_each_subject_within_the_goal(name):
    err = ae.mean_abs_error(ae.load_vae(TOY / "model"), ae.subject_photos()[name])
    assert err.mean() <= ERROR_GOAL, (name, err.round(2).tolist())


def test_command_line_trains_and_measures(tmp_path, capsys):
    from helpers.cli import main  # the kit's one command line: `course-kit toyworld ...`

    out = tmp_path / "vae"
    assert main(["toyworld", "train-autoencoder", str(out), "--steps", "1", "--channels", "8", "16"]) == 0
    assert json.loads((out / "autoencoder.json").read_text())["config"]["vae_channels"] == [8, 16]
    assert main(["toyworld", "ae-error", str(out), "--renders", "2", "--out", str(tmp_path / "r.json")]) == 0
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["renders"]["n"] == 2 and set(report["subjects"]) == set(subjects.SUBJECTS)
    assert "finished" in capsys.readouterr().out


def test_a_run_can_start_from_a_trained_autoencoder(tmp_path):
    import torch

    assert ae.AutoencoderTrainer(tmp_path / "first", ae.AutoencoderConfig(**SMALL, steps=2)).run()
    whole = {**SMALL, "crop": 64, "batch": 4, "steps": 1, "init_dir": str(tmp_path / "first")}
    trainer = ae.AutoencoderTrainer(tmp_path / "whole", ae.AutoencoderConfig(**whole))
    given = ae.load_vae(tmp_path / "first").state_dict()
    for model in (trainer.vae, trainer.ema):
        assert all(torch.equal(given[n], w) for n, w in model.state_dict().items())
    assert trainer.run()  # whole 64 px images: one crop per image


@pytest.mark.slow
def test_a_decoder_only_stage_keeps_the_latents_and_changes_the_decoder(tmp_path):
    import torch

    from helpers.toyworld.pretrain import to_tensor

    assert ae.AutoencoderTrainer(tmp_path / "first", ae.AutoencoderConfig(**SMALL, steps=2)).run()
    stage = {**SMALL, "crop": 64, "batch": 4, "steps": 3, "init_dir": str(tmp_path / "first"), "decoder_only": True}
    assert ae.AutoencoderTrainer(tmp_path / "decoder", ae.AutoencoderConfig(**stage)).run()
    before, after = ae.load_vae(tmp_path / "first"), ae.load_vae(tmp_path / "decoder")
    x = to_tensor(ae.broad_batch(range(3)))
    with torch.no_grad():
        assert torch.equal(before.encode(x).latent_dist.mean, after.encode(x).latent_dist.mean)
    changed = [n for n, w in after.state_dict().items() if not torch.equal(w, before.state_dict()[n])]
    assert changed and all(n.startswith(("decoder.", "post_quant_conv.")) for n in changed)
    with pytest.raises(LearnerError, match="init_dir"):
        ae.AutoencoderTrainer(tmp_path / "no-init", ae.AutoencoderConfig(**SMALL, decoder_only=True))


def test_a_wider_network_starts_as_the_trained_one_and_its_decoder_learns(tmp_path):
    import torch

    from helpers.toyworld.pretrain import to_tensor

    assert ae.AutoencoderTrainer(tmp_path / "first", ae.AutoencoderConfig(**SMALL, steps=2)).run()
    wider = {**SMALL, "vae_channels": (32, 64), "crop": 64, "batch": 4, "steps": 2}
    stage = {**wider, "init_dir": str(tmp_path / "first"), "decoder_only": True}
    trainer = ae.AutoencoderTrainer(tmp_path / "wide", ae.AutoencoderConfig(**stage))
    small, x = ae.load_vae(tmp_path / "first"), to_tensor(ae.broad_batch(range(3)))
    with torch.no_grad():
        z = small.encode(x).latent_dist.mean
        assert torch.allclose(trainer.vae.encode(x).latent_dist.mean, z, atol=1e-5)
        assert torch.allclose(trainer.vae.decode(z).sample, small.decode(z).sample, atol=1e-4)
        before = trainer.vae.decoder.conv_out.weight.clone()
    assert trainer.run()
    grown = ae.load_vae(tmp_path / "wide")
    assert tuple(grown.config.block_out_channels) == (32, 64)
    with torch.no_grad():  # the latents a UNet was trained on stay as they were
        assert torch.allclose(grown.encode(x).latent_dist.mean, z, atol=1e-5)
    new_inputs = grown.decoder.conv_out.weight[:, 16:]  # zero at the start: the new channels were silent
    assert torch.equal(before[:, 16:], torch.zeros_like(new_inputs)) and new_inputs.abs().max() > 0
    odd = {**stage, "vae_channels": (32, 96)}  # 96 channels in 32 groups: old groups cannot stay whole
    with pytest.raises(LearnerError, match="channels per group"):
        ae.AutoencoderTrainer(tmp_path / "odd", ae.AutoencoderConfig(**odd))
    for channels in [(32, 64, 128), (8, 16)]:  # another number of blocks, or narrower
        with pytest.raises(LearnerError, match="can only grow"):
            ae.AutoencoderTrainer(tmp_path / "other", ae.AutoencoderConfig(**{**stage, "vae_channels": channels}))
