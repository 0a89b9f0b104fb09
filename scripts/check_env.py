"""Check the kit's environment for packages that break it, and for the wrong torch build.

torchvision, timm and open-clip-torch, installed beside a CPU-only torch, make
``import peft`` and the ``accelerate`` command fail; the kit needs none of them.
"""

import shutil
import subprocess
import sys
from importlib import metadata

FORBIDDEN = ("torchvision", "timm", "open-clip-torch", "open_clip_torch")


def main() -> int:
    installed = {d.metadata["Name"].lower().replace("_", "-") for d in metadata.distributions()}
    bad = sorted(name for name in FORBIDDEN if name.replace("_", "-") in installed)
    if bad:
        print(f"Remove {', '.join(bad)} from this environment: `pip uninstall {' '.join(bad)}`.")
        return 1
    import torch

    has_nvidia = shutil.which("nvidia-smi") and subprocess.run(["nvidia-smi", "-L"], capture_output=True, check=False).returncode == 0
    if not has_nvidia and torch.version.cuda is not None:
        print(f"torch {torch.__version__} is a CUDA build on a machine without an NVIDIA GPU (several GB for nothing).")
        print("Reinstall the CPU build: `pip uninstall torch && bash scripts/install_torch.sh`.")
        return 1
    print(f"environment ok: torch {torch.__version__}, none of {', '.join(FORBIDDEN[:3])} installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
