"""``python -m helpers doctor`` reports the facts a learner needs and advice for what is missing."""

import subprocess
import sys

import torch

from helpers.doctor import diagnose


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
