"""The notebooks' API: about 30 names in ``helpers``, and every notebook imports from there alone."""

from __future__ import annotations

import ast
import inspect
import subprocess
import sys
from pathlib import Path

import pytest

import helpers

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted((ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
# printed with inspect.getsource (reached through the dreambooth module, one of the API's names)
SHOWN = {"dreambooth.dreambooth_loss": "notebook 02", "dreambooth.prepare_models": "notebook 04",
         "dreambooth.training_parts": "notebook 01"}


def test_the_api_is_small_and_every_name_resolves():
    assert len(helpers.__all__) <= 35
    assert len(set(helpers.__all__)) == len(helpers.__all__)
    for name in helpers.__all__:
        assert getattr(helpers, name) is not None, name
    with pytest.raises(AttributeError):
        helpers.no_such_name  # noqa: B018


def test_the_api_loads_lazily():
    code = "import sys, helpers; helpers.figures; print('torch' in sys.modules, 'diffusers' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]  # figures needs neither


def kit_imports(source: Path) -> list[ast.stmt]:
    tree = ast.parse(source.read_text())
    return [node for node in ast.walk(tree)
            if (isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "helpers")
            or (isinstance(node, ast.Import) and any(a.name.split(".")[0] == "helpers" for a in node.names))]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_a_notebook_imports_from_helpers_alone_in_two_lines_at_most(source):
    found = kit_imports(source)
    assert found, "the notebook imports nothing from the kit"
    for node in found:
        assert isinstance(node, ast.ImportFrom) and node.module == "helpers", ast.unparse(node)
        assert all(a.name in helpers.__all__ for a in node.names), ast.unparse(node)
    assert sum(node.end_lineno - node.lineno + 1 for node in found) <= 2


@pytest.mark.parametrize("name", sorted(SHOWN))
def test_a_function_a_notebook_prints_names_that_notebook(name):
    module, function = name.split(".")
    assert module in helpers.__all__
    assert SHOWN[name] in inspect.getdoc(getattr(getattr(helpers, module), function)).lower()
