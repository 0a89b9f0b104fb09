"""The notebooks' text: results shown before a run, exercises a learner can check, takeaways from the claims."""

import re
from pathlib import Path

import pytest

from helpers.base.paths import REPO_ROOT

SOURCES = sorted((REPO_ROOT / "notebooks" / "src").glob("[0-9][0-9]_*.py"))
RAW = "https://raw.githubusercontent.com/dreambooth-course/dreambooth-course-kit/main/docs/images/results/"
EXERCISE_PARTS = ("**Change:**", "**Cost:**", "**Expect on `cpu`", "**On `gpu`", "<details><summary>Solution</summary>",
                  "</details>")


def exercises(text: str) -> list[str]:
    """The exercise blocks of a notebook source: each from its ``### Exercise`` heading to the next heading."""
    parts = re.split(r"^# ### Exercise \d+", text, flags=re.MULTILINE)[1:]
    return [re.split(r"^# #{2,3} (?!Exercise)|^# %%", p, flags=re.MULTILINE)[0] for p in parts]


def test_there_are_eight_notebooks():
    assert [p.stem[:2] for p in SOURCES] == [f"{i:02d}" for i in range(8)]


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_each_notebook_opens_with_its_result_on_cpu(source: Path):
    text = source.read_text()
    url = f"{RAW}{source.stem}.png"
    assert url in text.split("# %% install")[0], f"{source.name} should show {url} before its install cell"
    image = REPO_ROOT / "docs" / "images" / "results" / f"{source.stem}.png"
    assert image.is_file() and image.stat().st_size < 400_000, "run scripts/result_images.py runs/figures"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_exercises_say_what_to_change_cost_expect_and_hide_a_solution(source: Path):
    found = exercises(source.read_text())
    assert 2 <= len(found) <= 4, f"{source.name} has {len(found)} exercises"
    for i, block in enumerate(found, 1):
        missing = [part for part in EXERCISE_PARTS if part not in block]
        assert not missing, f"{source.name}, exercise {i} lacks {missing}"


def test_the_exercise_reader_sees_a_missing_part():
    text = "# ### Exercise 1: x\n# **Change:** a\n# **Cost:** b\n# ## Takeaways\n"
    assert exercises(text) == ["# : x\n# **Change:** a\n# **Cost:** b\n".replace("# : x", ": x")]


@pytest.mark.parametrize("source", SOURCES[1:], ids=lambda p: p.stem)
def test_takeaways_about_the_study_are_read_from_the_claims(source: Path):
    text = source.read_text()
    assert "claims.show_takeaway(" in text or "claims.show_table()" in text


@pytest.mark.parametrize("phrase", [
    "What the course reproduced", "The course ends here", "the study used it anyway",
    "fewer steps, fewer class images", "The study itself trained in fp32", "| precision | fp32 |",
    "beat plain DreamBooth", "<!-- fill -->", "EXPECT_"])
def test_no_stale_or_misquoted_sentence(phrase: str):
    for source in SOURCES:
        assert phrase not in source.read_text(), f"{source.name}: {phrase!r}"
