"""The course website's page list and study page (scripts/build_site.py), without a browser or nbconvert."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
from pathlib import Path

import pytest

from helpers.study import claims

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("build_site", ROOT / "scripts" / "build_site.py")
build_site = sys.modules["build_site"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(build_site)

# The study's experiments (its findings, one per notebook, plus the steps of the learning-rate notebook)
STUDY = ("learning rate", "steps", "prior preservation", "schedulers", "text encoder", "textual inversion",
         "ema", "memory")


def test_every_notebook_has_a_page_with_its_buttons():
    pages = build_site.page_list()
    notebooks = sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert notebooks and [p.out for p in pages if p.kind == "notebook"] == [f"notebooks/{n}.html" for n in notebooks]
    assert pages[0].out == "index.html" and any(p.kind == "study" for p in pages)
    readme = (ROOT / "README.md").read_text()
    for name in notebooks:
        links = build_site.hosted_links(name, "", readme, build_site.repository_url())
        assert links["colab"].startswith("https://colab.research.google.com/github/")
        assert links["kaggle"].startswith("https://kaggle.com/kernels/welcome?src=https://github.com/")
        assert all(url.endswith(f"/notebooks/{name}.ipynb") for url in links.values())


def test_every_doc_has_a_page(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "README.md").write_text("# Kit\n")
    (tmp_path / "docs" / "findings.md").write_text("# How the findings are measured\n")
    (tmp_path / "docs" / "teaching.md").write_text("no heading\n")
    docs = {p.out: p.title for p in build_site.page_list(tmp_path) if p.kind == "doc"}
    assert docs == {"docs/findings.html": "How the findings are measured", "docs/teaching.html": "teaching"}


def test_every_experiment_of_the_study_is_on_the_study_page(tmp_path):
    keys = [e.key.replace("_", " ") for e in build_site.EXPERIMENTS]
    assert all(any(k.startswith(s) for k in keys) for s in STUDY) and len(keys) == len(STUDY)
    measured = {f["key"] for p in (ROOT / "benchmarks" / "results").glob("toyworld_findings*.json")
                for f in json.loads(p.read_text())["findings"]} - {"base"}
    assert measured <= {e.key for e in build_site.EXPERIMENTS}
    (tmp_path / "01_lr_comparison_subjectdotted_star.png").write_bytes(b"png")
    copies = {}
    page = build_site.study_markdown(tmp_path, copies)
    sections = re.split(r"^## ", page, flags=re.MULTILINE)[1:]
    assert [s.splitlines()[0] for s in sections] == [e.title for e in build_site.EXPERIMENTS]
    for e, section in zip(build_site.EXPERIMENTS, sections):
        assert f"notebooks/{e.notebook}.html" in section
        assert "**The `gpu` profile:**" in section
        for _, figure in e.study_figures:  # linked at its source, never copied
            assert build_site.STUDY_ASSETS + figure in section
        if e.key in measured:
            assert re.search(r"\[[+-]\d\.\d\d, [+-]\d\.\d\d\]", section), e.key  # a difference with its interval
            status = re.search(r"\*Measured on ToyWorld\* \(training seeds [\d, ]+\): \*\*(.+?)\*\*", section)
            assert status and status.group(1) in claims.STATUSES, e.key  # the README's words, not the verdict's
    assert copies == {"figures/01_lr_comparison_subjectdotted_star.png": tmp_path / "01_lr_comparison_subjectdotted_star.png"}
    gpu = build_site.gpu_cells()
    for e, section in zip(build_site.EXPERIMENTS, sections):
        assert (build_site.NOT_MEASURED in section.split("**The `gpu` profile:**")[1]) == (e.key not in gpu)


@pytest.mark.parametrize("url, expected", [
    ("notebooks/01_learning_rate.ipynb", "notebooks/01_learning_rate.html"),
    ("docs/findings.md#intervals", "docs/findings.html#intervals"),
    ("benchmarks/results/feature_agreement_generations.png", "media/benchmarks/results/feature_agreement_generations.png"),
    ("LICENSE", "https://github.com/o/kit/blob/main/LICENSE"),
    ("https://example.org/a.png", "https://example.org/a.png"),
    ("https://raw.githubusercontent.com/o/kit/main/benchmarks/results/feature_agreement_generations.png",
     "media/benchmarks/results/feature_agreement_generations.png"),
])
def test_links_of_the_home_page_work_in_the_site(url, expected):
    copies = {}
    image = url.endswith(".png")
    text = build_site.rewrite_links(f"{'!' if image else ''}[x]({url})", "", "", "https://github.com/o/kit", copies)
    assert text == f"{'!' if image else ''}[x]({expected})"
    assert bool(copies) == expected.startswith("media/")


def test_a_notebook_link_from_docs_climbs_out_of_docs():
    text = build_site.rewrite_links("[nb](../notebooks/02_prior_preservation.ipynb)", "docs", "docs",
                                    "https://github.com/o/kit", {})
    assert text == "[nb](../notebooks/02_prior_preservation.html)"


def test_widgets_become_their_final_state():
    state = {"box": {"state": {"_model_name": "HBoxModel", "children": ["IPY_MODEL_a", "IPY_MODEL_b", "IPY_MODEL_c"]}},
             "a": {"state": {"_model_name": "HTMLModel", "value": "training:\u2007100%"}},
             "b": {"state": {"_model_name": "FloatProgressModel", "value": 400, "max": 400}},
             "c": {"state": {"_model_name": "HTMLModel", "value": " 400/400 [00:35&lt;00:00]"}}}
    assert build_site.widget_text("box", state) == "training: 100% 400/400 [00:35<00:00]"
    assert build_site.widget_text("b", state) == "400/400"


def test_run_info_falls_back_on_cell_timestamps():
    nbformat = pytest.importorskip("nbformat")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1"), nbformat.v4.new_code_cell("2")])
    nb.cells[0].metadata["execution"] = {"iopub.execute_input": "2026-01-02T10:00:00.000000Z",
                                         "shell.execute_reply": "2026-01-02T10:00:05.000000Z"}
    nb.cells[1].metadata["execution"] = {"iopub.execute_input": "2026-01-02T10:00:05.000000Z",
                                         "shell.execute_reply": "2026-01-02T10:01:30.000000Z"}
    assert build_site.run_info(nb, "cpu") == {"seconds": 90.0, "finished": "2026-01-02", "profile": "cpu"}
    nb.metadata["course_run"] = {"profile": "gpu", "seconds": 12.5}
    assert build_site.run_info(nb, "cpu") == {"profile": "gpu", "seconds": 12.5}
    assert build_site.format_seconds(90) == "1 min 30 s"


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = sys.modules[name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_browser_test_refuses_a_button_to_another_notebook():
    site_test = _script("site_test")
    good = build_site.hosted_links("03_schedulers", "", (ROOT / "README.md").read_text(), build_site.repository_url())
    assert site_test.check_buttons("03_schedulers", good) == []
    wrong = dict(good, kaggle=good["kaggle"].replace("03_schedulers", "02_prior_preservation"))
    assert site_test.check_buttons("03_schedulers", wrong) == [
        f"the Kaggle button opens {wrong['kaggle']}, not notebooks/03_schedulers.ipynb"]
    assert site_test.check_buttons("03_schedulers", {"colab": good["colab"]}) == ["no 'Open in Kaggle' button"]


def test_the_browser_test_finds_broken_links(tmp_path):
    site_test = _script("site_test")
    (tmp_path / "a.html").write_text('<h2 id="here">x</h2>')
    hrefs = [(tmp_path / "a.html").as_uri() + "#here", (tmp_path / "a.html").as_uri() + "#gone",
             (tmp_path / "b.html").as_uri(), "https://example.org/missing"]
    assert site_test.check_links(tmp_path / "a.html", hrefs, tmp_path, {}) == [
        "link to a missing anchor: a.html#gone", "link to a missing file: b.html"]
