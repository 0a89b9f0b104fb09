"""Every comparison figure of the course has its measure table in the same cell, on every profile."""

import re
from pathlib import Path

import pytest

SOURCES = sorted((Path(__file__).resolve().parents[1] / "notebooks" / "src").glob("0*.py"))
FIGURE = re.compile(r"^fig = (\w+)\.show\(", re.MULTILINE)  # a comparison drawn at the top level of a cell


def cells(path: Path) -> list[str]:
    return re.split(r"^# %%.*$", path.read_text(), flags=re.MULTILINE)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_each_comparison_figure_prints_its_measure_table(source):
    for cell in cells(source):
        for name in FIGURE.findall(cell):
            assert re.search(rf"print\(score_comparison\(subject, {name}\b[^)]*name=\"{source.stem[:2]}_", cell), (
                f"{source.name}: the figure of {name!r} has no score_comparison(...) table, named after the notebook, "
                "in its cell")
            assert "photos=photos" in cell, f"{source.name}: the figure of {name!r} does not show the subject's photos"


def test_no_notebook_branches_on_the_profile_around_its_tables():
    for source in SOURCES:
        for cell in cells(source):
            if "score_comparison(" in cell:
                assert "profile.name" not in cell and "is_toyworld" not in cell, source.name
