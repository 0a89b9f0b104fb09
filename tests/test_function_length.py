"""Every function in ``helpers/`` and ``benchmarks/`` fits on one screen (60 lines at most, docstring included)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIMIT = 60


def long_functions(folder: Path, limit: int = LIMIT) -> list[str]:
    """``path:line name (n lines)`` for each function or method under ``folder`` longer than ``limit`` lines."""
    found = []
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = node.end_lineno - node.lineno + 1
                if lines > limit:
                    found.append(f"{path.relative_to(folder.parent)}:{node.lineno} {node.name} ({lines} lines)")
    return found


def test_the_check_finds_a_long_function(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(LIMIT))
    (tmp_path / "long.py").write_text(f"def short():\n    return 1\n\n\ndef long():\n{body}\n")
    found = long_functions(tmp_path)
    assert found == [f"{tmp_path.name}/long.py:5 long ({LIMIT + 1} lines)"]


def test_no_function_is_longer_than_a_screen():
    assert [*long_functions(ROOT / "helpers"), *long_functions(ROOT / "benchmarks")] == []
