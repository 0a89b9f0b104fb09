"""The gpu column of the README's findings table, built from the score tables the notebooks save."""

import pytest

from helpers.base.stats import mean_of
from helpers.cli import main
from helpers.measure.scores import BACKBONE_HEADERS, ScoreTable, save_scores
from helpers.study import findings_table

README = """# Kit

| experiment | the study | ToyWorld | verdict | `gpu` profile, real model |
|---|---|---|---|---|
| learning rate | overfits | 0.9 vs 0.8 | agrees | not measured yet |
| prior preservation | drift | 0.4 vs 0.1 | agrees | not measured yet |
| EMA | little | same | agrees | not measured yet |

after the table
"""


def table(rows: dict[str, dict[str, list[float]]]) -> ScoreTable:
    return ScoreTable({label: {c: mean_of(v) for c, v in row.items()} for label, row in rows.items()},
                      "facebook/dino-vits16 + openai/clip-vit-base-patch32", BACKBONE_HEADERS)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A course home with the tables notebooks 01 and 02 would save on gpu (and one from cpu)."""
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path))
    from helpers.profiles import get_profile
    from helpers.train.settings import Subject

    cat = Subject("cat_toy", str(tmp_path), "toy")
    save_scores(table({"high LR": {"subject_fidelity": [0.7, 0.8], "context_fidelity": [0.25, 0.27]},
                       "low LR": {"subject_fidelity": [0.6, 0.6], "context_fidelity": [0.31, 0.29]}}),
                "01_learning_rate", cat, get_profile("gpu"))
    save_scores(table({"base model": {"language_drift": [0.3, 0.32]},
                       "without prior": {"language_drift": [0.7, 0.66]}}), "02_language_drift", cat, get_profile("gpu"))
    save_scores(table({"raw": {"subject_fidelity": [0.1, 0.1]}}), "06_ema", cat, get_profile("cpu"))
    return tmp_path


def test_cells_give_each_arm_its_measures_and_the_count(home):
    cells = findings_table.column_cells(findings_table.load_saved_scores())
    assert set(cells) == {"DreamBooth on objects", "learning rate", "prior preservation"}  # cpu's EMA is not gpu's
    assert cells["learning rate"] == "DINO / CLIP-T: high LR 0.75 / 0.26; low LR 0.60 / 0.30 (n=2 images per arm)"
    assert cells["prior preservation"].startswith("PRES: base model 0.31; without prior 0.68")


def test_the_readme_column_is_filled_row_by_row_and_the_rest_kept(home, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(README)
    out = tmp_path / "findings_gpu.md"
    assert main(["findings-table", "--readme", str(readme), "--out", str(out)]) == 0
    text = readme.read_text()
    assert "| learning rate | overfits | 0.9 vs 0.8 | agrees | DINO / CLIP-T: high LR 0.75" in text
    assert "| EMA | little | same | agrees | not measured yet |" in text and text.endswith("after the table\n")
    assert "0.75 [0.70, 0.80], n=2" in out.read_text()


def test_no_saved_tables_is_one_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COURSE_RUNS_DIR", str(tmp_path))
    assert main(["findings-table"]) == 2
    assert "run the notebooks in that profile first" in capsys.readouterr().err


def test_a_readme_without_the_column_is_refused(home):
    with pytest.raises(findings_table.LearnerError, match="no findings table with a column"):
        findings_table.fill_column("| a | b |\n|---|---|\n| x | y |\n", {"x": "1"})
