"""Install the kit on Colab or Kaggle beside the platform's own torch (the notebooks' install cell runs this).

The versions come from ``constraints.txt`` (the ones CI tests). torch is pinned to the
version already installed, so pip can never replace it (a new torch would break the
platform's torchvision and CUDA set-up); the script compares torch before and after and says so.

    python kit/scripts/hosted_install.py            # install
    python kit/scripts/hosted_install.py --dry-run  # print the pip command only
"""

import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

KIT = Path(__file__).resolve().parents[1]


def installed(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def pip_command(torch_pin: Path) -> list[str]:
    """pip install the kit (editable) with the tested versions and torch held where it is."""
    return [sys.executable, "-m", "pip", "install", "-q", "-e", str(KIT),
            "-c", str(KIT / "constraints.txt"), "-c", str(torch_pin)]


def main(dry_run: bool) -> int:
    before = installed("torch")
    with tempfile.TemporaryDirectory() as tmp:
        torch_pin = Path(tmp) / "torch-pin.txt"
        torch_pin.write_text(f"torch=={before}\n" if before else "")
        command = pip_command(torch_pin)
        if dry_run:
            print(" ".join(command))
            print(torch_pin.read_text().strip())
            return 0
        subprocess.run(command, check=True)
    after = installed("torch")
    if before and after != before:
        print(f"WARNING: torch changed from {before} to {after}. Restart the runtime and run this cell again.")
        return 1
    print(f"kit installed with the tested versions (constraints.txt); torch {after} kept as it was")
    return 0


if __name__ == "__main__":
    sys.exit(main("--dry-run" in sys.argv))
