"""Check the kit's environment for packages that break it, and for a torch that is too old or the wrong build.

torchvision, timm and open-clip-torch, installed beside a CPU-only torch, make
``import peft`` and the ``accelerate`` command fail; the kit needs none of them.
The oldest torch the kit runs on is pyproject.toml's lower bound (transformers 5 needs 2.6).
"""

import re
import shutil
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

FORBIDDEN = ("torchvision", "timm", "open-clip-torch", "open_clip_torch")
PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def torch_minimum() -> str:
    """The lower bound of pyproject.toml's torch requirement (``"2.6"``)."""
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    line = next(d for d in dependencies if re.match(r"torch\s*>=", d))
    return re.search(r">=\s*([\d.]+)", line).group(1)


def release(version: str) -> tuple[int, ...]:
    """``"2.6.0+cu124"`` -> ``(2, 6, 0)``."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def main() -> int:
    installed = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()}
    bad = sorted(name for name in FORBIDDEN if name.replace("_", "-") in installed)
    if bad:
        print(f"Remove {', '.join(bad)} from this environment: `pip uninstall {' '.join(bad)}`.")
        return 1
    import torch

    if release(torch.__version__) < release(torch_minimum()):
        print(f"torch {torch.__version__} is older than {torch_minimum()}, which the kit's transformers needs. Install a "
              "newer one: `pip uninstall torch && bash scripts/install_torch.sh`.")
        return 1
    has_nvidia = shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False).returncode == 0
    if not has_nvidia and torch.version.cuda is not None:
        print(f"torch {torch.__version__} is a CUDA build on a machine without an NVIDIA GPU (several GB for nothing).")
        print("Reinstall the CPU build: `pip uninstall torch && bash scripts/install_torch.sh`.")
        return 1
    print(f"environment ok: torch {torch.__version__}, none of {', '.join(FORBIDDEN[:3])} installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
