"""Textual inversion: only the new token's rows change, the embedding loads, DreamBooth starts from it."""

import pytest
import torch


def ti_config(tiny_model_dir, train_subject, output_dir, **changes):
    from helpers.train.textual_inversion import TextualInversionConfig

    fields = {
        "pretrained_model_name_or_path": str(tiny_model_dir),
        "train_data_dir": str(train_subject),
        "placeholder_token": "<sks-ball>",
        "initializer_token": "ball",
        "resolution": 32,
        "train_batch_size": 2,
        "max_train_steps": 3,
        "learning_rate": 5e-2,
        "output_dir": str(output_dir),
    }
    return TextualInversionConfig(**{**fields, **changes})


@pytest.fixture(scope="module")
def ti_run(tiny_model_dir, train_subject, tmp_path_factory):
    from helpers.train.textual_inversion import train_textual_inversion

    config = ti_config(tiny_model_dir, train_subject, tmp_path_factory.mktemp("ti") / "run")
    return train_textual_inversion(config, progress=False)


def test_resume_equals_uninterrupted(ti_run, tiny_model_dir, train_subject, tmp_path):
    from safetensors.torch import load_file

    from helpers.train.textual_inversion import train_textual_inversion

    config = ti_config(tiny_model_dir, train_subject, tmp_path / "run", checkpointing_steps=1)
    stopped = train_textual_inversion(config, progress=False, stop_after_steps=2)
    assert not (tmp_path / "run" / "done.json").exists()
    assert [p.name for p in sorted((tmp_path / "run" / "checkpoints").iterdir())] == ["checkpoint-1", "checkpoint-2"]
    assert stopped.losses["step"] == [1, 2]
    resumed = train_textual_inversion(config.replace(resume_from_checkpoint="latest"), progress=False)
    assert resumed.losses["step"] == [1, 2, 3] and resumed.losses["loss"] == ti_run.losses["loss"]
    a, b = load_file(str(resumed.embedding_path)), load_file(str(ti_run.embedding_path))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_only_the_placeholder_rows_change(ti_run, tiny_model_dir):
    from transformers import CLIPTextModel

    base = (
        CLIPTextModel.from_pretrained(tiny_model_dir, subfolder="text_encoder").get_input_embeddings().weight
    )
    trained = CLIPTextModel.from_pretrained(ti_run.output_dir, subfolder="text_encoder")
    weight = trained.get_input_embeddings().weight
    new_id = ti_run.record["token_ids"][0]
    assert weight.shape[0] == base.shape[0] + 1 and new_id == base.shape[0]
    assert torch.equal(weight[:new_id], base)  # every old row bit-identical, weight decay notwithstanding
    assert ti_run.record["changed_rows"] == [new_id]
    base_layers = CLIPTextModel.from_pretrained(tiny_model_dir, subfolder="text_encoder").state_dict()
    for name, tensor in trained.state_dict().items():
        if "token_embedding" not in name:
            assert torch.equal(tensor, base_layers[name]), name


def test_embedding_loads_with_diffusers(ti_run, tiny_model_dir):
    from helpers.train.models import load_pipeline

    pipe = load_pipeline(str(tiny_model_dir))
    pipe.load_textual_inversion(str(ti_run.embedding_path))
    token_id = pipe.tokenizer.convert_tokens_to_ids("<sks-ball>")
    learned = pipe.text_encoder.get_input_embeddings().weight[token_id]
    from transformers import CLIPTextModel

    trained = CLIPTextModel.from_pretrained(ti_run.output_dir, subfolder="text_encoder")
    assert torch.equal(learned, trained.get_input_embeddings().weight[ti_run.record["token_ids"][0]])
    image = pipe("a photo of <sks-ball>", num_inference_steps=2, height=32, width=32).images[0]
    assert image.size == (32, 32)


def test_reused_then_dreambooth_from_it(ti_run, make_config):
    from helpers.train.textual_inversion import dreambooth_after_textual_inversion, train_textual_inversion

    again = train_textual_inversion(ti_run_config(ti_run), progress=False)
    assert again.reused
    config = make_config(
        "after-ti", instance_prompt="a photo of {token}", with_prior_preservation=False, max_train_steps=1
    )
    result = dreambooth_after_textual_inversion(ti_run, config)
    assert result.config.instance_prompt == "a photo of <sks-ball>"
    assert result.config.pretrained_model_name_or_path == str(ti_run.output_dir)
    assert (result.output_dir / "done.json").exists()


def ti_run_config(ti_run):
    from helpers.train.config import load_config
    from helpers.train.textual_inversion import TextualInversionConfig

    return load_config(ti_run.output_dir / "config.yaml", TextualInversionConfig)


def test_bad_initializer_says_what_to_do(tiny_model_dir):
    from helpers.train.config import ConfigError
    from helpers.train.models import load_components
    from helpers.train.textual_inversion import add_placeholder_token

    parts = load_components(str(tiny_model_dir))
    with pytest.raises(ConfigError, match="one common word"):
        add_placeholder_token(parts["tokenizer"], parts["text_encoder"], "<x>", "a small dog")
