"""Tests for helpers.measure.backbones on tiny random DINO and CLIP backbones, loaded like the Hub's."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from helpers.base.stats import Estimate, format_table, mean_of, within_prompt_distance
from helpers.measure import backbones as measures
from helpers.measure.scores import BACKBONE_HEADERS, COLUMNS
from helpers.train.models import ModelUnavailableError

INSTANCE, BEACH, BLUE, CLASS = ("a photo of sks ball", "a photo of sks ball on the beach", "a photo of a blue sks ball",
                                "a photo of ball")


def noise(seed: int, size=(40, 48)) -> Image.Image:
    """A random RGB image (width, height), different for every seed."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def backbone_dirs(tmp_path_factory):
    """Tiny random DINO and CLIP saved as transformers folders (built from ViTConfig / CLIPConfig)."""
    root = tmp_path_factory.mktemp("backbones")
    return measures.build_tiny_dino(root / "dino"), measures.build_tiny_clip(root / "clip")


@pytest.fixture(scope="module")
def backbones(backbone_dirs):
    """The tiny backbones loaded back by folder, as a Hub id would be."""
    dino, clip = backbone_dirs
    return measures.load_backbones(str(dino), str(clip))


@pytest.fixture(scope="module")
def images():
    return [noise(i, size=(40 + 4 * i, 48)) for i in range(6)]


def test_folders_load_through_the_same_code_as_hub_ids(backbone_dirs, backbones):
    from transformers import CLIPModel, ViTModel

    assert isinstance(backbones.dino.model, ViTModel) and backbones.dino.tokenizer is None
    assert isinstance(backbones.clip.model, CLIPModel) and backbones.clip.tokenizer is not None
    assert all((d / "model.safetensors").exists() and (d / "preprocessor_config.json").exists() for d in backbone_dirs)
    assert not backbones.dino.model.training and backbones.dino.device.type == "cpu"


def test_a_vit_built_elsewhere_loads_too(tmp_path):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    folder = tmp_path / "other-vit"
    ViTModel(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                       image_size=48, patch_size=16)).save_pretrained(folder)
    ViTImageProcessor(size={"height": 48, "width": 48}).save_pretrained(folder)
    dino = measures.load_backbone("dino", str(folder))
    assert measures.embed_images(dino, [noise(0), noise(1)]).shape == (2, 16)


LEGACY_PROCESSORS = {  # the older feature-extractor form of preprocessor_config.json that Hub repositories hold
    "dino": {"feature_extractor_type": "ViTFeatureExtractor", "do_resize": True, "size": 224, "resample": 2,
             "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]},
    "clip": {"feature_extractor_type": "CLIPFeatureExtractor", "do_resize": True, "size": 224, "resample": 3,
             "do_center_crop": True, "crop_size": 224, "do_normalize": True,
             "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]},
}


@pytest.mark.parametrize("kind", ["dino", "clip"])
def test_legacy_feature_extractor_configs_preprocess_at_224_without_torchvision(tmp_path, kind):
    import json

    build = measures.build_tiny_dino if kind == "dino" else measures.build_tiny_clip
    folder = build(tmp_path / kind, image_size=224)
    (folder / "preprocessor_config.json").write_text(json.dumps(LEGACY_PROCESSORS[kind]))
    backbone = measures.load_backbone(kind, str(folder))
    pixels = backbone.processor(images=[noise(0, size=(300, 200))], return_tensors="pt")["pixel_values"]
    assert pixels.shape == (1, 3, 224, 224)
    assert measures.embed_images(backbone, [noise(0, size=(300, 200)), noise(1)]).shape[0] == 2


@pytest.mark.parametrize("kind", ["dino", "clip"])
def test_identical_images_have_similarity_one_and_distinct_ones_less(backbones, kind):
    backbone = getattr(backbones, kind)
    copy = noise(7).copy()
    same = subject_similarity(backbone, [noise(7)], [copy])
    assert same.value == pytest.approx(1.0, abs=1e-5) and same.n == 1
    other = subject_similarity(backbone, [noise(7)], [noise(8)])
    assert other.value < 1 - 1e-4


@pytest.mark.parametrize("kind", ["dino", "clip"])
def test_subject_similarity_is_symmetric_and_independent_of_order(backbones, images, kind):
    backbone = getattr(backbones, kind)
    generated, real = images[:4], images[4:]
    forward = subject_similarity(backbone, generated, real)
    assert subject_similarity(backbone, real, generated).value == pytest.approx(forward.value, abs=1e-6)
    shuffled = subject_similarity(backbone, generated[::-1], real[::-1])
    assert (shuffled.value, shuffled.low, shuffled.high) == pytest.approx((forward.value, forward.low, forward.high),
                                                                          abs=1e-6)
    assert forward.n == 4 and forward.low <= forward.value <= forward.high


def test_embeddings_do_not_depend_on_the_batch_size(backbones, images):
    for backbone in (backbones.dino, backbones.clip):
        one_batch = measures.embed_images(backbone, images)
        small = measures.embed_images(backbone, images, batch_size=2)
        assert torch.allclose(one_batch, small, atol=1e-5)
        assert torch.allclose(one_batch.norm(dim=1), torch.ones(len(images)), atol=1e-5)


def test_clip_t_pairs_each_image_with_its_own_prompt(backbones, images):
    clip = backbones.clip
    prompts = [INSTANCE, BEACH, BLUE]
    forward = prompt_similarity(clip, images[:3], prompts, identifier="sks")
    backward = prompt_similarity(clip, images[:3][::-1], prompts[::-1], identifier="sks")
    assert backward.value == pytest.approx(forward.value, abs=1e-6) and forward.n == 3
    rotated = prompt_similarity(clip, images[:3], prompts[1:] + prompts[:1], identifier="sks")
    assert rotated.value != pytest.approx(forward.value, abs=1e-6)  # another pairing is another measure
    image, text = measures.embed_images(clip, images[:1]), measures.embed_texts(clip, ["a photo of ball"])
    single = prompt_similarity(clip, images[:1], INSTANCE, identifier="sks")
    assert single.value == pytest.approx(float(image @ text.T), abs=1e-5)
    with pytest.raises(ValueError, match="one prompt per image"):
        prompt_similarity(clip, images[:3], prompts[:2])


def test_clip_text_leaves_out_the_identifier():
    assert measures.clip_text(BEACH, "sks") == "a photo of ball on the beach"
    assert measures.clip_text(BEACH, None) == BEACH


def test_only_clip_embeds_text(backbones):
    with pytest.raises(ValueError, match="Only a CLIP backbone"):
        measures.embed_texts(backbones.dino, ["a photo of ball"])


def test_diversity_is_zero_for_copies_and_compares_within_a_prompt(backbones, images):
    dino = backbones.dino
    copies = diversity(dino, [noise(3), noise(3), noise(3)], [INSTANCE] * 3)
    assert copies.value == pytest.approx(0.0, abs=1e-5) and copies.n == 3
    prompts = [INSTANCE] * 3 + [BEACH] * 3
    mixed = diversity(dino, images, prompts)
    assert mixed.value > 1e-4 and mixed.n == 6
    # the copies across prompts are not compared: one image per prompt is nothing to compare
    assert diversity(dino, images[:2], [INSTANCE, BEACH]).n == 0
    order = [5, 3, 1, 0, 2, 4]
    shuffled = diversity(dino, [images[i] for i in order], [prompts[i] for i in order])
    assert shuffled.value == pytest.approx(mixed.value, abs=1e-6)


ROLES = {"instance": [INSTANCE], "context": [BEACH], "attribute": [BLUE], "class": [CLASS]}


def run_images(images):
    return {INSTANCE: images[:2], BEACH: images[2:4], BLUE: images[4:6], CLASS: [noise(20), noise(21), noise(22)]}


def test_score_run_fills_the_score_tables_columns_with_counts_and_intervals(backbones, images):
    row = measures.backbone_scores(run_images(images), [noise(30), noise(31)], ROLES, backbones=backbones)
    assert list(row) == list(COLUMNS)
    assert all(isinstance(cell, Estimate) for cell in row.values())
    assert {k: cell.n for k, cell in row.items()} == {
        "subject_fidelity": 4, "subject_similarity": 4, "context_fidelity": 2, "attribute_fidelity": 2,
        "language_drift": 3, "diversity": 2, "copying": 4}
    assert all(not math.isnan(cell.low) for cell in row.values())
    # a role without prompts leaves its column out
    no_class = measures.backbone_scores(run_images(images), [noise(30)], ROLES | {"class": [], "attribute": []},
                                        backbones=backbones)
    assert "language_drift" not in no_class and "attribute_fidelity" not in no_class
    assert no_class["subject_fidelity"].n == 4


def test_score_run_agrees_with_the_measures_one_by_one(backbones, images):
    by_prompt, refs = run_images(images), [noise(30), noise(31)]
    row = measures.backbone_scores(by_prompt, refs, ROLES, backbones=backbones)
    shown = by_prompt[INSTANCE] + by_prompt[BEACH]
    dino = measures.embed_images(backbones.dino, shown) @ measures.embed_images(backbones.dino, refs).T
    alone = {
        "subject_fidelity": subject_similarity(backbones.dino, shown, refs),
        "subject_similarity": subject_similarity(backbones.clip, shown, refs),
        "context_fidelity": prompt_similarity(backbones.clip, by_prompt[BEACH], BEACH, identifier="sks"),
        "attribute_fidelity": prompt_similarity(backbones.clip, by_prompt[BLUE], BLUE, identifier="sks"),
        "language_drift": subject_similarity(backbones.dino, by_prompt[CLASS], refs),
        "diversity": diversity(backbones.dino, by_prompt[INSTANCE], INSTANCE),
        "copying": mean_of(dino.max(dim=1).values.tolist()),
    }
    for column, est in alone.items():
        assert (row[column].value, row[column].low, row[column].n) == pytest.approx((est.value, est.low, est.n),
                                                                                   abs=1e-6), column


def test_copying_is_higher_for_photos_given_back(backbones, images):
    refs = [noise(30), noise(31)]
    copied = measures.backbone_scores(run_images(images) | {INSTANCE: [r.copy() for r in refs]}, refs, ROLES,
                                      backbones=backbones)
    fresh = measures.backbone_scores(run_images(images), refs, ROLES, backbones=backbones)
    assert copied["copying"].value > fresh["copying"].value


def test_score_run_needs_references(backbones, images):
    with pytest.raises(ValueError, match="real subject photos"):
        measures.backbone_scores(run_images(images), [], ROLES, backbones=backbones)


def test_language_drift_is_high_when_class_images_are_the_subject(backbones, images):
    subject = [noise(40), noise(41)]
    drifted = run_images(images) | {CLASS: [s.copy() for s in subject]}
    clean = measures.backbone_scores(run_images(images), subject, ROLES, backbones=backbones)
    drift = measures.backbone_scores(drifted, subject, ROLES, backbones=backbones)
    assert drift["language_drift"].value > clean["language_drift"].value


def test_a_table_has_one_row_per_arm_and_intervals(backbones, images):
    arms = {"high lr": run_images(images), "low lr": run_images(images[::-1])}
    table = measures.backbone_table(arms, [noise(30)], ROLES, backbones=backbones)
    assert list(table) == ["high lr", "low lr"]
    assert table["low lr"] == measures.backbone_scores(arms["low lr"], [noise(30)], ROLES, backbones=backbones)
    lines = format_measures(table).splitlines()
    assert len(lines) == 3 and "subject (DINO)" in lines[0] and "diversity (DIV, DINO-based)" in lines[0]
    assert lines[1].count("n=4") == 3 and lines[1].count("n=2") == 3 and "n=3" in lines[1]


def test_backbones_go_back_to_the_cpu_after_scoring(backbones):
    with backbones.on("cpu") as on:
        assert on.dino.device.type == "cpu"
    assert backbones.clip.device.type == "cpu"


def test_kit_tiny_backbones_are_built_on_first_use(runs_dir):
    dino = measures.load_backbone("dino", measures.TINY_DINO)
    assert (runs_dir / "models" / "tiny-dino" / "config.json").exists()
    assert measures.embed_images(dino, [noise(1)]).shape[0] == 1


def test_building_a_tiny_backbone_leaves_the_global_random_state_alone(tmp_path):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    measures.build_tiny_dino(tmp_path / "dino")
    assert torch.equal(torch.rand(3), expected)


def test_an_uncached_hub_id_offline_says_what_to_do():
    with pytest.raises(ModelUnavailableError) as err:
        measures.load_backbone("dino", "kit-tests/no-such-backbone")
    message = str(err.value)
    assert "internet" in message and str(measures.backbone_cache_dir()) in message and "local folder" in message


def test_a_folder_that_is_not_a_model_is_refused(tmp_path):
    with pytest.raises(ModelUnavailableError, match="no config.json"):
        measures.load_backbone("dino", str(tmp_path))


def test_a_folder_without_weights_says_what_it_must_hold(tmp_path, backbone_dirs):
    folder = tmp_path / "half"
    folder.mkdir()
    (folder / "config.json").write_text((backbone_dirs[0] / "config.json").read_text())
    with pytest.raises(ModelUnavailableError, match="must hold config.json, model.safetensors"):
        measures.load_backbone("dino", str(folder))


def test_a_clip_folder_is_not_taken_for_dino(backbone_dirs):
    with pytest.raises(ModelUnavailableError, match="not a DINO backbone"):
        measures.load_backbone("dino", str(backbone_dirs[1]))


def test_the_papers_table_1_is_kept_for_reference():
    table = measures.PAPER_TABLE_1
    assert table["real images"] == {"DINO": 0.774, "CLIP-I": 0.885}
    assert table["DreamBooth (Stable Diffusion)"] == {"DINO": 0.668, "CLIP-I": 0.803, "CLIP-T": 0.305}
    assert table["Textual Inversion (Stable Diffusion)"] == {"DINO": 0.569, "CLIP-I": 0.780, "CLIP-T": 0.255}
    text = paper_reference()
    assert "3000 generated images" in text and "0.305" in text


def test_full_size_random_backbones_have_the_papers_shapes(tmp_path):
    """The GPU check scores with random backbones of the real sizes: ViT-S/16 (22M) and CLIP ViT-B/32."""
    dino = measures.load_backbone("dino", str(measures.build_tiny_dino(tmp_path / "dino", shape=measures.DINO_VITS16_SHAPE)))
    params = sum(p.numel() for p in dino.model.parameters())
    assert 21e6 < params < 23e6  # ViT-S/16 without its pooler: 21.7M
    assert measures.embed_images(dino, [noise(0)]).shape == (1, 384)
    clip = measures.load_backbone("clip", str(measures.build_tiny_clip(tmp_path / "clip", shape=measures.CLIP_B32_SHAPE)))
    assert measures.embed_images(clip, [noise(1)]).shape == (1, 512)
    assert measures.embed_texts(clip, ["a photo of dog"]).shape == (1, 512)


# ----------------------------------------------------------------- helpers these tests use


def _one_prompt_per_image(prompts: list[str] | str, n: int) -> list[str]:
    prompts = [prompts] * n if isinstance(prompts, str) else list(prompts)
    if len(prompts) != n:
        raise ValueError(f"Give one prompt per image (or one for all): {n} images, {len(prompts)} prompts.")
    return prompts


def subject_similarity(backbone: measures.Backbone, images: list[Image.Image], references: list[Image.Image],
                       seed: int = 0) -> Estimate:
    """DINO or CLIP-I by hand: the mean cosine similarity of images to references."""
    if not images or not references:
        return mean_of([], seed)
    found = measures.embed_images(backbone, images), measures.embed_images(backbone, references)
    return mean_of(measures.cosine_to_references(*found), seed)


def diversity(dino: measures.Backbone, images: list[Image.Image], prompts: list[str] | str, seed: int = 0) -> Estimate:
    """DIV, DINO-based, by hand: within-prompt DINO distance of the images."""
    prompts = _one_prompt_per_image(prompts, len(images))
    if not images:
        return mean_of([], seed)
    return mean_of(within_prompt_distance(measures.embed_images(dino, images), prompts), seed)


def prompt_similarity(clip: measures.Backbone, images: list[Image.Image], prompts: list[str] | str,
                      identifier: str | None = None, seed: int = 0) -> Estimate:
    """CLIP-T: mean cosine similarity of each image's CLIP embedding and its prompt's.

    Args:
        clip: a CLIP backbone.
        images: the generations.
        prompts: one prompt per image, or one for all.
        identifier: the rare token (``"sks"``) to leave out of the prompts, see :func:`clip_text`.
    """
    prompts = _one_prompt_per_image(prompts, len(images))
    if not images:
        return mean_of([], seed)
    texts = measures.embed_texts(clip, [measures.clip_text(p, identifier) for p in prompts])
    return mean_of((measures.embed_images(clip, images) * texts).sum(dim=1).tolist(), seed)


def format_measures(table: dict[str, dict[str, Estimate]]) -> str:
    """A text table of :func:`backbone_table`, each column named with its measure, each cell with n and interval."""
    return format_table(table, BACKBONE_HEADERS)


def paper_reference() -> str:
    """The paper's Table 1 as text, for a learner to set beside their own table."""
    names = ["DINO", "CLIP-I", "CLIP-T"]
    width = max(len(k) for k in measures.PAPER_TABLE_1) + 2
    lines = [f"Ruiz et al. 2022, Table 1 ({measures.PAPER_TABLE_1_IMAGES} generated images per method, no intervals)",
             " " * width + "".join(f"{m:>8}" for m in names)]
    for method, row in measures.PAPER_TABLE_1.items():
        lines.append(f"{method:<{width}}" + "".join(f"{row[m]:>8.3f}" if m in row else f"{'-':>8}" for m in names))
    return "\n".join(lines)
