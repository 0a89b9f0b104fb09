"""Where the kit keeps things: the repository root, its shipped data and the learner's course home."""

from pathlib import Path

from helpers.base.home import KIT_ROOT, course_home

REPO_ROOT = KIT_ROOT
DATA_DIR = REPO_ROOT / "data"
TOKENIZER_DIR = DATA_DIR / "clip-tokenizer"

# The public home of the kit: badges, the Colab install cell and pyproject name this URL;
# tests/test_packaging.py checks that they all agree with it.
REPO_SLUG = "dreambooth-course/dreambooth-course-kit"
REPO_URL = f"https://github.com/{REPO_SLUG}"


def runs_dir() -> Path:
    """Folder for everything the course produces: the course home (:func:`helpers.base.home.course_home`)."""
    return course_home()


def display_path(path: str | Path) -> str:
    """``path`` as a learner should see it in printed output: from the course home's name when inside it."""
    path, home = Path(path), runs_dir()
    try:
        return f"{home.name}/{path.resolve().relative_to(home.resolve())}"
    except ValueError:
        return path.name
