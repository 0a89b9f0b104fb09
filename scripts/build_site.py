"""Build the course's website (``make site``): the executed notebooks, the README and docs/, as static HTML.

    python scripts/build_site.py                               # runs/notebooks -> site/
    python scripts/build_site.py --notebooks OTHER/runs/notebooks --out site

Pages: the README as home page (``index.html``), every ``docs/*.md``, every notebook of
``notebooks/`` with the outputs of its executed copy (``make course`` writes them to
``runs/notebooks/``), and "The study's figures, reproduced" (``study.html``), generated from
the committed findings (``benchmarks/results/``) and the course's figures (``runs/figures/``).
The site reads from its folder (file:// included): no script, font or image is fetched from
elsewhere; links to other sites are only links. See docs/site.md.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE_SRC = Path(__file__).resolve().parent / "site_theme"  # the page template and the style sheet
RESULTS = ROOT / "benchmarks" / "results"
STUDY_URL = "https://huggingface.co/blog/dreambooth"
STUDY_ASSETS = "https://huggingface.co/datasets/huggingface/documentation-images/resolve/main/blog/dreambooth-assets/"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
WIDGET_NOTE = "(an interactive control: open the notebook in Colab or Kaggle to use it)"
NOT_MEASURED = "not yet measured"


@dataclass(frozen=True)
class Experiment:
    """One experiment of the study: its figures (linked, never copied) and where the kit measures it."""

    key: str  # the findings' key (benchmarks/results/toyworld_findings*.json), or "memory"
    title: str
    notebook: str  # the notebook that reproduces it
    study_figures: tuple[tuple[str, str], ...]  # (label, file under STUDY_ASSETS); empty: the study showed none
    kit_figure: str  # glob of the course's figure in runs/figures
    gpu_scores: tuple[str, ...] = ()  # the saved score tables of a gpu run that measure it


EXPERIMENTS = (
    Experiment("learning_rate", "Learning rate", "01_learning_rate",
               (("cat toy, high LR", "1_cattoy_hlr.jpg"), ("cat toy, low LR", "2_cattoy_llr.jpg"),
                ("pig head, high LR", "3_pighead_hlr.jpg"), ("pig head, low LR", "4_pighead_llr.jpg"),
                ("Mr. Potato Head, high LR", "5_potato_hlr.jpg"), ("Mr. Potato Head, low LR", "6_potato_llr.jpg")),
               "01_lr_comparison*", ("01_learning_rate",)),
    Experiment("steps", "Training steps", "01_learning_rate", (), "01_sweet_spot_subject*", ("01_learning_rate",)),
    Experiment("prior_preservation", "Prior preservation on faces", "02_prior_preservation",
               (("face with prior preservation", "7_faces_with_prior.jpg"),
                ("face without prior preservation", "8_faces_no_prior.jpg")),
               "02_prior_comparison*", ("02_language_drift", "02_prior_preservation")),
    Experiment("schedulers", "Schedulers", "03_schedulers",
               (("face, PNDM", "9_cosmo_pndm.jpg"), ("face, LMSDiscrete", "a_cosmo_lmsd.jpg"),
                ("face, DDIM", "b_cosmo_ddim.jpg"), ("Mr. Potato Head, PNDM", "c_potato_pndm.jpg"),
                ("Mr. Potato Head, LMSDiscrete", "d_potato_lmsd.jpg"), ("Mr. Potato Head, DDIM", "e_potato_ddim.jpg")),
               "03_study_schedulers*", ("03_schedulers",)),
    Experiment("text_encoder", "Text encoder", "04_text_encoder",
               (("frozen text encoder", "f_froxen_encoder.jpg"), ("fine-tuned text encoder", "g_unfrozen_encoder.jpg")),
               "04_text_encoder*", ("04_text_encoder",)),
    Experiment("textual_inversion", "Textual inversion + DreamBooth", "05_textual_inversion_dreambooth",
               (("textual inversion, then DreamBooth", "h_textual_inversion_dreambooth.jpg"),),
               "05_ti_dreambooth*", ("05_textual_inversion",)),
    Experiment("ema", "EMA", "06_ema_and_memory", (), "06_ema_*", ("06_ema",)),
    Experiment("memory", "Memory", "06_ema_and_memory", (), "06_memory*"),
)


# ------------------------------------------------------------------------------------------ pages


@dataclass
class Page:
    """One page of the site: where it comes from and where it goes."""

    title: str
    out: str  # path inside the site, e.g. "notebooks/01_learning_rate.html"
    kind: str  # "home", "doc", "notebook" or "study"
    source: Path | None = None


def notebook_names(folder: Path = ROOT / "notebooks") -> list[str]:
    """The course's notebooks, in order: ``["00_setup", ...]``."""
    return [p.stem for p in sorted(folder.glob("[0-9][0-9]_*.ipynb"))]


def page_list(root: Path = ROOT) -> list[Page]:
    """Every page of the site: home, the notebooks in order, the study's figures, then docs/ by name."""
    pages = [Page("Home", "index.html", "home", root / "README.md")]
    pages += [Page(name, f"notebooks/{name}.html", "notebook", root / "notebooks" / f"{name}.ipynb")
              for name in notebook_names(root / "notebooks")]
    pages.append(Page("The study's figures, reproduced", "study.html", "study"))
    for md in sorted((root / "docs").glob("*.md")):
        pages.append(Page(doc_title(md), f"docs/{md.stem}.html", "doc", md))
    return pages


def doc_title(path: Path) -> str:
    """A markdown file's first heading, else its name."""
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            return line[2:].strip()
    return path.stem.replace("_", " ")


# ------------------------------------------------------------------------------ Colab and Kaggle


def repository_url(root: Path = ROOT) -> str:
    """The kit's GitHub address, from pyproject.toml's [project.urls]."""
    import tomllib

    return tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]["Repository"].rstrip("/")


def hosted_links(name: str, notebook_text: str = "", readme: str = "", repo: str | None = None) -> dict[str, str]:
    """A notebook's "Open in Colab" and "Open in Kaggle" addresses.

    Taken from the notebook's first cell where it carries them, else from the README's table of
    notebooks, else built from the repository's address the same way.
    """
    found = {}
    for text in (notebook_text, readme):
        for host, pattern in (("colab", r"https://colab\.research\.google\.com/github/[^\s)\"'<>]+"),
                              ("kaggle", r"https://(?:www\.)?kaggle\.com/kernels/welcome\?src=[^\s)\"'<>]+")):
            for url in re.findall(pattern, text):
                if url.endswith(f"/notebooks/{name}.ipynb"):
                    found.setdefault(host, url)
    repo = repo or repository_url()
    blob = f"{repo.removeprefix('https://github.com/')}/blob/main/notebooks/{name}.ipynb"
    found.setdefault("colab", f"https://colab.research.google.com/github/{blob}")
    found.setdefault("kaggle", f"https://kaggle.com/kernels/welcome?src=https://github.com/{blob}")
    return found


# ------------------------------------------------------------------------------- executed notebooks


def run_info(nb, default_profile: str | None) -> dict:
    """Which profile produced a notebook's outputs and how long it ran, from its metadata.

    ``scripts/run_course.py`` records both (``metadata.course_run``); for copies executed before it
    did, the time is read from the cells' execution timestamps and the profile is ``default_profile``.
    """
    info = dict(nb.metadata.get("course_run", {}))
    if "seconds" not in info:
        stamps = [c.metadata.get("execution", {}) for c in nb.cells if c.cell_type == "code"]
        starts = [s["iopub.execute_input"] for s in stamps if "iopub.execute_input" in s]
        ends = [s["shell.execute_reply"] for s in stamps if "shell.execute_reply" in s]
        if starts and ends:
            start, end = (datetime.fromisoformat(t) for t in (min(starts), max(ends)))
            info["seconds"] = (end - start).total_seconds()
            info.setdefault("finished", max(ends)[:10])
    info.setdefault("profile", default_profile)
    return info


def format_seconds(seconds: float) -> str:
    """``83.2`` -> ``"1 min 23 s"``."""
    seconds = round(seconds)
    return f"{seconds} s" if seconds < 60 else f"{seconds // 60} min {seconds % 60:02d} s"


def widget_text(model_id: str, state: dict) -> str:
    """A widget's final state as text: labels, values and progress as ``n/total``, children joined."""
    model = state.get(model_id, {}).get("state", {})
    name = model.get("_model_name", "")
    children = [c.removeprefix("IPY_MODEL_") for c in model.get("children", [])]
    if children:  # a tqdm bar is a box of text, bar, text: the texts say it all
        bars = [c for c in children if "Progress" in state.get(c, {}).get("state", {}).get("_model_name", "")]
        texts = [t for t in (widget_text(c, state) for c in children if c not in bars) if t]
        return " ".join(texts or [widget_text(c, state) for c in bars])
    if "Progress" in name:
        return f"{model.get('value', 0):g}/{model.get('max', 100):g}"
    for key in ("value", "description"):
        value = model.get(key)
        if isinstance(value, str) and value.strip():
            return re.sub(r"<[^>]+>", "", html.unescape(value)).replace("\u2007", " ").strip()
    return ""


def strip_widgets(nb) -> None:
    """Replace every widget view by a text equivalent of its final state (never a frozen bar)."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    for cell in nb.cells:
        outputs = []
        for out in cell.get("outputs", []):
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view is None:
                outputs.append(out)
                continue
            model = state.get(view.get("model_id"), {}).get("state", {})
            if model.get("_model_name") == "OutputModel":  # an Output widget: show what it holds
                outputs += model.get("outputs", [])
                continue
            text = widget_text(view.get("model_id"), state) or WIDGET_NOTE
            out.data = {"text/plain": text}
            outputs.append(out)
        if cell.cell_type == "code":
            cell.outputs = outputs
    nb.metadata.pop("widgets", None)


# --------------------------------------------------------------------------------------- links


LINK = re.compile(r"(!?\[[^\]]*\]\()([^)\s]+)(\))|((?:src|href)=[\"'])([^\"']+)([\"'])")


def rewrite_links(text: str, source_dir: str, out_dir: str, repo: str, copies: dict[str, Path],
                  root: Path = ROOT) -> str:
    """Markdown and HTML links made to work in the site.

    ``source_dir`` and ``out_dir`` are the folders, relative to the repository and to the site, of
    the file and of its page. Links to notebooks and docs go to their pages; images of the
    repository (also by a raw.githubusercontent.com address of this kit) are copied into the site
    (``copies``: site path -> file); links to other files of the repository go to GitHub.
    """
    owner_repo = repo.removeprefix("https://github.com/")

    def target(url: str, image: bool) -> str:
        raw = re.match(rf"https://raw\.githubusercontent\.com/{re.escape(owner_repo)}/[^/]+/(.+)", url)
        if raw and (root / raw.group(1)).is_file():
            path, anchor = raw.group(1), ""
        elif re.match(r"^[a-z]+:|^#|^/", url):
            return url
        else:
            path, _, anchor = url.partition("#")
            path = os.path.normpath(os.path.join(source_dir, path))
            anchor = f"#{anchor}" if anchor else ""
        up = "../" * len(Path(out_dir).parts) if out_dir else ""
        if re.fullmatch(r"notebooks/[0-9][0-9]_[^/]+\.ipynb", path):
            return f"{up}{path[:-len('.ipynb')]}.html{anchor}"
        if re.fullmatch(r"docs/[^/]+\.md", path):
            return f"{up}{path[:-len('.md')]}.html{anchor}"
        if path == "README.md":
            return f"{up}index.html{anchor}"
        if image and (root / path).is_file():
            copies[f"media/{path}"] = root / path
            return f"{up}media/{path}"
        return f"{repo}/blob/main/{path}{anchor}"

    def replace(m: re.Match) -> str:
        if m.group(1):
            return m.group(1) + target(m.group(2), m.group(1).startswith("!")) + m.group(3)
        return m.group(4) + target(m.group(5), m.group(4).startswith("src")) + m.group(6)

    return LINK.sub(replace, text)


# ------------------------------------------------------------------------------ the study page


def cpu_findings(results: Path = RESULTS) -> dict:
    """The kit's cpu verdicts, pooled over every training seed saved: ``{key: SeededFinding}``."""
    sys.path.insert(0, str(ROOT))
    from helpers.study import claims, verdicts

    return {f.key: f for f in verdicts.from_records(claims.load_findings(results))}


def claim_status(verdict: str) -> str:
    """A verdict in the words the README's claims table and the notebooks use ("partly", "reproduced")."""
    from helpers.study import claims

    return claims.FROM_VERDICT.get(verdict, verdict)


def memory_table(path: Path) -> str:
    """A train-step report (``benchmarks/train_step.py``) as a markdown table: time and peak memory."""
    record = json.loads(path.read_text())
    lines = [f"*{record['title']}*, measured once (no interval)\n", "| configuration | s / step | peak memory (GiB) |",
             "|---|---:|---:|"]
    lines += [f"| {r['name']} | {r['median_s']:.3f} | {r['peak_bytes'] / 2**30:.2f} |" for r in record["rows"]]
    return "\n".join(lines)


def gpu_cells(results: Path = RESULTS) -> dict[str, str]:
    """The gpu slot of each experiment, from committed GPU reports; experiments without one are absent.

    Score tables a gpu course run saved (``benchmarks/results/gpu_scores/*.json``) fill the
    experiments they measure; ``train_step_gpu.json`` fills memory.
    """
    cells = {}
    scores = results / "gpu_scores"
    if scores.is_dir():
        sys.path.insert(0, str(ROOT))
        from helpers.measure.scores import load_saved_scores
        from helpers.study.findings_table import summary_cell

        saved = {n: r for n, r in load_saved_scores(scores).items() if r.get("profile") == "gpu"}
        for e in EXPERIMENTS:
            found = [summary_cell(saved[n]) for n in e.gpu_scores if n in saved]
            if found:
                cells[e.key] = "<br>".join(found)
    if (results / "train_step_gpu.json").exists():
        cells["memory"] = memory_table(results / "train_step_gpu.json")
    return cells


def study_markdown(figures: Path, copies: dict[str, Path], results: Path = RESULTS) -> str:
    """The page "The study's figures, reproduced", as markdown generated from the committed results.

    ``copies`` receives the course figures the page shows (site path -> file).
    """
    found, gpu = cpu_findings(results), gpu_cells(results)
    out = ["# The study's figures, reproduced\n",
           (f"Each experiment of the [study]({STUDY_URL}) side by side: the study's figures (links to the "
           "study's own images), the kit's `cpu` figure from `make course` with the verdict measured on "
           "ToyWorld in the words of the README's claims table (a difference between arms with its 95% "
           "interval; a claim is reproduced, or the opposite, only where that interval excludes zero), "
           "and the `gpu` profile's result where a GPU report is committed. The numbers come from "
           "`benchmarks/results/`; docs/findings.md, where present, "
           "explains how they are measured.\n")]
    for e in EXPERIMENTS:
        out.append(f"## {e.title}\n")
        out.append(f"Notebook: [{e.notebook}](notebooks/{e.notebook}.html)\n")
        if e.study_figures:
            links = ", ".join(f"[{label}]({STUDY_ASSETS}{file})" for label, file in e.study_figures)
            out.append(f"**The study's figures** (at their source): {links}.\n")
        else:
            out.append(f"**The study's figures:** the [study]({STUDY_URL}) showed none for this experiment.\n")
        out.append("**The kit, `cpu` profile:**\n")
        shown = sorted(figures.glob(e.kit_figure + ".png")) if figures.is_dir() else []
        if shown:
            copies[f"figures/{shown[0].name}"] = shown[0]
            out.append(f"![{e.title}: the course's cpu figure](figures/{shown[0].name})\n")
        else:
            out.append("*(no figure: run `make course`, then `make site`)*\n")
        if e.key in found:
            f = found[e.key]
            seeds = ", ".join(map(str, f.seeds))
            out.append(f"*The study:* {f.study}  \n*Measured on ToyWorld* (training seeds {seeds}): **{claim_status(f.verdict)}**\n")
            out += [f"- {note}" for note in f.notes] + [""]
        elif e.key == "memory" and (results / "train_step_cpu.json").exists():
            out.append(memory_table(results / "train_step_cpu.json") + "\n")
        else:
            out.append(f"*Verdict:* {NOT_MEASURED}\n")
        out.append("**The `gpu` profile:** " + (f"\n\n{gpu[e.key]}\n" if e.key in gpu else f"{NOT_MEASURED}.\n"))
    return "\n".join(out)


# ---------------------------------------------------------------------------------- rendering


def exporter():
    """nbconvert's HTML exporter with the site's template: JupyterLab's look, no script at all."""
    from nbconvert import HTMLExporter

    return HTMLExporter(template_name="course", extra_template_basedirs=[str(SITE_SRC)],
                        exclude_input_prompt=True, exclude_output_prompt=True)


def nav_html(pages: list[Page], current: Page) -> str:
    """The sidebar: every page, relative to the current one, the current one marked."""
    up = "../" * current.out.count("/")
    items, kinds = [], set()
    for p in pages:
        mark = ' aria-current="page"' if p is current else ""
        first = " nav-first" if p.kind not in kinds else ""
        kinds.add(p.kind)
        items.append(f'<li class="nav-{p.kind}{first}"><a href="{up}{p.out}"{mark}>{html.escape(p.title)}</a></li>')
    return f'<nav class="site-nav"><a class="site-name" href="{up}index.html">DreamBooth course</a><ul>{"".join(items)}</ul></nav>'


def render(nb, pages: list[Page], page: Page, header: str = "") -> str:
    """One page's HTML from a notebook (a markdown page is a notebook of one markdown cell)."""
    up = "../" * page.out.count("/")
    resources = {"site": {"nav": nav_html(pages, page), "header": header, "assets": f"{up}assets/"}}
    nb.metadata["title"] = page.title
    body, _ = exporter().from_notebook_node(nb, resources=resources)
    return add_github_anchors(body)


HEADING = re.compile(r'<h([1-6]) id="([^"]*)">(.*?)</h\1>', re.DOTALL)


def github_slug(text: str) -> str:
    """The anchor GitHub gives a heading: ``"The study's findings, measured"`` -> ``"the-studys-findings-measured"``."""
    text = re.sub(r"[^\w\- ]", "", html.unescape(text).strip().lower())
    return text.replace(" ", "-")


def add_github_anchors(page: str) -> str:
    """Give every heading GitHub's anchor as well as nbconvert's, so links written for GitHub work here."""

    def add(m: re.Match) -> str:
        inner = re.sub(r'<a class="anchor-link".*?</a>', "", m.group(3), flags=re.DOTALL)
        slug = github_slug(re.sub(r"<[^>]+>", "", inner))
        if not slug or slug == m.group(2):
            return m.group(0)
        return f'<h{m.group(1)} id="{m.group(2)}"><span id="{slug}"></span>{m.group(3)}</h{m.group(1)}>'

    return HEADING.sub(add, page)


def notebook_css() -> str:
    """JupyterLab's notebook styles (light theme) as nbconvert ships them with its lab template."""
    from jupyter_core.paths import jupyter_path

    for folder in map(Path, jupyter_path("nbconvert", "templates", "lab", "static")):
        if (folder / "index.css").exists():
            return (folder / "index.css").read_text() + "\n" + (folder / "theme-light.css").read_text()
    raise FileNotFoundError("nbconvert's lab template is not installed: run make site (it installs the site extra).")


def markdown_notebook(text: str):
    """A notebook holding one markdown cell: how docs and the home page go through the same template."""
    import nbformat

    return nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell(text)])


def notebook_header(name: str, links: dict[str, str], info: dict | None) -> str:
    """The buttons and the line on how the outputs were made, above a notebook page."""
    buttons = (f'<a class="button" data-host="colab" href="{html.escape(links["colab"])}">Open in Colab</a> '
               f'<a class="button" data-host="kaggle" href="{html.escape(links["kaggle"])}">Open in Kaggle</a>')
    if info is None:
        ran = "Not executed yet: these are the notebook's cells without outputs (run <code>make course</code>)."
    else:
        took = f" in {format_seconds(info['seconds'])}" if info.get("seconds") is not None else ""
        when = f" on {info['finished'][:10]}" if info.get("finished") else ""
        ran = (f"Outputs produced by the <code>{html.escape(str(info.get('profile') or 'unknown'))}</code> profile"
               f"{took}{when} (<code>make course</code>).")
    return f'<div class="nb-header" data-notebook="{name}">{buttons}<p class="run-info">{ran}</p></div>'


def build(notebooks: Path, figures: Path, out: Path, profile: str | None = None, root: Path = ROOT) -> list[Page]:
    """Write the whole site into ``out`` (emptied first); returns its pages."""
    import nbformat
    from nbconvert.preprocessors import CoalesceStreamsPreprocessor

    repo, readme = repository_url(root), (root / "README.md").read_text()
    profile_file = notebooks.parent / "profile.txt"
    profile = profile or (profile_file.read_text().strip() if profile_file.exists() else None)
    pages, copies = page_list(root), {}
    if out.exists():
        shutil.rmtree(out)
    (out / "assets").mkdir(parents=True)
    shutil.copy(SITE_SRC / "site.css", out / "assets" / "site.css")
    (out / "assets" / "notebook.css").write_text(notebook_css())
    for page in pages:
        out_dir = str(Path(page.out).parent) if "/" in page.out else ""
        if page.kind == "notebook":
            executed = notebooks / page.source.name
            nb = nbformat.read(executed if executed.exists() else page.source, as_version=4)
            info = run_info(nb, profile) if executed.exists() else None
            strip_widgets(nb)
            nb, _ = CoalesceStreamsPreprocessor().preprocess(nb, {})
            for cell in nb.cells:
                if cell.cell_type == "markdown":
                    cell.source = rewrite_links(cell.source, "notebooks", out_dir, repo, copies, root)
            first = nb.cells[0].source if nb.cells else ""
            header = notebook_header(page.source.stem, hosted_links(page.source.stem, first, readme, repo), info)
            text = render(nb, pages, page, header)
        elif page.kind == "study":
            text = render(markdown_notebook(study_markdown(figures, copies, root / "benchmarks" / "results")), pages, page)
        else:
            source_dir = str(page.source.parent.relative_to(root)) if page.source.parent != root else ""
            md = rewrite_links(page.source.read_text(), source_dir, out_dir, repo, copies, root)
            text = render(markdown_notebook(md), pages, page)
        (out / page.out).parent.mkdir(parents=True, exist_ok=True)
        (out / page.out).write_text(text)
    for target, source in copies.items():
        (out / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, out / target)
    return pages


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder``."""
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Build the course's website from the executed notebooks.")
    parser.add_argument("--notebooks", type=Path, default=ROOT / "runs" / "notebooks",
                        help="the executed notebooks (default runs/notebooks, written by make course)")
    parser.add_argument("--figures", type=Path, help="the course's figures (default: figures/ beside --notebooks)")
    parser.add_argument("--out", type=Path, default=ROOT / "site", help="where the site goes (emptied first)")
    parser.add_argument("--profile", help="the profile of the executed notebooks where they do not record it "
                                          "(default: profile.txt beside --notebooks)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    missing = [n for n in notebook_names() if not (args.notebooks / f"{n}.ipynb").exists()]
    if missing:
        print(f"warning: no executed copy of {', '.join(missing)} in {args.notebooks}: their pages show the "
              "cells without outputs (run make course first)", file=sys.stderr)
    pages = build(args.notebooks, args.figures or args.notebooks.parent / "figures", args.out, args.profile)
    print(f"site: {len(pages)} pages, {folder_bytes(args.out) / 2**20:.1f} MB in {args.out}, "
          f"built in {time.perf_counter() - start:.1f} s; open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
