"""``python -m helpers doctor``: what this machine can do, and what to change when something is missing."""

from __future__ import annotations

import importlib
import logging
import os
import platform
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata

from helpers.base.home import course_home, free_bytes
from helpers.base.paths import REPO_ROOT
from helpers.profiles import PROFILE_ENV, default_profile_name, get_profile

# The libraries the course imports, each with what to import to prove it works. diffusers and
# transformers load their classes lazily, so only a class shows a version that does not fit the other.
IMPORT_CHECKS = {
    "torch": "torch",
    "diffusers": "diffusers:StableDiffusionPipeline",
    "transformers": "transformers:CLIPTextModel",
    "accelerate": "accelerate:Accelerator",
    "bitsandbytes": "bitsandbytes",
    "peft": "peft:LoraConfig",
    "safetensors": "safetensors.torch",
    "huggingface_hub": "huggingface_hub:HfApi",
    "ipywidgets": "ipywidgets",
}
PACKAGES = tuple(IMPORT_CHECKS)
# Kept as Colab and Kaggle ship them (the install cell pins them), so never compared with the tested versions.
PLATFORM_PACKAGES = ("torch", "ipywidgets", "numpy", "pillow")


@dataclass
class Report:
    """Facts about this machine plus advice; ``str(report)`` is the printed form."""

    facts: dict[str, str] = field(default_factory=dict)
    advice: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        width = max(len(k) for k in self.facts)
        lines = [f"{k:<{width}}  {v}" for k, v in self.facts.items()]
        lines += ["", "advice:" if self.advice else "advice: none, this machine is ready."]
        lines += [f"  - {a}" for a in self.advice]
        return "\n".join(lines)


def canonical(name: str) -> str:
    """A distribution name as pip compares them (``Pillow_Heif`` -> ``pillow-heif``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package_version(name: str) -> str | None:
    """The installed version of the distribution ``name``, or None where it is not installed."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def import_error(target: str) -> str | None:
    """Why ``target`` (``module`` or ``module:name``) does not import, as ``Type: message``; None when it does."""
    module, _, name = target.partition(":")
    try:
        loaded = importlib.import_module(module)
        if name:
            getattr(loaded, name)
    except Exception as err:  # noqa: BLE001 (a broken library raises anything; its own words are the report)
        while err.__cause__ or err.__context__:  # the first error, not a wrapper's "look up to see its traceback"
            err = err.__cause__ or err.__context__
        message = str(err).strip().splitlines()[0] if str(err).strip() else ""
        return f"{type(err).__name__}: {message}".rstrip(": ")
    return None


@contextmanager
def _quiet_imports() -> Iterator[None]:
    """Hide the notices libraries print while loading (an optional backend missing), not their errors."""
    names = ("transformers", "diffusers", "bitsandbytes")
    levels = {name: logging.getLogger(name).level for name in names}
    verbosity = os.environ.get("TRANSFORMERS_VERBOSITY")
    os.environ["TRANSFORMERS_VERBOSITY"] = "error"  # transformers sets its logger's level from this when it loads
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for name in names:
                logging.getLogger(name).setLevel(logging.ERROR)
            yield
    finally:
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
        if verbosity is None:
            os.environ.pop("TRANSFORMERS_VERBOSITY", None)
        else:
            os.environ["TRANSFORMERS_VERBOSITY"] = verbosity


def import_problems() -> dict[str, str]:
    """Each course library that is installed but does not import, with its error (name -> ``Type: message``)."""
    problems = {}
    with _quiet_imports():
        for name, target in IMPORT_CHECKS.items():
            if package_version(name) is not None:
                error = import_error(target)
                if error:
                    problems[name] = error
    return problems


def course_libraries() -> set[str]:
    """The libraries the course itself requires (pyproject.toml's dependencies, not the test tools)."""
    import tomllib

    path = REPO_ROOT / "pyproject.toml"
    if not path.exists():
        return {canonical(name) for name in IMPORT_CHECKS}
    dependencies = tomllib.loads(path.read_text())["project"]["dependencies"]
    return {canonical(re.split(r"[<>=!~;\[ ]", d, maxsplit=1)[0]) for d in dependencies}


def tested_versions() -> dict[str, str]:
    """The versions CI tests, from ``constraints.txt`` (name -> version; empty where the file is missing)."""
    path = REPO_ROOT / "constraints.txt"
    pins = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def version_drift(installed: dict[str, str] | None = None) -> list[str]:
    """One line per course library whose installed version differs from the tested one.

    Test tools (pytest, ipykernel, ...) and the platform's own torch, ipywidgets, numpy and
    pillow are not compared: the course works with any of them.

    Args:
        installed: name -> version to compare (tests); None reads what is installed.
    """
    compared = course_libraries() - {canonical(name) for name in PLATFORM_PACKAGES}
    lines = []
    for name, tested in tested_versions().items():
        if name not in compared:
            continue
        have = installed.get(name) if installed is not None else package_version(name)
        if have and have != tested:
            lines.append(f"{name} {have} is installed; the course is tested with {tested}")
    return lines


def adam8bit_works(device: str) -> tuple[bool, str]:
    """Try one step of bitsandbytes' 8-bit AdamW on ``device``; returns (works, why not)."""
    import logging

    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)  # its optional-kernel notices are noise here
    try:
        import bitsandbytes as bnb
        import torch

        p = torch.nn.Parameter(torch.ones(4096, device=device))
        opt = bnb.optim.AdamW8bit([p], lr=1e-3)
        p.grad = torch.ones_like(p)
        opt.step()
        return bool(torch.all(p < 1).item()), ""
    except Exception as err:  # noqa: BLE001 (bitsandbytes raises many kinds of errors on unsupported set-ups)
        return False, f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}"


def _check_libraries(r: Report) -> dict[str, str]:
    """Add each course library's version (or why it is missing or broken) to ``r``; returns the import problems."""
    problems = import_problems()
    for name in PACKAGES:
        version = package_version(name)
        r.facts[name] = version or "MISSING"
        if version is None:
            r.advice.append(f"{name} is missing: run `pip install -e .` in the kit's folder (or `make install`).")
        elif name in problems:
            r.facts[name] = f"{version}, does not import: {problems[name]}"
    if problems:
        r.advice.append(f"{', '.join(problems)} installed but not importing (the error is above): their versions do not "
                        "fit together. Install the tested ones: `pip install -e . -c constraints.txt` in the kit's "
                        "folder; on Colab or Kaggle run the notebook's first cell again.")
    return problems


def _check_device(r: Report) -> str:
    """Add the device, the GPU and its precisions to ``r``; returns ``cuda``, ``mps`` or ``cpu``."""
    import torch

    device = "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
    r.facts["device"] = device
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        r.facts["gpu"] = f"{props.name}, {props.total_memory / 2**30:.1f} GiB, {torch.cuda.device_count()} device(s)"
        r.facts["fp16"] = "yes"
        r.facts["bf16"] = "yes" if torch.cuda.is_bf16_supported() else "no (use mixed_precision='fp16')"
        if props.total_memory < 15 * 2**30:
            r.advice.append("Less than 16 GB of GPU memory: keep use_8bit_adam, fp16 and gradient_checkpointing on.")
    else:
        r.facts["gpu"] = "none"
        r.advice.append(
            "No CUDA GPU: the `cpu` profile runs the whole course on the miniature model. For the study's "
            "full-size runs use a GPU runtime (Colab: Runtime > Change runtime type > T4 GPU)."
        )
    return device


def _check_profile(r: Report, problems: dict[str, str]) -> None:
    """Add the profile, its base model and the course home to ``r``; advise where the base model cannot be had."""
    try:
        profile = get_profile()
        r.facts["profile"] = f"{profile.name} ({PROFILE_ENV}={__import__('os').environ.get(PROFILE_ENV, 'unset')}, "
        r.facts["profile"] += f"default here: {default_profile_name()})"
        r.facts["base model"] = profile.pretrained_model_name_or_path
        r.facts["course home"] = f"{course_home().name}/ ({free_bytes() / 2**30:.0f} GiB free)"
        if problems:
            return
        # helpers.train.models loads diffusers: only now that it is known to import
        from helpers.train.models import ModelUnavailableError, resolve_model

        try:
            if profile.pretrained_model_name_or_path.startswith("kit:toyworld"):
                resolve_model(profile.pretrained_model_name_or_path)
        except ModelUnavailableError as err:
            r.advice.append(str(err))
    except ValueError as err:
        r.facts["profile"] = "invalid"
        r.advice.append(str(err))


def diagnose() -> Report:
    """Collect versions, device, precision support and the profile this machine would use."""
    r = Report()
    r.facts["python"] = platform.python_version()
    problems = _check_libraries(r)
    if "torch" in problems or package_version("torch") is None:
        return r  # everything below needs torch
    drift = version_drift()
    if drift:
        r.advice.append("Versions differ from the tested ones (constraints.txt): " + "; ".join(drift) + ". If something "
                        "breaks, install the tested ones: `pip install -e . -c constraints.txt`.")
    device = _check_device(r)
    works, why = adam8bit_works(device if device != "mps" else "cpu")
    r.facts["8-bit AdamW"] = "works" if works else f"does not run here ({why})"
    if not works:
        r.advice.append("8-bit AdamW is unavailable: training falls back to torch AdamW (more optimizer memory).")
    _check_profile(r, problems)
    return r
