"""``python -m helpers doctor`` reports the facts a learner needs and advice for what is missing."""

import os
import subprocess
import sys

import torch

from helpers.course.doctor import diagnose


def test_report_has_the_facts(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # the CPU report, on any machine
    report = diagnose()
    for key in ("torch", "diffusers", "device", "bf16" if report.facts["device"] == "cuda" else "gpu", "8-bit AdamW"):
        assert key in report.facts
    assert report.facts["profile"].startswith("smoke")  # tests run in the smoke profile
    assert report.facts["8-bit AdamW"] == "works"  # bitsandbytes' CPU path
    assert "No CUDA GPU" in str(report)


def test_cli_runs():
    out = subprocess.run([sys.executable, "-m", "helpers", "doctor"], capture_output=True, text=True, check=True)
    assert "device" in out.stdout and "advice" in out.stdout


BROKEN = "raise ImportError(\"cannot import name 'CLIPFeatureExtractor' from 'transformers' (transformers/__init__.py)\")\n"


def test_a_library_that_does_not_import_shows_its_own_error(tmp_path, monkeypatch):
    from helpers.course import doctor

    (tmp_path / "broken_diffusers.py").write_text(BROKEN)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(doctor.IMPORT_CHECKS, "diffusers", "broken_diffusers:StableDiffusionPipeline")
    report = diagnose()
    assert report.facts["diffusers"].endswith(
        "does not import: ImportError: cannot import name 'CLIPFeatureExtractor' from 'transformers' "
        "(transformers/__init__.py)")
    assert not any("diffusers is missing" in line for line in report.advice)  # it is installed, just broken
    assert any(line.startswith("diffusers installed but not importing") for line in report.advice)


def test_python_m_helpers_doctor_reports_a_broken_library_instead_of_crashing(tmp_path):
    (tmp_path / "peft").mkdir()
    (tmp_path / "peft" / "__init__.py").write_text(BROKEN)  # shadows the real peft
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}:{os.getcwd()}"}
    out = subprocess.run([sys.executable, "-m", "helpers", "doctor"], capture_output=True, text=True, env=env, check=True)
    assert "peft" in out.stdout and "does not import: ImportError: cannot import name 'CLIPFeatureExtractor'" in out.stdout


def test_version_drift_only_names_the_courses_own_libraries():
    from helpers.course.doctor import tested_versions, version_drift

    drift = version_drift({"ipykernel": "6.0.0", "pytest": "7.0", "nbval": "0.9", "ipywidgets": "7.7.1",
                           "numpy": "1.26.0", "transformers": "4.57.1"})
    assert drift == [f"transformers 4.57.1 is installed; the course is tested with {tested_versions()['transformers']}"]
