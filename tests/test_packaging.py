"""The install story: one dependency list, no package that breaks the kit, one public URL."""

import re
import tomllib
from importlib import metadata
from pathlib import Path

import yaml

from helpers.base.paths import REPO_ROOT, REPO_SLUG, REPO_URL

PYPROJECT = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())


def requirement_names(reqs):
    return {re.split(r"[<>=!~\[ ]", r, maxsplit=1)[0].lower().replace("_", "-"): r for r in reqs}


def test_environment_yml_mirrors_pyproject():
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = requirement_names(r for r in pip_section if not r.startswith("-e"))
    wanted = requirement_names(PYPROJECT["project"]["dependencies"] + PYPROJECT["project"]["optional-dependencies"]["dev"])
    assert listed == wanted  # same names and the same version bounds


def test_forbidden_packages_are_not_required_nor_installed():
    forbidden = {"torchvision", "timm", "open-clip-torch"}
    assert not forbidden & set(requirement_names(PYPROJECT["project"]["dependencies"]))
    installed = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()}
    assert not forbidden & installed, "these break `import peft` and `accelerate` beside a CPU torch"


def test_torch_is_only_a_lower_bound():
    torch_req = requirement_names(PYPROJECT["project"]["dependencies"])["torch"]
    assert torch_req.startswith("torch>="), "Colab and Kaggle must keep the torch they ship"


def test_one_public_url_everywhere():
    assert PYPROJECT["project"]["urls"]["Repository"] == REPO_URL
    files = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))]
    for path in files:
        for slug in re.findall(r"github(?:usercontent)?\.com/(?:github/)?([\w.-]+/[\w.-]+)", path.read_text()):
            assert slug.removesuffix(".git") == REPO_SLUG, f"{Path(path).name} names {slug}"


def test_readme_gives_the_two_commands():
    readme = (REPO_ROOT / "README.md").read_text()
    assert "make course" in readme and "make test" in readme
    assert "make test" in (REPO_ROOT / ".ci" / "run").read_text()


def test_notebooks_match_their_sources():
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "scripts/build_notebooks.py", "--check"], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


def test_console_command_is_the_same_command_line_as_python_m_helpers():
    import importlib

    import helpers.__main__

    target = PYPROJECT["project"]["scripts"]["course-kit"]
    module, func = target.split(":")
    assert getattr(importlib.import_module(module), func) is helpers.__main__.main
