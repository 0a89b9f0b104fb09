"""The front doors stay short, their links resolve, and the README keeps the findings markers.

A *word* is a whitespace-separated token that contains a letter or a digit, counted after
removing the targets of markdown links and images (the ``(...)`` of ``[text](...)``) and
HTML comments (``<!-- ... -->``). Numbers are words; table rules and punctuation are not.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
README = REPO_ROOT / "README.md"
TOYWORLD_README = REPO_ROOT / "data" / "toyworld" / "README.md"
MAX_WORDS = 1500
LINK = re.compile(r"\]\(([^)\s]*)(?:\s+\"[^\"]*\")?\)")


def count_words(markdown: str) -> int:
    """The number of words in ``markdown``, as the module docstring defines them."""
    text = re.sub(r"<!--.*?-->", " ", markdown, flags=re.DOTALL)
    text = LINK.sub("] ", text)
    return sum(1 for token in text.split() if re.search(r"[^\W_]", token))


def relative_links(path: Path) -> list[str]:
    """The link targets in a markdown file that point inside the repository (no URLs, no bare anchors)."""
    targets = []
    for target in LINK.findall(path.read_text(encoding="utf-8")):
        target = target.split("#", 1)[0]
        if target and not re.match(r"[a-z][a-z0-9+.-]*:", target, flags=re.IGNORECASE):
            targets.append(target)
    return targets


def test_word_count_follows_the_definition():
    text = "# Title\n\n| a | 1.5 |\n|---|---:|\nSee [the docs](docs/findings.md) 42 x2 <!-- hidden words -->"
    assert count_words(text) == 8  # Title, a, 1.5, See, [the, docs], 42, x2: rules and comments are not words
    assert count_words("[link](https://example.com/a-very-long-address)") == 1


def test_relative_links_skip_urls_and_anchors(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](docs/x.md#part) [b](#top) [c](https://example.com) ![d](img.png \"title\") [e](mailto:x@y)")
    assert relative_links(page) == ["docs/x.md", "img.png"]


@pytest.mark.parametrize("path", [README, TOYWORLD_README], ids=["README", "toyworld README"])
def test_front_doors_are_short(path):
    words = count_words(path.read_text(encoding="utf-8"))
    assert words <= MAX_WORDS, f"{path.relative_to(REPO_ROOT)} has {words} words; move detail into docs/"


def markdown_files() -> list[Path]:
    """README.md, every docs/*.md and data/toyworld/README.md."""
    return [README, *sorted((REPO_ROOT / "docs").glob("*.md")), TOYWORLD_README]


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_relative_links_point_at_files(path):
    missing = [t for t in relative_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{path.relative_to(REPO_ROOT)} links to missing files: {missing}"


def test_readme_has_the_findings_markers():
    text = README.read_text(encoding="utf-8")
    assert "## The study's findings" in text
    start, end = text.find("<!-- claims:start -->"), text.find("<!-- claims:end -->")
    assert 0 <= start < end, "the README needs <!-- claims:start --> before <!-- claims:end -->"
    assert text.count("<!-- claims:start -->") == 1 and text.count("<!-- claims:end -->") == 1
