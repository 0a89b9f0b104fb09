"""Exports: a full run as one Stable Diffusion checkpoint, and a LoRA adapter in kohya's layout."""

import json

import pytest
import torch
from safetensors.torch import load_file

from helpers.share.export import (
    TEXT_PREFIX,
    ExportError,
    export_single_file,
    load_single_file,
    read_weights,
)


def settle(pipe):
    """Every weight copied to fresh memory: weights read from a memory-mapped file can sit at addresses
    that make the CPU pick another kernel, which changes the last bits of a result though no weight differs."""
    for name in ("unet", "vae", "text_encoder"):
        for param in getattr(pipe, name).parameters():
            param.data = param.data.clone()
    return pipe


def draw(pipe, seed: int = 0, prompt: str = "a photo of sks dog", steps: int = 3, size: int = 32):
    """One image as an array, from a fixed seed."""
    settle(pipe)
    generator = torch.Generator().manual_seed(seed)
    return pipe(
        prompt, num_inference_steps=steps, height=size, width=size, generator=generator, output_type="np"
    ).images


def assert_same_weights(ours, theirs, names=("unet", "vae", "text_encoder")):
    """Every weight of each named part is back in its place, under its own name."""
    for name in names:
        a, b = getattr(ours, name).state_dict(), getattr(theirs, name).state_dict()
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), name


@pytest.fixture(scope="module")
def exported(tiny_model_dir, tmp_path_factory):
    """The tiny model (a finished full run's folder layout) exported in float32."""
    return export_single_file(tiny_model_dir, tmp_path_factory.mktemp("export") / "tiny.safetensors")


def test_single_file_loads_with_diffusers_and_draws_the_same_image(tiny_model_dir, tiny_pipe, exported):
    from transformers import CLIPTextModel

    text_encoder = CLIPTextModel.from_pretrained(tiny_model_dir / "text_encoder")
    pipe = load_single_file(exported, tiny_model_dir, text_encoder=text_encoder)
    assert_same_weights(tiny_pipe, pipe, ("unet", "vae"))
    assert (draw(pipe) == draw(tiny_pipe)).all()


def test_single_file_text_encoder_is_the_runs(tiny_model_dir, exported):
    state = load_file(exported)
    text = {k.removeprefix(TEXT_PREFIX): v for k, v in state.items() if k.startswith(TEXT_PREFIX)}
    run = read_weights(tiny_model_dir / "text_encoder")
    assert torch.equal(text.pop("embeddings.position_ids"), torch.arange(77)[None])
    assert text.keys() == run.keys()
    assert all(torch.equal(text[k], run[k]) for k in run)
    prefixes = {k.split(".")[0] for k in state}
    assert prefixes == {"model", "first_stage_model", "cond_stage_model"}


def test_single_file_loads_without_a_text_encoder_given(tiny_model_dir, tiny_pipe, exported):
    pipe = load_single_file(exported, tiny_model_dir)  # the text encoder comes from the file itself
    assert (draw(pipe) == draw(tiny_pipe)).all()


def test_half_export_is_float16_and_close(tiny_model_dir, tiny_pipe, tmp_path):
    path = export_single_file(tiny_model_dir, tmp_path / "half.safetensors", half=True)
    full = load_file(export_single_file(tiny_model_dir, tmp_path / "full.safetensors"))
    half = load_file(path)
    assert half.keys() == full.keys()
    for key, value in half.items():
        if full[key].is_floating_point():
            assert value.dtype == torch.float16 and torch.equal(value, full[key].half()), key
    assert path.stat().st_size < 0.6 * (tmp_path / "full.safetensors").stat().st_size
    pipe = load_single_file(path, tiny_model_dir)
    difference = abs(draw(pipe) - draw(tiny_pipe)).max()
    assert 0 < difference < 0.05  # float16 rounding, nothing more


def sd_shaped_model(folder):
    """A miniature with Stable Diffusion 1.x's structure: four levels, attention on the first three."""
    from diffusers import AutoencoderKL, UNet2DConditionModel

    from helpers.train.models import build_tiny_components, save_pipeline

    torch.manual_seed(1)
    parts = build_tiny_components()
    parts["unet"] = UNet2DConditionModel(  # diffusers' defaults are SD 1.x's block types
        sample_size=8,
        block_out_channels=(32, 64, 128, 128),
        layers_per_block=2,
        cross_attention_dim=32,
        attention_head_dim=8,
    )
    parts["vae"] = AutoencoderKL(
        block_out_channels=(32, 64, 128, 128),
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2,
        latent_channels=4,
        sample_size=64,
    )
    save_pipeline(parts, folder)
    return folder


def test_four_level_model_gets_stable_diffusions_names(tmp_path):
    model = sd_shaped_model(tmp_path / "sd-shaped")
    state = load_file(export_single_file(model, tmp_path / "sd.safetensors"))
    unet = [k for k in state if k.startswith("model.diffusion_model.")]
    vae = [k for k in state if k.startswith("first_stage_model.")]
    assert (len(unet), len(vae)) == (686, 248)  # as in Stable Diffusion 1.x's own checkpoint
    for key in [  # landmarks of the original layout: downsamplers, upsamplers after attention or not
        "model.diffusion_model.input_blocks.9.0.op.weight",
        "model.diffusion_model.input_blocks.8.1.transformer_blocks.0.attn2.to_k.weight",
        "model.diffusion_model.middle_block.1.proj_in.weight",
        "model.diffusion_model.output_blocks.2.1.conv.weight",
        "model.diffusion_model.output_blocks.8.2.conv.weight",
        "model.diffusion_model.output_blocks.11.1.proj_out.weight",
        "first_stage_model.decoder.up.3.upsample.conv.weight",
        "first_stage_model.decoder.up.0.block.0.nin_shortcut.weight",
        "first_stage_model.encoder.down.2.downsample.conv.weight",
    ]:
        assert key in state, key
    assert state["first_stage_model.encoder.mid.attn_1.q.weight"].dim() == 4  # a 1x1 convolution


def test_four_level_model_round_trips(tmp_path):
    model = sd_shaped_model(tmp_path / "sd-shaped")
    path = export_single_file(model, tmp_path / "sd.safetensors")
    from helpers.train.models import load_pipeline

    run, pipe = load_pipeline(str(model)), load_single_file(path, model)
    assert_same_weights(run, pipe)
    photo = {"seed": 3, "prompt": "a photo", "steps": 2, "size": 64}
    assert (draw(run, **photo) == draw(pipe, **photo)).all()


def test_toyworld_model_round_trips_and_warns_about_its_scale(tmp_path, caplog):
    from helpers.train.models import TOY_MODEL_DIR, load_pipeline

    if not (TOY_MODEL_DIR / "model_index.json").exists():
        pytest.skip("the ToyWorld model is not built")
    with caplog.at_level("WARNING", logger="helpers.share.export"):  # three levels, one layer each
        path = export_single_file(TOY_MODEL_DIR, tmp_path / "toy.safetensors")
    scale = json.loads((TOY_MODEL_DIR / "vae" / "config.json").read_text())["scaling_factor"]
    assert f"scales latents by {scale:.4g}" in caplog.text and abs(scale - 0.18215) > 0.05
    run, pipe = load_pipeline(str(TOY_MODEL_DIR)), load_single_file(path, TOY_MODEL_DIR)
    assert_same_weights(run, pipe)
    ball = {"prompt": "a photo of a red ball", "steps": 2, "size": 64}  # ToyWorld's own 64 px
    assert (draw(run, **ball) == draw(pipe, **ball)).all()


def test_ema_export_takes_the_averaged_weights(tiny_model_dir, tmp_path):
    import shutil

    from safetensors.torch import save_file

    run = tmp_path / "run"
    shutil.copytree(tiny_model_dir, run)
    with pytest.raises(ExportError, match="use_ema"):
        export_single_file(run, tmp_path / "ema.safetensors", ema=True)
    shutil.copytree(run / "unet", run / "unet_ema")
    averaged = {k: v + 1 for k, v in read_weights(run / "unet").items()}  # stands in for the EMA weights
    save_file(averaged, str(run / "unet_ema" / "diffusion_pytorch_model.safetensors"))
    ema = load_file(export_single_file(run, tmp_path / "ema.safetensors", ema=True))
    raw = load_file(export_single_file(run, tmp_path / "raw.safetensors"))
    key = "model.diffusion_model.input_blocks.0.0.weight"  # conv_in
    assert torch.equal(ema[key], raw[key] + 1)
    assert torch.equal(
        ema["first_stage_model.encoder.conv_in.weight"], raw["first_stage_model.encoder.conv_in.weight"]
    )


def test_command_line_exports(tiny_model_dir, tmp_path, capsys):
    from helpers.__main__ import main

    out = tmp_path / "cli.safetensors"
    assert main(["export", str(tiny_model_dir), "--single-file", str(out), "--half"]) == 0
    assert load_file(out)["model.diffusion_model.out.2.weight"].dtype == torch.float16
    assert main(["export", str(tiny_model_dir), "--kohya", str(tmp_path / "k.safetensors")]) == 2  # not a LoRA run
    assert "--single-file" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # one of --single-file / --kohya is required
        main(["export", str(tiny_model_dir)])


def test_export_refuses_what_is_not_a_full_run(tmp_path):
    with pytest.raises(ExportError, match="not a finished run"):
        export_single_file(tmp_path, tmp_path / "out.safetensors")
    (tmp_path / "pytorch_lora_weights.safetensors").write_bytes(b"")
    with pytest.raises(ExportError, match="--kohya"):
        export_single_file(tmp_path, tmp_path / "out.safetensors")


def test_export_wants_a_safetensors_name(tiny_model_dir, tmp_path):
    with pytest.raises(ExportError, match=r"\.safetensors"):
        export_single_file(tiny_model_dir, tmp_path / "model.ckpt")


# ------------------------------------------------------------------------------------------ kohya LoRA

RANK, ALPHA = 4, 8  # alpha != rank, so a lost alpha would show in the images


@pytest.fixture(scope="module")
def lora_run(tiny_model_dir, tmp_path_factory):
    """An adapter built with peft on the tiny model (UNet and text encoder), saved as diffusers saves it.

    Returns the run folder and the image the adapted pipeline draws in memory.
    """
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig, inject_adapter_in_model
    from peft.utils import get_peft_model_state_dict

    from helpers.train.models import load_pipeline

    pipe = load_pipeline(str(tiny_model_dir))
    unet_config = LoraConfig(r=RANK, lora_alpha=ALPHA, target_modules=["to_k", "to_q", "to_v", "to_out.0"])
    text_config = LoraConfig(
        r=RANK, lora_alpha=ALPHA, target_modules=["q_proj", "k_proj", "v_proj", "out_proj"]
    )
    pipe.unet.add_adapter(unet_config)
    inject_adapter_in_model(text_config, pipe.text_encoder)  # transformers' add_adapter wants peft >= 0.22
    torch.manual_seed(0)
    for name, param in [*pipe.unet.named_parameters(), *pipe.text_encoder.named_parameters()]:
        if "lora_B" in name:  # peft starts B at zero (no change); give the adapter an effect
            param.data.normal_(0, 0.1)
    run = tmp_path_factory.mktemp("lora-run")
    StableDiffusionPipeline.save_lora_weights(
        run,
        unet_lora_layers=get_peft_model_state_dict(pipe.unet),
        text_encoder_lora_layers=get_peft_model_state_dict(pipe.text_encoder),
        unet_lora_adapter_metadata=unet_config.to_dict(),
        text_encoder_lora_adapter_metadata=text_config.to_dict(),
    )
    return run, draw(pipe)


def test_kohya_export_has_kohyas_keys(lora_run, tmp_path):
    from helpers.share.export import export_kohya_lora, read_lora_file

    run, _ = lora_run
    state = load_file(export_kohya_lora(run, tmp_path / "kohya.safetensors"))
    lora, _ = read_lora_file(run / "pytorch_lora_weights.safetensors")
    modules = {k.rsplit(".", 1)[0] for k in lora if k.endswith(".lora_A.weight")}
    assert len(state) == 3 * len(modules)  # down, up and alpha for every adapted module
    names = {k.split(".")[0] for k in state}
    assert {n.split("_")[1] for n in names} == {"unet", "te"}
    assert all(n.startswith(("lora_unet_", "lora_te_text_model_encoder_layers_")) for n in names)
    assert (
        "lora_unet_down_blocks_1_attentions_0_transformer_blocks_0_attn1_to_out_0.lora_down.weight" in state
    )
    assert all(float(v) == ALPHA for k, v in state.items() if k.endswith(".alpha"))
    assert all("." not in n for n in names)
    half = load_file(export_kohya_lora(run, tmp_path / "half.safetensors", half=True))
    assert half.keys() == state.keys() and {v.dtype for v in half.values()} == {torch.float16}


def test_kohya_export_reads_back_exactly(lora_run, tiny_pipe, tmp_path):
    from helpers.share.export import export_kohya_lora, read_kohya_lora, read_lora_file

    run, _ = lora_run
    path = export_kohya_lora(run, tmp_path / "kohya.safetensors")
    state, alphas = read_kohya_lora(path, tiny_pipe)
    original, _ = read_lora_file(run / "pytorch_lora_weights.safetensors")
    assert state.keys() == original.keys()
    assert all(torch.equal(state[k], original[k]) for k in original)
    assert set(alphas.values()) == {ALPHA} and len(alphas) == len(original) // 2


def test_kohya_export_draws_the_adapters_image(lora_run, tiny_model_dir, tmp_path):
    from support import load_kohya_lora

    from helpers.share.export import export_kohya_lora
    from helpers.train.models import load_pipeline

    run, in_memory = lora_run
    path = export_kohya_lora(run, tmp_path / "kohya.safetensors")
    ours = load_kohya_lora(load_pipeline(str(tiny_model_dir)), path)
    assert (draw(ours) == in_memory).all()
    theirs = load_pipeline(str(tiny_model_dir))
    theirs.load_lora_weights(str(path))  # diffusers' own reader of kohya files agrees
    assert (draw(theirs) == in_memory).all()
    base = load_pipeline(str(tiny_model_dir))
    assert abs(draw(base) - in_memory).max() > 0.01  # the adapter matters ...
    ids = base.tokenizer("a photo of sks dog", return_tensors="pt").input_ids
    with torch.no_grad():  # ... in the text encoder too
        assert not torch.allclose(ours.text_encoder(ids)[0], base.text_encoder(ids)[0])


def test_kohya_export_refuses_a_full_run(tiny_model_dir, tmp_path):
    from helpers.share.export import export_kohya_lora

    with pytest.raises(ExportError, match="--single-file"):
        export_kohya_lora(tiny_model_dir, tmp_path / "kohya.safetensors")
