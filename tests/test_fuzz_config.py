"""Training settings fuzzed against their one declaration (TRAIN_FIELDS, TI_FIELDS), through ``course-kit``.

Valid settings are mutated field by field into invalid ones (broken YAML, wrong types, values
out of range, unknown and misspelt keys, files for folders, empty prompts, fp16 on the CPU), in a
YAML file, with ``--set`` or as an option. Every invalid case must exit with status 2 and one
message naming the field, with nothing written and no model loaded; values inside the declared
range pass ``--check``. The cases are drawn with a fixed seed, so every run tries the same ones.
"""

from __future__ import annotations

import string

import pytest
import torch
import yaml
from fuzz import assert_one_message, count, report, run_cli, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.base.fields import Field
from helpers.train import dreambooth, runs, textual_inversion
from helpers.train.config import TRAIN_FIELDS, TrainConfig, _hints
from helpers.train.data import make_synthetic_subject
from helpers.train.textual_inversion import TI_FIELDS, TextualInversionConfig

FUZZ = settings(derandomize=True, deadline=None, database=None, print_blob=False,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
COMMANDS = {"train": (TrainConfig, TRAIN_FIELDS), "textual-inversion": (TextualInversionConfig, TI_FIELDS)}
BROKEN_YAML = [  # each one is a YAML syntax error, inserted as a line of a valid file
    "{key}: [1, 2",  # an unclosed bracket
    '{key}: "unclosed',  # an unclosed quote
    "{key}: {{",  # an unclosed brace
    "\t{key}: 1",  # a tab before a key
    "{key}: @value",  # a reserved character
    "  - {key}\n{key}: : :",  # a list item inside the mapping, then a stray colon
]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A subject folder, a stand-in model folder, a file, and the folders that must stay untouched."""
    root = tmp_path_factory.mktemp("fuzz")
    photos = make_synthetic_subject(root / "photos", n=3, size=64)
    model = root / "model"
    model.mkdir()
    (model / "model_index.json").write_text('{"_class_name": "StableDiffusionPipeline"}')
    a_file = root / "notes.txt"
    a_file.write_text("not a folder\n")
    return {"root": root, "photos": photos, "model": model, "file": a_file, "out": root / "out"}


@pytest.fixture
def no_models(monkeypatch):
    """Fail the test as soon as a command goes past its checks: a model load or an accelerator."""

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded (or a run started) for a malformed input")

    monkeypatch.setattr(dreambooth, "load_models_and_data", refuse)
    monkeypatch.setattr(textual_inversion, "load_components", refuse)
    monkeypatch.setattr(runs, "make_accelerator", refuse)


def base_values(command: str, world) -> dict:
    """A valid configuration of ``command`` that trains nothing (checked only) and writes under ``out``."""
    common = {"pretrained_model_name_or_path": str(world["model"]), "resolution": 32, "train_batch_size": 1,
              "max_train_steps": 2, "output_dir": str(world["out"])}
    if command == "train":
        return {**common, "instance_data_dir": str(world["photos"]), "instance_prompt": "a photo of sks ball"}
    return {**common, "train_data_dir": str(world["photos"]), "checkpointing_steps": 0}


# ------------------------------------------------------------------------------------- the mutations


def wrong_types(hint) -> st.SearchStrategy:
    """YAML values of another type than ``hint`` that no conversion turns into it."""
    words = st.text(string.ascii_letters, min_size=1, max_size=8).filter(
        lambda w: w.lower() not in ("true", "false", "yes", "no", "on", "off", "none", "null", "nan", "inf"))
    things = st.one_of(st.lists(st.integers(0, 9), min_size=1, max_size=3), st.dictionaries(words, st.integers(0, 9),
                                                                                              min_size=1, max_size=2))
    kind = str(hint)
    if kind.startswith("list"):
        return st.one_of(st.integers(2, 99), st.dictionaries(words, st.integers(0, 9), min_size=1, max_size=2),
                         *([st.lists(words, min_size=1, max_size=2)] if "int" in kind else []))
    if hint is str:
        return st.one_of(things, st.integers(2, 99), st.floats(0.5, 9.5))
    if hint is bool:
        return st.one_of(things, words, st.integers(2, 99))
    return st.one_of(things, words, st.booleans())  # numbers (and int | None)


def out_of_range(rule: Field, hint) -> st.SearchStrategy | None:
    """Values of the right type that the declaration refuses; None when every value of the type is fine."""
    options = []
    integer = hint is int or "int" in str(hint)
    if rule.low is not None:
        below = rule.low if rule.low_open else rule.low - (1 if integer else 1e-3)
        options.append(st.integers(-1000, int(below)) if integer else st.floats(-1e3, below))
    if rule.high is not None:
        above = rule.high if rule.high_open else rule.high + (1 if integer else 1e-3)
        options.append(st.integers(int(above), int(above) + 1000) if integer else st.floats(above, 1e6))
    if hint is float and (rule.low is not None or rule.high is not None):
        options.append(st.sampled_from([float("nan"), float("inf"), float("-inf")]))
    if rule.multiple_of:
        options.append(st.integers(1, 100).map(lambda k: k * rule.multiple_of + 3))
    if rule.choices:
        options.append(st.text(string.ascii_lowercase + "_+", min_size=1, max_size=10).filter(
            lambda t: t not in rule.choices))
    if rule.nonempty:
        options.append(st.sampled_from(["", "   "]))
    if not options:
        return None
    values = st.one_of(*options)
    if str(hint).startswith("list"):
        values = values.map(lambda v: [v])
    return values


def in_range(rule: Field, hint) -> st.SearchStrategy | None:
    """Values the declaration accepts (numbers and choices only)."""
    if rule.choices:
        ok = [c for c in rule.choices if torch.cuda.is_available() or c != "fp16"]
        return st.sampled_from(ok)
    if hint is int and rule.low is not None and not rule.multiple_of:
        return st.integers(int(rule.low) + rule.low_open, int(min(rule.high or 1e6, 1e6)))
    if hint is int and rule.multiple_of:
        return st.integers(1, 16).map(lambda k: k * rule.multiple_of)
    if hint is float and rule.low is not None:
        return st.floats(rule.low, rule.high or 10.0, exclude_min=rule.low_open, exclude_max=rule.high_open)
    return None


def misspelt(key: str) -> st.SearchStrategy:
    """``key`` with a letter dropped, doubled or swapped, or in capitals."""
    def spell(draw_index: int, how: int) -> str:
        i = draw_index % len(key)
        return [key[:i] + key[i + 1:], key[:i] + key[i] + key[i:], key.upper(), key.replace("_", "-"),
                key[:i] + key[i + 1:i + 2] + key[i:i + 1] + key[i + 2:]][how]
    return st.builds(spell, st.integers(0, 60), st.integers(0, 4))


@st.composite
def bad_case(draw, command: str, world) -> tuple[list[str], tuple[str, ...]]:
    """One malformed input for ``command``: its argv (without ``--check``) and the words its message must hold."""
    cls, fields = COMMANDS[command]
    hints = _hints(cls)
    values = base_values(command, world)
    config = world["root"] / f"{command}.yaml"
    kind = draw(st.sampled_from(["type", "range", "yaml", "key", "path", "device"]))
    name = draw(st.sampled_from(sorted(hints)))
    rule, hint = fields.get(name, Field()), hints[name]
    sets: list[str] = []
    if kind == "range" and out_of_range(rule, hint) is not None:
        value = draw(out_of_range(rule, hint))
    elif kind == "yaml":
        line = draw(st.sampled_from(BROKEN_YAML)).format(key=name)
        config.write_text(yaml.safe_dump(values) + line + "\n")
        return ["--config", str(config)], ("YAML", "line")
    elif kind == "key":
        key = draw(st.one_of(misspelt(name), st.text(string.ascii_lowercase + "_", min_size=1, max_size=12)))
        if key in hints:
            key += "_x"
        if draw(st.booleans()):
            sets = [f"{key}=1"]
        else:
            values[key] = 1
        name = key
    elif kind == "path":
        name = draw(st.sampled_from([n for n in hints if fields.get(n, Field()).path]))
        value = str(world["file"])
    elif kind == "device" and not torch.cuda.is_available():
        name, value = "mixed_precision", "fp16"
    else:
        kind, value = "type", draw(wrong_types(hint))
    if kind != "key":
        where = draw(st.sampled_from(["yaml", "set"]))
        if where == "yaml" or isinstance(value, (list, dict)) or kind not in ("range", "path", "device"):
            values[name] = value
        else:
            sets = [f"{name}={value}"]
    config.write_text(yaml.safe_dump(values))
    return ["--config", str(config), *[a for s in sets for a in ("--set", s)]], (name.split("[")[0],)


@st.composite
def good_case(draw, command: str, world) -> list[str]:
    """One valid change of one field, inside its declared range: ``--check`` must accept it."""
    cls, fields = COMMANDS[command]
    hints = _hints(cls)
    names = sorted(n for n in hints if in_range(fields.get(n, Field()), hints[n]) is not None)
    name = draw(st.sampled_from(names))
    value = draw(in_range(fields[name], hints[name]))
    config = world["root"] / f"{command}-good.yaml"
    config.write_text(yaml.safe_dump(base_values(command, world)))
    return ["--config", str(config), "--set", f"{name}={value!r}" if isinstance(value, float) else f"{name}={value}"]


# -------------------------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("command", list(COMMANDS))
def test_malformed_settings_are_one_message(command, world, no_models):
    watched = (world["root"],)
    before = snapshot(*watched)
    test = f"malformed {command} settings"

    @settings(FUZZ, max_examples=1200 if command == "train" else 600)
    @given(case=bad_case(command, world), check=st.booleans())
    def tries(case, check):
        argv, names = case
        argv = [command, *argv, *(["--check"] if check else [])]
        assert_one_message(run_cli(argv), argv, *names)
        assert not world["out"].exists(), f"{argv} created the output folder"
        count(test)

    tries()
    report(test)
    after = snapshot(*watched)
    assert {p for p, _ in after} - {p for p, _ in before} <= {str(world["root"] / f"{command}.yaml")}


@pytest.mark.parametrize("command", list(COMMANDS))
def test_valid_settings_pass_the_check(command, world, no_models):
    test = f"valid {command} settings checked"

    @settings(FUZZ, max_examples=150)
    @given(argv=good_case(command, world))
    def tries(argv):
        argv = [command, *argv, "--check"]
        outcome = run_cli(argv)
        assert outcome.code == 0, f"{argv}: {outcome.err}"
        assert "the settings are valid" in outcome.out
        assert not world["out"].exists()
        count(test)

    tries()
    report(test, "each accepted by --check, nothing written")


def test_every_field_is_declared_or_free():
    """Each declaration names a real field (a typo there would leave a field unchecked)."""
    for cls, fields in COMMANDS.values():
        assert set(fields) <= set(_hints(cls)), set(fields) - set(_hints(cls))


# ------------------------------------------------------------------------------ one test per hole found


def test_yaml_syntax_error_is_one_message(world, no_models):
    config = world["root"] / "broken.yaml"
    config.write_text(f"instance_data_dir: {world['photos']}\nlearning_rate: [1e-6\nresolution: 32\n")
    outcome = run_cli(["train", "--config", str(config)])
    assert_one_message(outcome, ["train"], "line 3")


def test_config_path_that_is_a_folder_is_one_message(world, no_models):
    assert_one_message(run_cli(["train", "--config", str(world["root"])]), ["train"], "is a folder")


def test_config_that_is_not_text_is_one_message(world, no_models):
    config = world["root"] / "binary.yaml"
    config.write_bytes(bytes(range(128, 256)))
    assert_one_message(run_cli(["train", "--config", str(config)]), ["train"], "not a text file")


def test_numeric_yaml_key_is_one_message(world, no_models):
    config = world["root"] / "numeric-key.yaml"
    config.write_text("1: 2\n")
    assert_one_message(run_cli(["train", "--config", str(config)]), ["train"], "Unknown configuration key 1")


def test_list_for_a_prompt_is_refused_not_turned_into_text(world, no_models):
    config = world["root"] / "list-prompt.yaml"
    config.write_text(yaml.safe_dump({**base_values("train", world), "instance_prompt": ["a", "b"]}))
    assert_one_message(run_cli(["train", "--config", str(config)]), ["train"], "instance_prompt")


def test_number_for_a_switch_is_refused_not_turned_into_true(world, no_models):
    assert_one_message(run_cli(["train", "--set", "use_ema=5"]), ["train"], "use_ema")


@pytest.mark.parametrize("value", ["nan", "inf", "-1e-6", "0"])
def test_learning_rate_must_be_finite_and_positive(value, no_models):
    assert_one_message(run_cli(["train", "--set", f"learning_rate={value}"]), ["train"], "learning_rate")


def test_resolution_not_divisible_by_8_is_refused(no_models):
    assert_one_message(run_cli(["train", "--resolution", "100"]), ["train"], "resolution", "multiple of 8")


def test_empty_subject_folder_setting_is_one_message(world, no_models):
    values = {k: v for k, v in base_values("train", world).items() if k != "instance_data_dir"}
    config = world["root"] / "no-photos.yaml"
    config.write_text(yaml.safe_dump(values))
    assert_one_message(run_cli(["train", "--config", str(config), "--check"]), ["train"], "instance_data_dir")


def test_files_where_folders_belong_are_refused(world, no_models):
    for name in ("instance_data_dir", "output_dir", "pretrained_model_name_or_path", "class_data_dir"):
        assert_one_message(run_cli(["train", "--set", f"{name}={world['file']}"]), ["train"], name, "is a file")


def test_placeholder_with_a_space_is_refused(no_models):
    outcome = run_cli(["textual-inversion", "--set", "placeholder_token=<my toy>"])
    assert_one_message(outcome, ["textual-inversion"], "placeholder_token")


@pytest.mark.skipif(torch.cuda.is_available(), reason="fp16 runs on a CUDA GPU")
def test_fp16_on_the_cpu_is_one_message_before_anything_is_written(world, no_models):
    config = world["root"] / "fp16.yaml"
    config.write_text(yaml.safe_dump({**base_values("train", world), "mixed_precision": "fp16"}))
    assert_one_message(run_cli(["train", "--config", str(config)]), ["train"], "fp16")
    assert not world["out"].exists()


def test_check_writes_nothing_and_says_where_a_run_would_go(world, no_models):
    config = world["root"] / "ok.yaml"
    config.write_text(yaml.safe_dump(base_values("train", world)))
    outcome = run_cli(["train", "--config", str(config), "--check"])
    assert outcome.code == 0, outcome.err
    assert str(world["out"]) in outcome.out
    assert not world["out"].exists()
