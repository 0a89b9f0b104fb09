"""Build ``notebooks/NN_topic.ipynb`` from their readable sources in ``notebooks/src/NN_topic.py``.

A source is plain Python split into cells by ``# %%`` lines; ``# %% [markdown]`` starts a
markdown cell whose lines are written as ``# text``. A line ``# %% install`` stands for the
install cells of ``notebooks/src/_install.py``, the one template every notebook shares.
Notebooks are stored without outputs.
``python scripts/build_notebooks.py --check`` fails if a notebook differs from its source.
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "notebooks" / "src"
INSTALL_MARKER = "# %% install"
INSTALL_TEMPLATE = SRC / "_install.py"


def expand(text: str) -> str:
    """The source with its install marker replaced by the template's cells (its header comment dropped)."""
    template = INSTALL_TEMPLATE.read_text()
    template = template[template.index("# %%"):].rstrip("\n")
    lines = [template if line.strip() == INSTALL_MARKER else line for line in text.split("\n")]
    return "\n".join(lines)


def parse(text: str) -> list:
    """Split a source file into notebook cells."""
    cells, kind, lines = [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if kind == "markdown":
            body = "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in body.split("\n"))
        if kind and body.strip():
            make = nbformat.v4.new_markdown_cell if kind == "markdown" else nbformat.v4.new_code_cell
            cells.append(make(body))

    for line in text.split("\n"):
        if line.startswith("# %%"):
            flush()
            kind, lines = ("markdown" if "[markdown]" in line else "code"), []
            if "tags=" in line:  # e.g. "# %% tags=gpu-only"
                lines.append(f"# {line.split('tags=')[1].strip()}")
        else:
            lines.append(line)
    flush()
    return cells


def build(source: Path) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook(cells=parse(expand(source.read_text())))
    nb.metadata = {
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "accelerator": "GPU",
    }
    for i, cell in enumerate(nb.cells):
        cell.id = f"{source.stem[:2]}-{i:03d}"  # stable ids: rebuilding changes nothing
    return nb


def main(check: bool) -> int:
    stale = []
    for source in sorted(SRC.glob("[0-9][0-9]_*.py")):
        target = ROOT / "notebooks" / f"{source.stem}.ipynb"
        text = nbformat.writes(build(source)) + "\n"
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(target.name)
        else:
            target.write_text(text)
    if stale:
        print(f"Out of date with notebooks/src: {', '.join(stale)}. Run `python scripts/build_notebooks.py`.")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main("--check" in sys.argv))
