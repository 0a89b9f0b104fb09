"""The kit's imports run one way: from the notebooks' API down to the ground floor, never back up.

Every ``import`` in ``helpers/`` is read with :mod:`ast`, those inside functions included (only
``if TYPE_CHECKING:`` blocks are skipped: they never run). A module may import one in its own
layer or a lower one, and the modules' graph has no cycle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "helpers"

# The layers, lowest first: the one place that says which way imports run.
LAYERS = (
    "helpers.errors",
    "helpers.profiles",
    "helpers.base",
    "helpers.figures",
    "helpers.train",
    "helpers.toyworld",
    "helpers.sample",
    "helpers.playground",
    "helpers.measure",
    "helpers.study",
    "helpers.share",
    "helpers.course",
    "helpers.cli",
    "helpers.__main__",
    "helpers",  # the package itself: the notebooks' API, which re-exports from every layer
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def layer(module: str) -> int:
    """The rank of the longest entry of LAYERS that ``module`` is, or lies inside."""
    ranks = [i for i, name in enumerate(LAYERS) if module == name or module.startswith(name + ".")]
    assert ranks, f"{module} is in no layer: add its package to LAYERS"
    return max(ranks, key=lambda i: len(LAYERS[i]))


def _runs(node: ast.AST) -> bool:
    return not (isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test))


def _imports(tree: ast.AST):
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        if _runs(node):
            yield from _imports(node)


def kit_imports(module: str) -> set[str]:
    """The kit's modules that ``module`` imports, at module level or inside a function."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in _imports(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == "helpers"}
            continue
        base = node.module or ""
        if node.level:
            parent = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(parent + ([node.module] if node.module else []))
        if base.split(".")[0] != "helpers":
            continue
        for alias in node.names:
            found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
    return {m for m in found if m != module}


GRAPH = {m: kit_imports(m) for m in MODULES}


def test_every_module_is_in_a_layer():
    for module in MODULES:
        layer(module)


def test_no_module_imports_a_higher_layer():
    upward = [f"{a} -> {b}" for a, targets in GRAPH.items() for b in targets if layer(b) > layer(a)]
    assert upward == [], "imports that run upward:\n" + "\n".join(sorted(upward))


def test_the_graph_has_no_cycle():
    done, on_path, cycles = set(), [], []

    def visit(m: str) -> None:
        if m in on_path:
            cycles.append(" -> ".join([*on_path[on_path.index(m):], m]))
            return
        if m in done:
            return
        on_path.append(m)
        for target in sorted(GRAPH.get(m, ())):
            visit(target)
        on_path.pop()
        done.add(m)

    for module in sorted(GRAPH):
        visit(module)
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_the_walk_sees_imports_inside_functions():
    assert "helpers.train.models" in GRAPH["helpers.course.doctor"]  # imported in diagnose(), once libraries load


def test_importing_the_package_loads_no_heavy_library():
    heavy = ("torch", "diffusers", "transformers", "numpy", "PIL", "matplotlib")
    code = f"import sys, helpers; print([m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
