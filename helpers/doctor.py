"""``python -m helpers doctor``: what this machine can do, and what to change when something is missing."""

from __future__ import annotations

import importlib
import platform
from dataclasses import dataclass, field

from .home import course_home, free_bytes
from .models import ModelUnavailableError, resolve_model
from .profiles import PROFILE_ENV, default_profile_name, get_profile

PACKAGES = ("torch", "diffusers", "transformers", "accelerate", "bitsandbytes", "peft", "safetensors", "ipywidgets")


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


def package_version(name: str) -> str | None:
    """The installed version of ``name``, or None if it cannot be imported."""
    try:
        return getattr(importlib.import_module(name), "__version__", "installed")
    except Exception:  # noqa: BLE001 (a package that fails to import for any reason is reported missing)
        return None


def tested_versions() -> dict[str, str]:
    """The versions CI tests, from ``constraints.txt`` (name -> version; empty where the file is missing)."""
    from .paths import REPO_ROOT

    path = REPO_ROOT / "constraints.txt"
    pins = {}
    for line in path.read_text().splitlines() if path.exists() else []:
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def version_drift(installed: dict[str, str] | None = None) -> list[str]:
    """One line per installed package whose version differs from the tested one (torch is never pinned).

    Args:
        installed: name -> version to compare (tests); None reads what is installed.
    """
    from importlib import metadata

    lines = []
    for name, tested in tested_versions().items():
        if installed is not None:
            have = installed.get(name)
        else:
            try:
                have = metadata.version(name)
            except metadata.PackageNotFoundError:
                have = None
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


def diagnose() -> Report:
    """Collect versions, device, precision support and the profile this machine would use."""
    import torch

    r = Report()
    r.facts["python"] = platform.python_version()
    for name in PACKAGES:
        version = package_version(name)
        r.facts[name] = version or "MISSING"
        if version is None:
            r.advice.append(f"{name} is missing: run `pip install -e .` in the kit's folder (or `make install`).")
    drift = version_drift()
    if drift:
        r.advice.append("Versions differ from the tested ones (constraints.txt): " + "; ".join(drift) + ". If something "
                        "breaks, install the tested ones: `pip install -e . -c constraints.txt`.")
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
    works, why = adam8bit_works(device if device != "mps" else "cpu")
    r.facts["8-bit AdamW"] = "works" if works else f"does not run here ({why})"
    if not works:
        r.advice.append("8-bit AdamW is unavailable: training falls back to torch AdamW (more optimizer memory).")
    try:
        profile = get_profile()
        r.facts["profile"] = f"{profile.name} ({PROFILE_ENV}={__import__('os').environ.get(PROFILE_ENV, 'unset')}, "
        r.facts["profile"] += f"default here: {default_profile_name()})"
        r.facts["base model"] = profile.pretrained_model_name_or_path
        r.facts["course home"] = f"{course_home().name}/ ({free_bytes() / 2**30:.0f} GiB free)"
        try:
            if profile.pretrained_model_name_or_path.startswith("kit:toyworld"):
                resolve_model(profile.pretrained_model_name_or_path)
        except ModelUnavailableError as err:
            r.advice.append(str(err))
    except ValueError as err:
        r.facts["profile"] = "invalid"
        r.advice.append(str(err))
    return r
