"""The GPU course check's parts that run without notebooks: its command line, the --cpu profile, the disk measure, the report."""

import importlib.util
import json
import subprocess
import sys
import time
import types
from dataclasses import dataclass

import pytest

from helpers.base.paths import REPO_ROOT
from helpers.profiles import OVERRIDES_ENV, get_profile


def load_script(name):
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


check = load_script("gpu_course_check")
course = load_script("run_course")


@dataclass
class FakeBudget:
    notebook: str
    kept_before: int
    peak: int
    trash: int
    total: int


def test_arguments_take_notebooks_before_or_after_the_switches(tmp_path):
    args = check.parse_args([str(tmp_path), "--cpu", "01", "03"])
    assert args.cpu and args.notebooks == ["01", "03"] and args.work == tmp_path
    args = check.parse_args([str(tmp_path), "02", "--fresh"])
    assert not args.cpu and args.fresh and args.notebooks == ["02"] and args.memory_gib == 15.0


def test_cpu_overrides_switch_mixed_precision_off_at_64_px_and_keep_the_rest_on(tmp_path, monkeypatch):
    backbones = {"dino_model": "d", "clip_model": "c"}
    changes = check.profile_overrides(tmp_path / "sd15", backbones, cpu=True, adam_8bit=True)
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps(changes))
    profile = get_profile("gpu")
    assert (profile.mixed_precision, profile.resolution) == ("no", 64)
    assert profile.use_8bit_adam and profile.gradient_checkpointing
    assert profile.pretrained_model_name_or_path == str(tmp_path / "sd15") and profile.dino_model == "d"
    assert profile.steps(400) == 4 and profile.num_class_images == 4
    assert not check.profile_overrides(tmp_path, backbones, cpu=True, adam_8bit=False)["use_8bit_adam"]


def test_on_a_gpu_the_overrides_keep_fp16_at_512_px(tmp_path, monkeypatch):
    changes = check.profile_overrides(tmp_path, {}, cpu=False, adam_8bit=False)
    monkeypatch.setenv(OVERRIDES_ENV, json.dumps(changes))
    profile = get_profile("gpu")
    assert (profile.mixed_precision, profile.resolution, profile.use_8bit_adam) == ("fp16", 512, True)


def test_without_a_gpu_the_check_points_to_cpu(tmp_path, monkeypatch, capsys):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert check.main([str(tmp_path)]) == 2
    assert "--cpu" in capsys.readouterr().out
    assert not (tmp_path / "sd15-random").exists()  # nothing built


def test_home_size_counts_bytes_written_at_the_peak_and_at_the_end(tmp_path):
    (tmp_path / "kept.bin").write_bytes(b"x" * 100)
    with course.HomeSize(tmp_path, interval=3600) as size:
        (tmp_path / "runs").mkdir()
        (tmp_path / "runs" / "weights.bin").write_bytes(b"x" * 5000)
        (tmp_path / "runs" / "card.md").write_bytes(b"x" * 30)
        size.sample()  # as after a cell
        (tmp_path / "runs" / "weights.bin").unlink()
    assert size.measures() == {"home_start": 100, "written_peak": 5030, "written_end": 30, "home_end": 130}


def test_home_size_samples_in_the_background(tmp_path):
    with course.HomeSize(tmp_path, interval=0.01) as size:
        (tmp_path / "checkpoint.bin").write_bytes(b"x" * 2000)
        deadline = time.monotonic() + 30
        while size.peak < 2000 and time.monotonic() < deadline:
            time.sleep(0.01)
        (tmp_path / "checkpoint.bin").unlink()
    assert size.measures()["written_peak"] == 2000 and size.measures()["written_end"] == 0


def test_folder_bytes_of_a_missing_folder_is_zero(tmp_path):
    assert course.folder_bytes(tmp_path / "nothing") == 0


def test_the_probe_cell_reports_the_peak_rss():
    out = subprocess.run([sys.executable, "-c", course.PEAK_PROBE], capture_output=True, text=True, check=True).stdout
    cell = types.SimpleNamespace(get=lambda key, default=None: [{"text": out}])
    peaks = course.kernel_peaks(types.SimpleNamespace(cells=[cell]))
    assert peaks["rss"] > 10 * 2**20


MEASURED = {"rss": 3 * 2**30, "home_start": 2**20, "written_peak": 5 * 2**30, "written_end": 4 * 2**30,
            "home_end": 4 * 2**30 + 2**20}


def cells(row):
    return dict(zip(course.REPORT_COLUMNS, [c.strip() for c in row.strip().strip("|").split("|")], strict=True))


def test_report_row_without_a_budget_says_so():
    row = cells(course.report_row("01_learning_rate", 61.4, MEASURED, "ran", None))
    assert row["seconds"] == "61" and row["peak RSS (GiB)"] == "3.00" and row["peak GPU allocated (GiB)"] == "-"
    assert (row["home at start"], row["written: peak"], row["written: end"]) == ("1.0 MiB", "5.0 GiB", "4.0 GiB")
    assert row["budget: peak"] == row["budget: total"] == "budget: not available"


def test_report_row_compares_the_peak_written_with_the_budget():
    within = FakeBudget("01", kept_before=2**20, peak=6 * 2**30, trash=2**30, total=7 * 2**30)
    row = cells(course.report_row("01_learning_rate", 61, MEASURED, "ran", within))
    assert row["budget: peak"] == "6.0 GiB" and row["peak written within budget"] == "yes"
    over = FakeBudget("01", kept_before=0, peak=4 * 2**30, trash=0, total=4 * 2**30)
    row = cells(course.report_row("01_learning_rate", 61, MEASURED, "ran", over))
    assert row["peak written within budget"] == "NO: 5.0 GiB > 4.0 GiB"
    assert cells(course.report_row("01_learning_rate", None, {}, "failed: x", over))["written: peak"] == "-"


def test_the_table_keeps_rows_from_earlier_calls(tmp_path):
    path = tmp_path / "report.md"
    path.write_text(course.report_table(path, {n: course.report_row(n, 1, {}, "ran") for n in ("00_setup", "02_prior")}))
    path.write_text(course.report_table(path, {"02_prior": course.report_row("02_prior", 9, {}, "ran"),
                                               "01_lr": course.report_row("01_lr", 5, {}, "ran")}))
    rows = [cells(line) for line in path.read_text().splitlines()[2:]]
    assert [(r["notebook"], r["seconds"]) for r in rows] == [("00_setup", "1"), ("01_lr", "5"), ("02_prior", "9")]


def test_budgets_are_read_lazily_and_missing_ones_are_none(monkeypatch):
    monkeypatch.setitem(sys.modules, "helpers.course.budget", None)  # importing it raises ImportError
    assert course.notebook_budgets("gpu") is None
    fake = types.ModuleType("helpers.course.budget")
    fake.course_budget = lambda profile="gpu", platform="local": [FakeBudget("01", 0, 1, 0, 1), FakeBudget("02", 1, 2, 0, 3)]
    monkeypatch.setitem(sys.modules, "helpers.course.budget", fake)
    assert course.notebook_budgets("gpu")["02"].total == 3


@pytest.mark.parametrize("budget, expected", [(None, "budget: not available"), ("unlisted", "not in the budget")])
def test_budget_cells_without_numbers(budget, expected):
    assert course.budget_cells({}, budget) == [expected] * 4 + ["-"]
