"""Check executed notebooks for output a learner should not see: library noise, frozen bars, machine paths.

    python scripts/scan_outputs.py runs/notebooks        # after make course; exits 1 listing each offending cell

A cell that ends on a bare value (a path, a dict) is listed too. The course home's absolute path
(by default the folder above the notebooks) counts as a machine path.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.course.quiet import scan_outputs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", nargs="?", default=str(ROOT / "runs" / "notebooks"), help="executed notebooks")
    parser.add_argument("--home", default=None, help="the course home whose absolute path must not appear "
                        "(default: the folder above FOLDER)")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    if not any(folder.glob("*.ipynb")):
        print(f"no executed notebooks in {folder}: run make course first", file=sys.stderr)
        return 2
    found = scan_outputs(folder, args.home or str(folder.resolve().parent))
    for line in found:
        print(line)
    print(f"{len(found)} problem(s) in {len(list(folder.glob('*.ipynb')))} notebook(s)" if found
          else "outputs clean: no library noise, frozen bars, machine paths or stray values")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
