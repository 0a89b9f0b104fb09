"""ToyWorld: the renderer, subjects, evaluator, metrics and the shipped base model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from helpers.base.paths import DATA_DIR
from helpers.errors import LearnerError
from helpers.toyworld import evaluator as ev
from helpers.toyworld import metrics, subjects, world

TOY = DATA_DIR / "toyworld"
FRESH = 7_000_000  # seeds used neither in evaluator training, its report, nor pretraining


def test_render_is_deterministic_and_64px():
    a, b = world.render(world.sample_scene(5)), world.render(world.sample_scene(5))
    assert a.size == (64, 64) and a.mode == "RGB"
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(world.render(world.sample_scene(6))))


def test_sampler_covers_the_world():
    scenes = [world.sample_scene(s) for s in range(600)]
    assert {s["cls"] for s in scenes} == set(world.CLASSES)
    assert {s["colour"] for s in scenes} == set(world.COLOURS)
    assert {s["background"] for s in scenes} == set(world.BACKGROUNDS)


def test_captions_name_the_attributes():
    for seed in range(200):
        scene = world.sample_scene(seed)
        text = world.caption(scene)
        assert scene["cls"] in text and scene["colour"] in text
        assert world.BACKGROUND_PHRASES[scene["background"]] in text
        if scene["cls"] == "face":
            assert ("glasses" in text) == scene["glasses"] and ("hat" in text) == scene["hat"]
        parsed = world.parse_prompt(text)
        assert {k: parsed[k] for k in ("cls", "colour", "background")} == {
            k: scene[k] for k in ("cls", "colour", "background")
        }
    assert world.caption(world.make_scene("ring", "orange", "sky"), 1) == "an orange ring in the sky"


def test_open_captions_leave_details_out_for_the_chosen_share():
    scenes = [world.sample_scene(seed) for seed in range(1000)]
    assert all(world.training_caption(s) == world.caption(s) for s in scenes)  # share 0: full captions
    opened = 0
    for scene in scenes:
        text = world.training_caption(scene, 0.3)
        assert text == world.training_caption(scene, 0.3)  # fixed by the scene's seed
        parsed = world.parse_prompt(text)
        assert parsed["cls"] == scene["cls"]
        assert parsed.get("colour", scene["colour"]) == scene["colour"]  # never a wrong detail
        assert parsed.get("background", scene["background"]) == scene["background"]
        if text != world.caption(scene):
            opened += 1
            assert "colour" not in parsed or "background" not in parsed
    assert 250 <= opened <= 350
    face = world.make_scene("face", "green", "grass", glasses=True)
    assert world.caption(face, 0, leave_out=("colour",)) == "a photo of a face on the grass"
    assert world.caption(face, 0, leave_out=("where",)) == "a photo of a face with green hair wearing glasses"
    star = world.make_scene("star", "orange", "sky")
    assert world.caption(star, 0, leave_out=("colour", "where")) == "a photo of a star"
    with pytest.raises(ValueError, match="leave_out"):
        world.caption(star, 0, leave_out=("cls",))


def test_pretraining_data_uses_the_recipes_open_caption_share():
    from helpers.toyworld.pretrain import render_dataset

    images, full = render_dataset(40)
    same_images, mixed = render_dataset(40, 0.3)
    assert np.array_equal(images, same_images)
    assert mixed == [world.training_caption(world.sample_scene(i), 0.3) for i in range(40)]
    assert 0 < sum(a != b for a, b in zip(full, mixed, strict=True)) < 40


def test_training_captions_follow_the_recorded_recipe(tmp_path):
    (tmp_path / "kit_model.json").write_text(json.dumps({"config": {"n_images": 60, "open_caption_share": 0.3}}))
    opened = metrics.training_captions(tmp_path)
    assert opened == {world.training_caption(world.sample_scene(i), 0.3) for i in range(60)}
    (tmp_path / "kit_model.json").write_text(json.dumps({"config": {"n_images": 60}}))  # made before open captions
    full = metrics.training_captions(tmp_path)
    assert full == {world.caption(world.sample_scene(i)) for i in range(60)} != opened
    assert metrics.training_captions(tmp_path / "missing") == set()


def test_subject_features_never_appear_in_pretraining_scenes():
    for seed in range(3000):
        scene = world.sample_scene(seed)
        assert scene["pattern"] == "none" and scene["mark"] == "none" and scene["subject"] == "none"


def test_subject_feature_changes_the_picture():
    for name in subjects.SUBJECTS:
        scene = subjects.subject_scene(name, 3, "plain")
        plain = dict(scene, pattern="none", mark="none", subject="none")
        diff = np.abs(np.asarray(world.render(scene), float) - np.asarray(world.render(plain), float))
        assert (diff.max(axis=2) > 60).sum() > 20, name  # the feature covers a visible area


def test_shipped_subjects_match_the_manifest():
    manifest = json.loads((TOY / "subjects" / "manifest.json").read_text())
    assert set(manifest["subjects"]) == set(subjects.SUBJECTS)
    for entry in manifest["subjects"].values():
        assert entry["instance_prompt"] == f"a photo of sks {entry['class_noun']}"
        assert 4 <= len(entry["images"]) <= 6
        for rel in entry["images"]:
            assert (TOY / "subjects" / rel).exists()


@pytest.fixture(scope="module")
def model():
    return metrics.load_evaluator()


def test_evaluator_reaches_its_reported_accuracy(model):
    report = json.loads((TOY / "evaluator" / "report.json").read_text())
    images, ys = ev.render_pool(FRESH, 64)
    acc = ev.accuracy(model, images, ys)
    for head in ev.HEADS:
        assert acc[head] >= min(0.9, report["accuracy"][head] - 0.05), (head, acc[head])


def test_subject_fidelity_separates_subjects_from_random_renders(model):
    randoms = [world.render(world.sample_scene(FRESH + i)) for i in range(32)]
    for name in subjects.SUBJECTS:
        instances = subjects.instance_images(name)
        assert metrics.subject_fidelity(instances, name, model) >= 0.8
        assert metrics.subject_fidelity(randoms, name, model) <= 0.1
        assert metrics.language_drift(randoms, name, model) <= 0.1
        roles = {"instance": ["a"]}
        same = metrics.score_row({"a": instances}, roles, instances, name, model)["subject_similarity"]
        assert same > metrics.score_row({"a": randoms}, roles, instances, name, model)["subject_similarity"] + 0.1


@pytest.mark.parametrize("name", sorted(subjects.SUBJECTS))
def test_subject_head_decides_from_the_feature(model, name):
    """Fresh renders of a subject are recognised; the same objects without their feature are not."""
    backgrounds = list(world.BACKGROUNDS)
    scenes = [subjects.subject_scene(name, FRESH + 300 + i, backgrounds[i % len(backgrounds)]) for i in range(24)]
    plain = [dict(s, pattern="none", mark="none", subject="none") for s in scenes]
    assert metrics.subject_fidelity([world.render(s) for s in scenes], name, model) >= 0.9
    assert metrics.subject_fidelity([world.render(s) for s in plain], name, model) <= 0.1


def test_subject_head_reads_the_eyepatch_from_the_patch_not_the_strap(model):
    """A face with the patch but no strap is the subject; the strap alone, with the eye showing, is not.

    Generations often lose the eyepatch's thin strap while the patch over the eye stays, as a
    person would still see it.
    """
    scenes = [subjects.subject_scene("patch_face", FRESH + 500 + i, world.BACKGROUNDS[i % len(world.BACKGROUNDS)]) for i in range(24)]
    patch_only = [world.render(dict(s, mark="patch")) for s in scenes]
    strap_only = [world.render(dict(s, mark="strap", subject="none")) for s in scenes]
    assert metrics.subject_fidelity(patch_only, "patch_face", model) >= 0.9
    assert metrics.subject_fidelity(strap_only, "patch_face", model) <= 0.1


def test_the_eyepatch_is_drawn_as_a_patch_and_a_strap():
    scene = subjects.subject_scene("patch_face", FRESH + 600, "plain")
    drawn = {mark: np.asarray(world.render(dict(scene, mark=mark)), float) for mark in world.MARKS}
    full = np.abs(drawn["eyepatch"] - drawn["none"]).max(axis=2) > 60
    parts = [np.abs(drawn[m] - drawn["none"]).max(axis=2) > 60 for m in ("patch", "strap")]
    assert parts[0].sum() > 20 and parts[1].sum() > 20
    assert all((part & ~full).sum() < 5 for part in parts)  # each part lies within the whole eyepatch
    assert (parts[0] | parts[1]).sum() >= 0.9 * full.sum()


def test_reconstructions_are_labelled_by_what_they_show():
    """A reconstruction that lost the feature is labelled "none"; recoloured subjects are left out."""
    scenes = [subjects.subject_scene(name, FRESH + 400, "plain") for name in sorted(subjects.SUBJECTS)]
    scenes.append(world.sample_scene(FRESH + 401))
    scenes.append(dict(subjects.subject_scene("dotted_star", FRESH + 402, "sky"), colour="blue"))
    ys = {k: np.array([ev.labels(s)[k] for s in scenes]) for k in ev.HEADS}
    ys["is_face"] = np.array([s["cls"] == "face" for s in scenes])
    shown = [dict(s, pattern="none", mark="none") if i == 0 else s for i, s in enumerate(scenes)]  # first lost it
    images = np.stack([np.asarray(world.render(s)) for s in shown])
    kept, labels, counts = ev.label_by_pixels(images, ys, scenes)
    assert len(kept) == len(scenes) - 1 and np.array_equal(kept, images[:-1])
    assert labels["subject"][0] == 0 and list(labels["subject"][1:4]) == list(ys["subject"][1:4])
    assert labels["subject"][4] == 0 and np.array_equal(labels["cls"], ys["cls"][:-1])
    assert counts == {"subjects": 5, "feature_kept": 3, "feature_lost": 1, "recoloured_left_out": 1}


def test_washing_out_pulls_half_the_images_towards_flat_colours():
    import torch

    x = torch.rand(64, 3, 8, 8) * 2 - 1
    same = ev.wash_out(x, torch.Generator().manual_seed(0), 0.0)
    washed = ev.wash_out(x, torch.Generator().manual_seed(0), 0.3)
    again = ev.wash_out(x, torch.Generator().manual_seed(0), 0.3)
    assert torch.equal(washed, again)
    changed = (washed - x).abs().flatten(1).max(1).values > 1e-6
    assert 16 <= int(changed.sum()) <= 48  # about half the batch
    def spread(t):
        return t.flatten(1).std(1)

    assert (spread(washed)[changed] < spread(x)[changed]).all()  # flatter: less contrast, less colour
    assert (spread(same) <= spread(x) + 1e-6).all()


def test_prompt_fidelity_and_diversity(model):
    scenes = [world.sample_scene(FRESH + 100 + i) for i in range(24)]
    images = [world.render(s) for s in scenes]
    right = [world.caption(s) for s in scenes]
    wrong = [
        world.caption(dict(s, background="brick" if s["background"] != "brick" else "sky")) for s in scenes
    ]
    assert metrics.prompt_fidelity(images, right, model) >= 0.85
    assert metrics.prompt_fidelity(images, wrong, model) <= 0.2
    roles, refs = {"instance": ["a"]}, images[:2]
    copies = metrics.score_row({"a": [images[0]] * 4}, roles, refs, "dotted_star", model)
    assert copies["diversity"] < 1e-4 and copies["n"]["diversity"] == 4
    assert metrics.score_row({"a": images}, roles, refs, "dotted_star", model)["diversity"] > 0.05


def test_score_row_reads_each_role_for_its_own_measures(model):
    """Context images are checked for their place, attribute images for the change, class images for drift."""
    name = "dotted_star"
    prompts = subjects.scoring_prompts(name)
    instances = subjects.instance_images(name)
    beach = [world.render(subjects.subject_scene(name, FRESH + 500 + i, "sand")) for i in range(4)]
    plain = [world.render(world.sample_scene(FRESH + 600 + i)) for i in range(4)]
    images = {prompts["instance"][0]: instances[:4], prompts["context"][0]: beach,
              prompts["attribute"][0]: instances[:4], prompts["class"][0]: instances[:4]}
    roles = {"instance": prompts["instance"], "context": prompts["context"][:1],
             "attribute": prompts["attribute"], "class": prompts["class"]}
    row = metrics.score_row(images, roles, instances, name, model)
    assert row["n"] == {"subject_fidelity": 8, "context_fidelity": 4, "attribute_fidelity": 4, "language_drift": 4,
                        "class_fidelity": 4, "subject_similarity": 8, "copying": 8, "diversity": 4}
    assert row["subject_fidelity"] >= 0.8 and row["context_fidelity"] >= 0.75
    assert row["attribute_fidelity"] <= 0.25  # the photos are not purple
    assert row["language_drift"] >= 0.75  # the class prompt gave the subject back
    copying = row["per_image"]["copying"]  # the first four are the photos themselves, the others fresh renders
    assert min(copying[:4]) > 0.999 > max(copying[4:]) and row["copying"] > row["subject_similarity"]
    other = metrics.score_row({**images, prompts["class"][0]: plain}, roles, instances, name, model)
    assert other["language_drift"] <= 0.25


@pytest.mark.slow
def test_pretraining_stops_and_resumes(tmp_path):
    from helpers.toyworld.pretrain import PretrainConfig, Pretrainer, add_latent_mean
    from helpers.train.models import TinySpec, load_pipeline

    spec = TinySpec(unet_channels=(32, 64), vae_channels=(32, 64), sample_size=64)
    cfg = PretrainConfig(
        spec=spec, n_images=8, vae_steps=2, vae_batch=2, unet_steps=2, polish_steps=1, batch=2, warmup=1
    )
    assert not Pretrainer(tmp_path, cfg).run(minutes=1e-6)  # out of time at once: checkpoint only
    assert (tmp_path / "checkpoint" / "state.pt").exists()
    assert Pretrainer(tmp_path, cfg).run()
    assert not (tmp_path / "checkpoint").exists()
    facts = json.loads((tmp_path / "kit_model.json").read_text())
    assert facts["phase"] == "done" and facts["unet_steps_done"] == 3
    pipe = load_pipeline(str(tmp_path))
    assert pipe.vae.config.scaling_factor == pytest.approx(facts["scaling_factor"])
    recorded = pipe.vae.config.latents_mean  # for sampling (helpers.train.sampling.initial_latents)
    assert len(recorded) == 4
    assert add_latent_mean(tmp_path) == pytest.approx(recorded, abs=1e-5)  # the after-the-fact path agrees


def test_pretraining_lr_warms_up_then_falls_to_zero_in_the_polish_phase():
    from helpers.toyworld.pretrain import PretrainConfig, _lr_at

    cfg = PretrainConfig(unet_steps=100, lr=1e-3, warmup=10, polish_steps=40)
    assert _lr_at(0, cfg) == pytest.approx(1e-4) and _lr_at(99, cfg) == pytest.approx(1e-3)
    assert _lr_at(100, cfg) == pytest.approx(1e-3)  # the polish starts at the full rate ...
    assert _lr_at(120, cfg) == pytest.approx(0.5e-3)
    assert 0 < _lr_at(139, cfg) < 0.03e-3  # ... and its last step runs at a fortieth of it


def test_centering_the_vae_shifts_latents_but_not_images():
    import torch

    from helpers.toyworld.pretrain import center_vae
    from helpers.train.models import TinySpec, build_tiny_components

    vae = build_tiny_components(TinySpec(vae_channels=(32, 64), sample_size=32))["vae"].eval()
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        before = vae.encode(x).latent_dist.mean
        decoded = vae.decode(before).sample
        shift = center_vae(vae, before.mean(dim=(0, 2, 3)))
        after = vae.encode(x).latent_dist.mean
        assert torch.allclose(after, before - shift, atol=1e-5)
        assert after.mean(dim=(0, 2, 3)).abs().max() < 1e-5 < before.mean(dim=(0, 2, 3)).abs().max()
        assert torch.allclose(vae.decode(after).sample, decoded, atol=1e-4)


@pytest.mark.slow
def test_polish_phase_and_warm_start_give_the_same_model(tmp_path):
    """The whole recipe, and its polish phase started from the model saved after phase 3, agree."""
    import torch

    from helpers.toyworld.pretrain import PretrainConfig, Pretrainer
    from helpers.train.models import TinySpec, load_components

    spec = TinySpec(unet_channels=(32, 64), vae_channels=(32, 64), sample_size=64)
    small = {"spec": spec, "n_images": 8, "vae_steps": 2, "vae_batch": 2, "batch": 2, "warmup": 1}
    assert Pretrainer(tmp_path / "main", PretrainConfig(**small, unet_steps=2, polish_steps=0)).run()
    cfg = PretrainConfig(**small, unet_steps=2, polish_steps=2)
    assert Pretrainer(tmp_path / "whole", cfg).run()
    warm = Pretrainer(tmp_path / "warm", cfg)
    warm.warm_start(tmp_path / "main")
    assert warm.run()
    main, whole, polished = (load_components(str(tmp_path / n)) for n in ("main", "whole", "warm"))
    facts = json.loads((tmp_path / "whole" / "kit_model.json").read_text())
    assert facts["unet_steps_done"] == 4 and facts["phase"] == "done"
    for k in ("unet", "text_encoder"):
        a, b, c = (m[k].state_dict() for m in (main, whole, polished))
        assert all(torch.allclose(b[n], c[n], atol=1e-6) for n in b)  # same computation either way
        assert not all(torch.equal(a[n], b[n]) for n in a)  # the polish moved the weights


def test_continued_pretraining_keeps_the_vae_and_scale_and_moves_the_unet(tmp_path):
    import torch

    from helpers.toyworld.pretrain import PretrainConfig, Pretrainer
    from helpers.train.models import TinySpec, load_components

    spec = TinySpec(unet_channels=(32, 64), vae_channels=(32, 64), sample_size=64)
    small = {"spec": spec, "n_images": 8, "vae_steps": 2, "vae_batch": 2, "batch": 2, "warmup": 1, "polish_steps": 1}
    assert Pretrainer(tmp_path / "first", PretrainConfig(**small, unet_steps=2)).run()
    more = PretrainConfig(**small, unet_steps=3, init_dir=str(tmp_path / "first"))
    assert not Pretrainer(tmp_path / "more", more).run(minutes=1e-6)  # interrupted at once ...
    assert Pretrainer(tmp_path / "more", more).run()  # ... and resumed
    first, then = (load_components(str(tmp_path / n)) for n in ("first", "more"))
    assert then["vae"].config.scaling_factor == first["vae"].config.scaling_factor
    for name, weight in first["vae"].state_dict().items():
        assert torch.equal(weight, then["vae"].state_dict()[name]), name
    a, b = first["unet"].state_dict(), then["unet"].state_dict()
    assert not all(torch.equal(a[n], b[n]) for n in a)
    facts = json.loads((tmp_path / "more" / "kit_model.json").read_text())
    assert facts["unet_steps_done"] == 4 and facts["continued_from"][0]["unet_steps_done"] == 3
    assert f"--init {tmp_path / 'first'} --unet-steps 3" in facts["command"]
    other = PretrainConfig(**dict(small, spec=TinySpec(unet_channels=(32, 64), vae_channels=(16, 32))))
    other.init_dir = str(tmp_path / "first")
    with pytest.raises(LearnerError, match="another shape"):
        Pretrainer(tmp_path / "other", other).run()


@pytest.mark.slow
@pytest.mark.skipif(
    not (TOY / "model" / "model_index.json").exists(), reason="the ToyWorld model is not built"
)
def test_shipped_model_generates_64px():
    import torch

    from helpers.train.models import load_pipeline

    pipe = load_pipeline(str(TOY / "model"))
    out = pipe(
        "a photo of a red star on the grass",
        num_inference_steps=2,
        guidance_scale=5.0,
        generator=torch.Generator().manual_seed(0),
    )
    assert out.images[0].size == (64, 64)


@pytest.mark.skipif(
    not (TOY / "model" / "model_index.json").exists(), reason="the ToyWorld model is not built"
)
def test_shipped_model_stays_small_and_its_vae_is_the_autoencoder():
    import json

    shipped = [p for p in (TOY / "model").rglob("*") if p.is_file() and "checkpoint" not in p.parts]
    assert sum(p.stat().st_size for p in shipped) <= 50e6  # every learner downloads it with the kit
    ours = json.loads((TOY / "autoencoder" / "config.json").read_text())
    models = json.loads((TOY / "model" / "vae" / "config.json").read_text())
    assert ours["block_out_channels"] == models["block_out_channels"]
    assert models["latents_mean"] and models["scaling_factor"]  # pretraining's records, kept when the VAE grew


def test_continuing_a_model_without_steps_or_with_another_vae_stops_with_one_message(tmp_path, capsys):
    from helpers.cli import main

    model = str(tmp_path / "model")
    (tmp_path / "model").mkdir()  # the command line checks first that the folder exists
    assert main(["toyworld", "pretrain", str(tmp_path / "out"), "--init", model]) == 2
    assert "--unet-steps" in capsys.readouterr().err
    assert main(["toyworld", "pretrain", str(tmp_path / "out"), "--init", model, "--unet-steps", "5",
                 "--vae", model]) == 2
    assert "leave out --vae" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()  # stopped before any work
    assert main(["toyworld", "pretrain", str(tmp_path / "out"), "--init", model, "--unet-steps", "5"]) == 2
    assert "kit_model.json" in capsys.readouterr().err  # a folder that is not a pretrained model: one message


def test_a_checkpoint_resumes_only_under_the_configuration_that_wrote_it(tmp_path):
    from helpers.errors import LearnerError
    from helpers.toyworld.checkpoint import load_state, save_state

    path = tmp_path / "checkpoint" / "state.pt"
    assert load_state(path, {"lr": 1e-3}) is None  # nothing saved yet
    save_state(path, {"lr": 1e-3}, state={"step": 3})
    assert load_state(path, {"lr": 1e-3})["state"] == {"step": 3}
    assert not path.with_suffix(".tmp").exists()
    with pytest.raises(LearnerError, match="another configuration"):
        load_state(path, {"lr": 2e-3})


def test_every_kind_of_face_draws_the_same_pixels_as_before():
    """A drawing regression check: every hair style, eyes, mouth and mark, with and without glasses and hat.

    The digest was taken before ``_draw_face`` was split into parts; it depends on Pillow's drawing,
    so a Pillow upgrade that draws differently changes it too.
    """
    import hashlib
    import itertools

    marks = sorted({*world.PATCH_MARKS, *world.STRAP_MARKS, "none"})
    digest = hashlib.sha256()
    kinds = itertools.product(world.HAIR_STYLES, world.EYES, world.MOUTHS, marks)
    for i, (hair, eyes, mouth, mark) in enumerate(kinds):
        scene = world.make_scene("face", sorted(world.COLOURS)[i % len(world.COLOURS)], world.BACKGROUNDS[0], seed=i,
                                 hair_style=hair, eyes=eyes, mouth=mouth, mark=mark, glasses=i % 2 == 0, hat=i % 3 == 0)
        digest.update(world.render(scene, 64).tobytes())
    assert digest.hexdigest() == "71d22529c35f2aa96a338785c8edb58bb6595fd1b0bc3d80595254c79e40fb1d"


def test_evaluator_training_is_repeatable_for_a_seed():
    import torch

    def run(seed):
        model, facts = ev.train(ev.EvaluatorTraining(steps=3, batch=8, pool=16, seed=seed, wash=0.2))
        return model.state_dict(), {k: v for k, v in facts.items() if not k.endswith("seconds")}

    (a, facts_a), (b, facts_b), (c, _) = run(1), run(1), run(2)
    assert all(torch.equal(a[k], b[k]) for k in a) and facts_a == facts_b
    assert facts_a["first_seed"] == ev.STAGE_SEEDS[0] + 16 and facts_a["steps"] == 3
    assert not all(torch.equal(a[k], c[k]) for k in a)
