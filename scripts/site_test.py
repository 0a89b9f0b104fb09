"""Open every page of the built website in headless Chromium and check it (``make site-test``).

    python scripts/site_test.py                      # site/, Chromium from .chromium/ (scripts/install_chromium.sh)
    python scripts/site_test.py --site site --screenshots docs/images

Each page is opened from its file (file://, as a reader who downloaded the folder would), with
every request to another site refused. A page fails when it does not load, logs a console error,
shows an image that does not render (naturalWidth 0), links inside the site to a file or an
anchor that does not exist, or (a notebook page) has an "Open in Colab" or "Open in Kaggle" button
that does not point at its own notebook. The whole site must weigh at most --max-mb. Screenshots
of the home page and of a notebook page are saved for the README.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

ROOT = Path(__file__).resolve().parents[1]
HOSTS = {"colab": "https://colab.research.google.com/github/",
         "kaggle": "https://kaggle.com/kernels/welcome?src=https://github.com/"}
SCREENSHOT_NOTEBOOK = "01_learning_rate"


def site_bytes(site: Path) -> int:
    """Bytes of every file of the site."""
    return sum(p.stat().st_size for p in site.rglob("*") if p.is_file())


def ids_of(page: Path, cache: dict[Path, set[str]]) -> set[str]:
    """The element ids of a page (what an anchor may point at)."""
    if page not in cache:
        cache[page] = set(re.findall(r'\bid="([^"]+)"', page.read_text(errors="replace")))
    return cache[page]


def check_links(page: Path, hrefs: list[str], site: Path, cache: dict) -> list[str]:
    """The broken links among a page's internal links (files missing, anchors absent)."""
    problems = []
    for href in hrefs:
        url = urlparse(href)
        if url.scheme != "file":
            continue
        target = Path(unquote(url.path))
        if not target.exists():
            problems.append(f"link to a missing file: {target.relative_to(site) if target.is_relative_to(site) else target}")
        elif url.fragment and target.suffix == ".html" and not {url.fragment, unquote(url.fragment)} & ids_of(target, cache):
            problems.append(f"link to a missing anchor: {target.name}#{url.fragment}")
    return problems


def check_buttons(name: str, buttons: dict[str, str]) -> list[str]:
    """Problems with a notebook page's Colab and Kaggle buttons (each must open this page's notebook)."""
    problems = []
    for host, prefix in HOSTS.items():
        href = buttons.get(host)
        if href is None:
            problems.append(f"no 'Open in {host.title()}' button")
        elif not (href.startswith(prefix) and href.endswith(f"/notebooks/{name}.ipynb")):
            problems.append(f"the {host.title()} button opens {href}, not notebooks/{name}.ipynb")
    return problems


def check_page(browser, path: Path, site: Path, cache: dict) -> tuple[list[str], object]:
    """Open one page; returns its problems and the open page (closed by the caller)."""
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console error: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"script error: {e}"))
    page.on("requestfailed", lambda r: errors.append(f"request failed: {r.url[:120]}")
            if not r.url.startswith("data:") else None)
    # A reader offline gets nothing from other sites: refuse such requests, so the page must not need them.
    page.route(re.compile(r"^(https?|wss?)://"), lambda route: route.abort())
    response = page.goto(path.as_uri(), wait_until="load")
    if response is not None and not response.ok:
        errors.append(f"did not load ({response.status})")
    if not page.locator("main").count():
        errors.append("no content")
    broken = page.eval_on_selector_all(
        "img", "imgs => imgs.filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src.slice(0, 120))")
    errors += [f"image does not render: {src}" for src in broken]
    hrefs = page.eval_on_selector_all("a[href]", "links => links.map(a => a.href)")
    errors += check_links(path, hrefs, site, cache)
    if path.parent.name == "notebooks":
        buttons = page.eval_on_selector_all(
            "a.button[data-host]", "bs => Object.fromEntries(bs.map(b => [b.dataset.host, b.href]))")
        errors += check_buttons(path.stem, buttons)
        # the buttons' addresses the builder wrote, before the browser normalised them
        raw = re.findall(r'data-host="(\w+)" href="([^"]+)"', path.read_text())
        errors += check_buttons(path.stem, {h: u.replace("&amp;", "&") for h, u in raw})
    return errors, page


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Check every page of the built site in headless Chromium.")
    parser.add_argument("--site", type=Path, default=ROOT / "site")
    parser.add_argument("--chromium", type=Path, default=ROOT / ".chromium" / "run-chromium",
                        help="the browser to drive (scripts/install_chromium.sh unpacks Debian's there)")
    parser.add_argument("--screenshots", type=Path, default=ROOT / "docs" / "images",
                        help="where site_home.png and site_notebook.png go (empty: none)")
    parser.add_argument("--max-mb", type=float, default=30.0, help="the most the site may weigh, in MB")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    site = args.site.resolve()
    pages = sorted(site.rglob("*.html"))
    if not pages:
        print(f"No pages in {site}: run make site first.", file=sys.stderr)
        return 1
    failures: dict[str, list[str]] = {}
    size = site_bytes(site)
    if size > args.max_mb * 2**20:
        failures["(the whole site)"] = [f"weighs {size / 2**20:.1f} MB, more than {args.max_mb:g} MB"]
    cache: dict[Path, set[str]] = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(args.chromium), args=["--no-sandbox"])
        for path in pages:
            problems, page = check_page(browser, path, site, cache)
            name = str(path.relative_to(site))
            print(f"{'ok  ' if not problems else 'FAIL'} {name}", flush=True)
            if problems:
                failures[name] = problems
            if args.screenshots and not problems and name in ("index.html", f"notebooks/{SCREENSHOT_NOTEBOOK}.html"):
                args.screenshots.mkdir(parents=True, exist_ok=True)
                shot = "site_home.png" if name == "index.html" else "site_notebook.png"
                page.set_viewport_size({"width": 1100, "height": 700})
                page.screenshot(path=str(args.screenshots / shot))
            page.close()
        browser.close()
    for name, problems in failures.items():
        for problem in problems:
            print(f"  {name}: {problem}", file=sys.stderr)
    print(f"site-test: {len(pages)} pages, {size / 2**20:.1f} MB; "
          + ("all passed" if not failures else f"{len(failures)} with problems"))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
