"""Tested versions: constraints.txt agrees with pyproject.toml, install paths use it, torch is never pinned."""

import re
import subprocess
import sys
import tomllib

from packaging.requirements import Requirement
from packaging.version import Version

from helpers.doctor import version_drift
from helpers.paths import REPO_ROOT

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
CONSTRAINTS = REPO_ROOT / "constraints.txt"


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins() -> dict[str, Version]:
    found = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line}: constraints pin exact versions"
            found[canonical(req.name)] = Version(spec.version)
    return found


def declared() -> dict[str, Requirement]:
    reqs = PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["dev"]
    return {canonical(Requirement(r).name): Requirement(r) for r in reqs}


def test_every_pin_satisfies_pyproject_and_names_a_dependency():
    deps = declared()
    for name, version in pins().items():
        assert name in deps, f"constraints.txt pins {name}, which pyproject.toml does not require"
        assert deps[name].specifier.contains(version), f"{name}=={version} is outside pyproject's {deps[name]}"


def test_the_ml_stack_is_pinned_and_torch_is_not():
    pinned = pins()
    for name in ["diffusers", "transformers", "accelerate", "peft", "bitsandbytes", "huggingface-hub", "safetensors"]:
        assert name in pinned, f"{name} must be pinned in constraints.txt"
    assert "torch" not in pinned, "the platform's torch must be kept: never pin it"


def test_make_and_the_install_cell_use_the_constraints():
    assert "-c constraints.txt" in (REPO_ROOT / "Makefile").read_text()
    cell = (REPO_ROOT / "notebooks" / "src" / "_install.py").read_text()
    assert "hosted_install.py" in cell
    script = (REPO_ROOT / "scripts" / "hosted_install.py").read_text()
    assert "constraints.txt" in script


def test_hosted_install_pins_the_torch_it_finds(tmp_path):
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "hosted_install.py"), "--dry-run"],
                            capture_output=True, text=True, check=True, cwd=tmp_path)
    import torch

    assert f"torch=={torch.__version__}" in result.stdout
    assert "-c" in result.stdout and "constraints.txt" in result.stdout


def test_doctor_reports_versions_that_differ_from_the_tested_ones():
    drift = version_drift({"diffusers": "0.0.1", "torch": "1.0"})
    assert any("diffusers" in line and "0.0.1" in line for line in drift)
    assert not any(line.startswith("torch") for line in drift)  # torch is never compared


def test_no_removed_hub_id_anywhere():
    removed = ["runwayml/stable-diffusion-v1-5"]
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO_ROOT, capture_output=True, text=True, check=True).stdout.split()
    for name in tracked:
        path = REPO_ROOT / name
        if path.suffix in {".py", ".md", ".ipynb", ".yaml", ".yml", ".toml", ".json", ".sh", ".txt"} and path.is_file():
            text = path.read_text(errors="ignore")
            for hub_id in removed:
                if name != "tests/test_install.py":
                    assert hub_id not in text, f"{name} names {hub_id}, removed from the Hub"
