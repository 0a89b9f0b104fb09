"""Tested versions: constraints.txt agrees with pyproject.toml, install paths use it, torch is never pinned."""

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

from helpers.base.paths import REPO_ROOT
from helpers.course.doctor import version_drift

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
    extras = PYPROJECT["project"]["optional-dependencies"]
    reqs = PYPROJECT["project"]["dependencies"] + extras["dev"] + extras["site"]
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


# ------------------------------------------------------------------- the install cell on a fake platform

HOSTED_INSTALL = REPO_ROOT / "scripts" / "hosted_install.py"
COLAB = {"torch": "2.6.0", "ipywidgets": "7.7.1", "numpy": "2.0.2", "pillow": "11.3.0", "transformers": "4.57.1",
         "diffusers": "0.35.2", "accelerate": "1.10.1", "huggingface-hub": "0.35.3"}
# What pip prints after an install that left a package it did not touch without a requirement it needs.
RESOLVER_REPORT = """Successfully installed diffusers-0.42.1 transformers-5.24.0
ERROR: pip's dependency resolver does not currently take into account all the packages that are installed. \
This behaviour is the source of the following dependency conflicts.
sentence-transformers 5.1.2 requires transformers<5.0.0,>=4.41.0, but you have transformers 5.24.0 which is incompatible.
"""
RESOLUTION_IMPOSSIBLE = """ERROR: Cannot install dreambooth-course-kit and ipywidgets==7.7.1 because these package versions \
have conflicting dependencies.

The conflict is caused by:
    dreambooth-course-kit 0.1.0 depends on ipywidgets>=8.0
    The user requested (constraint) ipywidgets==7.7.1

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip to attempt to solve the dependency conflict

ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""
# A stand-in for pip: "installs" by writing a dist-info folder and a module per library. Like the real
# pip it upgrades the platform's packages it is not told to keep (to 99.0 here).
FAKE_PIP = '''
import os, shutil, sys
from pathlib import Path

site, mode = Path(os.environ["FAKE_SITE"]), os.environ.get("FAKE_PIP_MODE", "ok")
with (site.parent / "pip-calls.txt").open("a") as calls:
    calls.write(" ".join(sys.argv[1:]) + "\\n")
if mode == "explode":
    sys.exit(3)
pins = {}
for i, arg in enumerate(sys.argv):
    if arg == "-c":
        for line in Path(sys.argv[i + 1]).read_text().splitlines():
            if "==" in line.split("#")[0]:
                name, version = line.split("#")[0].strip().split("==")
                pins[name] = version
sys.path.insert(0, os.environ["FAKE_SUPPORT"])
from fake_platform import put
if mode == "offline":
    print("WARNING: Retrying after connection broken by NewConnectionError: Failed to establish a new connection: "
          "[Errno -3] Temporary failure in name resolution")
    print("ERROR: Could not find a version that satisfies the requirement diffusers==0.42.1 (from versions: none)")
    sys.exit(1)
if mode == "fail" or (mode == "old-pillow" and "pillow-heif" in pins):
    put(site, "diffusers", pins["diffusers"])  # half done: one library in, then the resolver gives up
    print(os.environ["FAKE_PIP_SAYS"])
    sys.exit(1)
for name in ("diffusers", "transformers", "accelerate", "peft", "bitsandbytes", "huggingface-hub", "safetensors",
             "pillow-heif"):
    put(site, name, pins.get(name, "0.22.0"))  # an older pillow-heif where its pin is left out
for name in ("torch", "ipywidgets", "numpy", "pillow"):
    if name not in pins:
        put(site, name, "99.0")
put(site, "dreambooth-course-kit", "0.1.0")
print(os.environ["FAKE_PIP_SAYS"])
'''
FAKE_SUPPORT = '''
import shutil
from pathlib import Path

MODULES = {"pillow": "PIL", "pillow-heif": "pillow_heif", "huggingface-hub": "huggingface_hub"}
NAMES = {"diffusers": "StableDiffusionPipeline", "transformers": "CLIPTextModel", "accelerate": "Accelerator",
         "peft": "LoraConfig", "huggingface_hub": "HfApi"}


def put(site, name, version):
    """Install ``name`` at ``version`` in the fake site-packages, replacing what was there."""
    dist = name.replace("-", "_")
    for old in site.glob(f"{dist}-*.dist-info"):
        shutil.rmtree(old)
    info = site / f"{dist}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\\nName: {name}\\nVersion: {version}\\n")
    if name == "dreambooth-course-kit":
        return
    module = site / MODULES.get(name, dist)
    module.mkdir(exist_ok=True)
    attribute = NAMES.get(module.name)
    (module / "__init__.py").write_text(f"__version__ = {version!r}\\n" + (f"{attribute} = object\\n" if attribute else ""))
    if name == "safetensors":
        (module / "torch.py").write_text("")
'''


def load_hosted_install():
    spec = importlib.util.spec_from_file_location("hosted_install", HOSTED_INSTALL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakePlatform:
    """A site-packages folder shaped like Colab's, a kit folder, a course home and a fake pip."""

    def __init__(self, root: Path, **versions: str):
        self.root, self.site, self.home, self.kit = root, root / "site", root / "home", root / "kit"
        (root / "support").mkdir()
        (root / "support" / "fake_platform.py").write_text(FAKE_SUPPORT)
        (root / "fake_pip.py").write_text(FAKE_PIP)
        self.kit.mkdir()
        for name in ("pyproject.toml", "constraints.txt"):
            shutil.copy(REPO_ROOT / name, self.kit / name)
        (self.kit / "helpers").symlink_to(REPO_ROOT / "helpers")
        for name, version in {**COLAB, **versions}.items():
            self.put(name, version)

    def put(self, name: str, version: str) -> None:
        """Install ``name`` at ``version`` on the fake platform, as pip would."""
        spec = importlib.util.spec_from_file_location("fake_platform", self.root / "support" / "fake_platform.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.put(self.site, name, version)

    def version(self, name: str) -> str:
        (info,) = self.site.glob(f"{name.replace('-', '_')}-*.dist-info")
        return info.name.removeprefix(f"{name.replace('-', '_')}-").removesuffix(".dist-info")

    def pip_calls(self) -> int:
        calls = self.root / "pip-calls.txt"
        return len(calls.read_text().splitlines()) if calls.exists() else 0

    def install(self, mode: str = "ok", says: str = RESOLVER_REPORT) -> subprocess.CompletedProcess:
        env = {**os.environ, "PYTHONPATH": str(self.site), "COURSE_HOME": str(self.home), "FAKE_SITE": str(self.site),
               "FAKE_SUPPORT": str(self.root / "support"), "FAKE_PIP_MODE": mode, "FAKE_PIP_SAYS": says}
        command = [sys.executable, str(HOSTED_INSTALL), "--kit", str(self.kit),
                   "--pip", f"{sys.executable} {self.root / 'fake_pip.py'}"]
        result = subprocess.run(command, capture_output=True, env=env, cwd=self.root, check=False)
        # decoded by hand: text=True would turn the "\r" that replaces the waiting line into a line break
        return subprocess.CompletedProcess(command, result.returncode, result.stdout.decode(), result.stderr.decode())


def lines_of(result: subprocess.CompletedProcess) -> list[str]:
    """The lines a notebook shows: what follows a carriage return replaces the line before it."""
    return [part.split("\r")[-1].strip() for part in result.stdout.split("\n") if part.split("\r")[-1].strip()]


def test_install_keeps_the_platforms_packages_and_says_what_it_did_in_plain_lines(tmp_path):
    platform = FakePlatform(tmp_path)
    result = platform.install()
    assert result.returncode == 0, result.stdout + result.stderr
    for name, version in [("torch", "2.6.0"), ("ipywidgets", "7.7.1"), ("numpy", "2.0.2"), ("pillow", "11.3.0")]:
        assert platform.version(name) == version  # the fake pip upgrades any of them left unpinned
    assert platform.version("transformers") == pins()["transformers"].base_version
    summary, note = lines_of(result)
    assert summary.startswith("kit 0.1.0 installed: diffusers 0.42.1, transformers 5.24.0")
    assert "the platform's torch 2.6.0, ipywidgets 7.7.1, numpy 2.0.2, pillow 11.3.0 unchanged" in summary
    assert note.startswith("Note: sentence-transformers, which the course does not use, asks for transformers<5")
    log = tmp_path / "home" / "logs" / "install.log"
    assert str(log) in summary and "dependency resolver" in log.read_text()  # pip's own words stay in the log
    assert (platform.kit / ".install-complete.json").exists()


def test_a_failed_install_stops_with_its_reason_and_a_rerun_completes_it(tmp_path):
    platform = FakePlatform(tmp_path)
    failed = platform.install("fail", says=RESOLUTION_IMPOSSIBLE)
    assert failed.returncode == 1
    stop = lines_of(failed)[-1]
    assert stop.startswith("Install stopped: pip could not install the kit: the versions asked for conflict:")
    assert "ipywidgets 7.7.1 (the platform's, which the install keeps)" in stop and "install.log" in stop
    assert not any(line.startswith("ERROR") for line in lines_of(failed))
    assert not (platform.kit / ".install-complete.json").exists()

    again = platform.install()  # the same cell, run again: installs, as nothing was marked complete
    assert again.returncode == 0 and "kit 0.1.0 installed" in again.stdout
    third = platform.install("explode")  # complete now: pip is not run a third time
    assert third.returncode == 0 and "kit 0.1.0 already installed" in third.stdout
    assert platform.pip_calls() == 2


OLD_PILLOW = """ERROR: Cannot install pillow-heif==1.8.1 and pillow==11.0.0 because these package versions have \
conflicting dependencies.

The conflict is caused by:
    pillow-heif 1.8.1 depends on pillow>=11.1.0
    The user requested (constraint) pillow==11.0.0
"""


def test_a_tested_pin_that_needs_a_newer_platform_package_gives_way_to_it(tmp_path):
    platform = FakePlatform(tmp_path, pillow="11.0.0")
    result = platform.install("old-pillow", says=OLD_PILLOW)
    assert result.returncode == 0, result.stdout
    assert platform.version("pillow") == "11.0.0" and platform.pip_calls() == 2
    assert "pillow-heif 0.22.0 (tested: 1.8.1)" in lines_of(result)[0]


def test_a_changed_library_makes_the_marker_stale(tmp_path):
    platform = FakePlatform(tmp_path)
    assert platform.install().returncode == 0
    platform.put("transformers", "4.57.1")  # e.g. the learner ran `pip install transformers==4.57.1`
    again = platform.install()
    assert "kit 0.1.0 installed" in again.stdout and platform.pip_calls() == 2


def test_a_torch_older_than_pyproject_allows_stops_before_pip(tmp_path):
    platform = FakePlatform(tmp_path, torch="2.4.1")
    result = platform.install()
    assert result.returncode == 1 and platform.pip_calls() == 0
    assert "Install stopped: the platform's torch 2.4.1 is older than 2.6" in result.stdout


def test_no_internet_during_pip_gives_the_one_line(tmp_path):
    result = FakePlatform(tmp_path).install("offline")
    assert result.returncode == 1
    assert lines_of(result)[-1].startswith("Install stopped: this notebook has no internet")
    assert "Settings > Internet > On" in result.stdout and "ERROR" not in result.stdout


def test_the_resolver_report_becomes_one_plain_line():
    hosted = load_hosted_install()
    found = hosted.conflicts(RESOLVER_REPORT)
    coloured = RESOLVER_REPORT.replace("ERROR:", "\x1b[31mERROR:").replace("incompatible.", "incompatible.\x1b[0m\x1b[31m")
    assert hosted.conflicts(hosted.ANSI.sub("", coloured)) == found  # as pip wrote it inside a notebook
    assert found == {"sentence-transformers": ["transformers<5.0.0,>=4.41.0"]}
    (line,) = hosted.conflict_note(found, {"diffusers", "transformers"}, "install.log")
    assert line.startswith("Note: sentence-transformers, which the course does not use, asks for transformers<5.0.0")
    several = hosted.conflict_note({"a": ["x<1"], "b": ["y<2"], "c": ["z<3"], "d": ["w<4"], "peft": ["torch<2"]},
                                   {"peft"}, "install.log")
    assert several[0].startswith("Note: a (x<1), b (y<2), c (z<3) and 1 more, which the course does not use")
    assert several[1].startswith("Warning: peft, which the course uses, asks for torch<2")
    assert hosted.decisive_error("ERROR: No matching distribution found for diffusers==9") == \
        "No matching distribution found for diffusers==9"


def install_cell() -> str:
    template = (REPO_ROOT / "notebooks" / "src" / "_install.py").read_text()
    return template[template.rindex("# %%\n") + len("# %%\n"):]


def run_cell(folder: Path, fake_git: str) -> list[str] | str:
    """Run the install cell as Kaggle would, with ``git`` replaced; the stop's rendered lines, or what it printed."""
    (folder / "bin").mkdir()
    (folder / "bin" / "git").write_text(f"#!/bin/sh\n{fake_git}\n")
    (folder / "bin" / "git").chmod(0o755)
    (folder / "cell.py").write_text(install_cell())
    driver = ("import json, sys\ntry:\n    exec(open('cell.py').read(), {'__name__': '__main__'})\n"
              "except Exception as stop:\n    print(json.dumps(stop._render_traceback_()))\n")
    env = {**os.environ, "KAGGLE_KERNEL_RUN_TYPE": "Interactive", "PATH": f"{folder / 'bin'}:{os.environ['PATH']}"}
    out = subprocess.run([sys.executable, "-c", driver], cwd=folder, env=env, capture_output=True, text=True, check=True)
    last = out.stdout.strip().splitlines()[-1]
    return json.loads(last) if last.startswith("[") else out.stdout


def test_the_cell_without_internet_says_how_to_turn_it_on_in_one_line(tmp_path):
    fake_git = "echo \"fatal: unable to access 'https://github.com/x/': Could not resolve host: github.com\" >&2; exit 128"
    (line,) = run_cell(tmp_path, fake_git)
    assert line.startswith("Install stopped: this notebook has no internet")
    assert "Settings > Internet > On (it needs a phone-verified account)" in line and "github" not in line


def test_the_cell_runs_the_install_again_when_the_kit_is_already_there(tmp_path):
    (tmp_path / "kit" / "scripts").mkdir(parents=True)
    (tmp_path / "kit" / "scripts" / "hosted_install.py").write_text("def install_kit():\n    print('install_kit ran')\n")
    printed = run_cell(tmp_path, "echo git must not run >&2; exit 1")
    assert "install_kit ran" in printed
