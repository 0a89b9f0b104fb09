"""Every argument of the tool commands (export, push, tiny-model, doctor, budget, findings-table, toyworld ...)
fuzzed: wrong numbers, missing paths, files for folders and folders for files, bad choices, unknown options.

Each case must exit with status 2 and one message, with nothing written and none of the command's work
started (the functions that do it are replaced by ones that fail the test). The cases are drawn with
a fixed seed, so every run tries the same ones.
"""

from __future__ import annotations

import string

import pytest
from fuzz import assert_one_message, count, report, run_cli, snapshot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import cli
from helpers.toyworld import cli as toy_cli

FUZZ = settings(derandomize=True, deadline=None, database=None, print_blob=False, max_examples=1500,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
WORK = {cli: ["build_tiny_model", "export_kohya_lora", "export_pipeline", "export_single_file",
              "write_findings_column", "train_dreambooth_on_gpus", "train_textual_inversion"],
        toy_cli: ["train_and_save", "train_autoencoder", "autoencoder_error", "load_vae", "pretrain",
                  "evaluate_base_model", "add_latent_mean", "write_subjects", "write_facts"]}

# Each command: its argument slots; a slot is (flag or "" for a positional, kind). Kinds:
# "int" a count >= 1, "seed", "rate" in (0, 1], "share" in [0, 1], "minutes" > 0, "in" a folder to read,
# "out" a folder to write, "file" a file to write, "readme" a file to read, "choice:a,b" one of these.
COMMANDS = {
    ("tiny-model",): [("", "out"), ("--resolution", "res"), ("--seed", "seed")],
    ("export",): [("", "in"), ("--single-file", "file"), ("--kohya", "file"), ("--pipeline", "out")],
    ("push",): [("", "in")],
    ("budget",): [("--profile", "choice:gpu,cpu,smoke"), ("--platform", "choice:colab,kaggle,local")],
    ("findings-table",): [("--home", "in"), ("--profile", "choice:gpu,cpu,smoke"), ("--readme", "readme"),
                          ("--out", "file")],
    ("doctor",): [],
    ("toyworld", "render"): [("", "file"), ("--count", "int"), ("--seed", "seed")],
    ("toyworld", "subjects"): [("", "out")],
    ("toyworld", "train-evaluator"): [("", "out"), ("--steps", "int"), ("--seed", "seed"), ("--init", "in"),
                                      ("--vae", "in"), ("--redraw", "in"), ("--lr", "rate"), ("--pool", "int"),
                                      ("--wash", "share")],
    ("toyworld", "train-autoencoder"): [("", "out"), ("--minutes", "minutes"), ("--steps", "int"),
                                        ("--channels", "int"), ("--init", "in"), ("--crop", "res"),
                                        ("--batch", "res"), ("--lr", "rate"), ("--seed", "seed")],
    ("toyworld", "ae-error"): [("", "in"), ("--renders", "int"), ("--seed", "seed"), ("--figure", "file"),
                               ("--out", "file")],
    ("toyworld", "pretrain"): [("", "out"), ("--minutes", "minutes"), ("--vae", "in"),
                               ("--open-captions", "share"), ("--init", "in"), ("--unet-steps", "int")],
    ("toyworld", "evaluate"): [("", "in"), ("--prompts", "int"), ("--steps", "int"), ("--guidance", "guidance"),
                               ("--seed", "seed"), ("--scheduler", "choice:pndm,ddim"), ("--grid", "file")],
    ("toyworld", "latent-mean"): [("", "in"), ("--images", "int")],
}
WORDS = st.text(string.ascii_letters, min_size=1, max_size=6).filter(
    lambda w: w.lower() not in ("nan", "inf", "infinity"))


def bad_value(kind: str, paths: dict) -> st.SearchStrategy:
    """Words that the argument of ``kind`` must refuse."""
    numbers = {
        "int": st.one_of(st.integers(-100, 0).map(str), WORDS, st.floats(0.1, 9.9).map(str)),
        "seed": st.one_of(st.integers(-100, -1).map(str), WORDS, st.just(str(2**40))),
        "res": st.one_of(st.integers(-64, 7).map(str), st.integers(1, 60).map(lambda k: str(8 * k + 3)), WORDS),
        "rate": st.one_of(st.floats(-1, 0).map(str), st.floats(1.01, 1e3).map(str), st.sampled_from(["nan", "inf"]),
                          WORDS),
        "share": st.one_of(st.floats(-1, -0.01).map(str), st.floats(1.01, 9).map(str), st.just("nan"), WORDS),
        "minutes": st.one_of(st.floats(-9, 0).map(str), st.just("-inf"), WORDS),
        "guidance": st.one_of(st.floats(-9, -0.1).map(str), st.just("nan"), WORDS),
        "in": st.sampled_from([paths["missing"], paths["file"], ""]),
        "out": st.sampled_from([paths["file"], ""]),
        "file": st.sampled_from([paths["folder"], ""]),
        "readme": st.sampled_from([paths["missing"], paths["folder"]]),
    }
    if kind.startswith("choice:"):
        return WORDS.filter(lambda w: w not in kind.removeprefix("choice:").split(","))
    return numbers[kind]


@st.composite
def bad_command(draw, paths: dict) -> list[str]:
    """One malformed command line: a valid frame with one argument made wrong, an unknown option, or one missing."""
    command = draw(st.sampled_from(sorted(COMMANDS)))
    slots = COMMANDS[command]
    argv = list(command)
    positional = [kind for flag, kind in slots if not flag]
    how = draw(st.sampled_from(["value", "value", "value", "unknown"]) if slots else st.just("unknown"))
    if how == "unknown":
        good = {"in": paths["folder"], "out": paths["fresh"], "file": paths["fresh_file"]}
        argv += [good[k] for k in positional[:1]]
        return argv + ["--" + draw(WORDS).lower() + "-x"] + (["--single-file", paths["fresh_file"]]
                                                             if command == ("export",) else [])
    flag, kind = draw(st.sampled_from(slots))
    value = draw(bad_value(kind, paths))
    if flag:
        good = {"in": paths["folder"], "out": paths["fresh"], "file": paths["fresh_file"]}
        argv += [good[k] for k in positional[:1]] + [flag, value]
        if command == ("export",) and flag not in ("--single-file", "--kohya", "--pipeline"):
            argv += ["--single-file", paths["fresh_file"]]
    else:
        argv += [value]
        if command == ("export",):
            argv += ["--single-file", paths["fresh_file"]]
    if command == ("push",):
        argv += ["someone/model"]
    return argv


@pytest.fixture
def paths(tmp_path, monkeypatch):
    """A folder, a file, a missing path, and fresh names inside a folder that must stay empty."""
    for module, names in WORK.items():
        for name in names:
            monkeypatch.setattr(module, name, _refuse)
    (tmp_path / "folder").mkdir()
    (tmp_path / "a.txt").write_text("a file\n")
    return {"folder": str(tmp_path / "folder"), "file": str(tmp_path / "a.txt"), "missing": str(tmp_path / "nope"),
            "fresh": str(tmp_path / "folder" / "new"), "fresh_file": str(tmp_path / "folder" / "new.safetensors"),
            "root": tmp_path}


def _refuse(*args, **kwargs):
    raise AssertionError("a command started its work for a malformed command line")


def test_malformed_command_lines_are_one_message(paths):
    test = "malformed command lines"
    before = snapshot(paths["root"])

    @settings(FUZZ)
    @given(argv=bad_command(paths))
    def tries(argv):
        assert_one_message(run_cli(argv), argv)
        count(test)

    tries()
    report(test)
    assert snapshot(paths["root"]) == before


# ------------------------------------------------------------------------------ one test per hole found


def test_render_count_zero_is_one_message(paths):
    assert_one_message(run_cli(["toyworld", "render", paths["fresh_file"], "--count", "0"]), [], "--count")


def test_render_into_a_folder_is_one_message(paths):
    assert_one_message(run_cli(["toyworld", "render", paths["folder"]]), [], "is a folder")


def test_tiny_model_resolution_not_divisible_by_8_is_one_message(paths):
    assert_one_message(run_cli(["tiny-model", paths["fresh"], "--resolution", "30"]), [], "multiple of 8")


def test_export_of_a_missing_run_is_one_message(paths):
    argv = ["export", paths["missing"], "--single-file", paths["fresh_file"]]
    assert_one_message(run_cli(argv), argv, "does not exist")


def test_push_offline_is_one_message_without_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_secretsecretsecret")
    run = tmp_path / "run"
    run.mkdir()
    outcome = run_cli(["push", str(run), "someone/model"])
    assert_one_message(outcome, ["push"])
    assert "hf_secret" not in outcome.out + outcome.err


def test_unknown_scheduler_is_one_message(paths):
    argv = ["toyworld", "evaluate", paths["folder"], "--scheduler", "ddpm"]
    assert_one_message(run_cli(argv), argv, "--scheduler")

