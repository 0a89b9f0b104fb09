"""What the study claimed, and what each profile's measurements say of it: one status per claim and profile.

Nothing here is typed by hand except the claims themselves. A status is read from the committed
measurements (``benchmarks/results/``): on ``cpu`` from the ToyWorld findings over several
training seeds (:mod:`helpers.study.verdicts`), on ``gpu`` from the reports measured on a GPU.
Re-running ``benchmarks/toyworld_findings.py`` and then ``course-kit claims --readme README.md``
updates the README's table, and every notebook's takeaway line reads the same statuses
(introduced in ``01_learning_rate``, ended with the recap of ``07_lora_or_full``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from helpers.base.home import GIB
from helpers.base.paths import REPO_ROOT
from helpers.errors import LearnerError
from helpers.study import verdicts

RESULTS = REPO_ROOT / "benchmarks" / "results"
REPRODUCED, PARTLY, NOT_REPRODUCED, OPPOSITE, NOT_MEASURED = (
    "reproduced", "partly", "not reproduced", "the opposite", "not measured yet")
STATUSES = (REPRODUCED, PARTLY, NOT_REPRODUCED, OPPOSITE, NOT_MEASURED)
FROM_VERDICT = {"agrees": REPRODUCED, "agrees in part": PARTLY, "mixed": PARTLY,
                verdicts.stats.NO_CLEAR_DIFFERENCE: NOT_REPRODUCED, "disagrees": OPPOSITE}
MARKERS = ("<!-- claims:start -->", "<!-- claims:end -->")
T4_GIB = 15.0  # what a 16 GB T4 offers to PyTorch


@dataclass(frozen=True)
class Claim:
    """One claim, in the words of whoever made it, and where the course tests it."""

    key: str  # the finding that measures it (``benchmarks/results/toyworld_findings*.json``), or its own key
    experiment: str
    notebook: str
    said: str
    source: str = "the study"


CLAIMS = (
    Claim("learning_rate", "learning rate", "01",
          "On objects 5e-6 for 400 steps overfits; 2e-6 was better on every dataset."),
    Claim("steps", "steps", "01", "With a low rate, add steps until the subject appears; too many steps overfit."),
    Claim("faces", "faces", "02", "Faces need 800-1200 steps at batch 2 and a rate of 1e-6 or 2e-6."),
    Claim("prior_preservation", "prior preservation", "02",
          "Faces need prior preservation (without it they overfit); other subjects hardly do."),
    Claim("schedulers", "schedulers", "03",
          "On an overfit model DDIM is much better than PNDM and LMSDiscrete; about 100 steps help."),
    Claim("text_encoder", "text encoder", "04",
          "Training the text encoder too gives the best results, above all on faces; it costs memory."),
    Claim("textual_inversion", "textual inversion + DreamBooth", "05",
          "Textual inversion, then DreamBooth, beats plain DreamBooth, not DreamBooth with the text encoder.",
          "the study, as its authors' opinion (\"We think\")"),
    Claim("ema", "EMA", "06", "Training with or without EMA gives similar results."),
    Claim("memory", "memory", "06", "8-bit Adam, fp16 or gradient accumulation fit training on a 16 GB GPU."),
)


@dataclass(frozen=True)
class Status:
    """A claim's status on one profile, the evidence in one line, and the measurements behind it."""

    status: str
    evidence: str
    rests_on: str = ""


def load_findings(folder: str | Path = RESULTS) -> list[dict]:
    """The saved ToyWorld findings, one record per training seed (``toyworld_findings*.json``)."""
    return [json.loads(p.read_text()) for p in sorted(Path(folder).glob("toyworld_findings*.json"))]


def _difference(c: verdicts.Comparison) -> str:
    d = c.diff
    return f"{c.name} {d.value:+.2f} [{d.low:+.2f}, {d.high:+.2f}]: {c.verdict}"


def _counts(f: verdicts.SeededFinding) -> str:
    c = f.comparisons[0]
    seeds = f"{len(f.seeds)} training seed{'s' if len(f.seeds) > 1 else ''}"
    return f"n={c.diff.n[0]} vs {c.diff.n[1]} {c.unit} per comparison, {seeds}"


def cpu_statuses(records: Sequence[dict] | None = None) -> dict[str, Status]:
    """Each claim's status on ``cpu``, judged from the ToyWorld findings over training seeds."""
    found = {f.key: f for f in verdicts.from_records(load_findings() if records is None else records)}
    out = {}
    for claim in CLAIMS:
        f = found.get(claim.key)
        if f is None or not f.comparisons:
            why = {"faces": "the findings train the face at one setting only (1200 steps, prior preservation)",
                   "memory": "ToyWorld trains in well under 1 GiB: memory is measured on a GPU"}.get(
                       claim.key, "no finding saved yet")
            out[claim.key] = Status(NOT_MEASURED, why)
            continue
        out[claim.key] = Status(FROM_VERDICT[f.verdict], "; ".join(_difference(c) for c in f.comparisons),
                                _counts(f))
    return out


def _gpu_memory(folder: Path) -> Status | None:
    path = folder / "train_step_gpu.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text())
    rows = {r["name"]: r["peak_bytes"] / GIB for r in report["rows"]}
    plain = [v for k, v in rows.items() if "8bit" not in k and "fp16" in k]
    saving = [v for k, v in rows.items() if "8bit" in k]
    if not plain or not saving:
        return None
    fits = max(saving) <= T4_GIB
    status = PARTLY if fits and min(plain) > T4_GIB else REPRODUCED if fits else OPPOSITE
    device = report["rows"][0].get("device", "a GPU")
    return Status(status, f"fp16 with plain AdamW peaks at {min(plain):.1f} GiB, over a T4's {T4_GIB:.0f}; "
                          f"with 8-bit AdamW and gradient checkpointing {min(saving):.1f}-{max(saving):.1f} GiB "
                          "(gradient accumulation not measured)",
                  f"{report['rows'][0]['steps_timed']} timed steps per row on {device}, "
                  "Stable Diffusion 1.5's architecture with random weights, 512 px")


def gpu_statuses(folder: str | Path = RESULTS) -> dict[str, Status]:
    """Each claim's status on ``gpu``: measured only where a GPU report is committed."""
    out = {c.key: Status(NOT_MEASURED, "the notebooks' score tables on a GPU fill this in") for c in CLAIMS}
    memory = _gpu_memory(Path(folder))
    if memory:
        out["memory"] = memory
    return out


def statuses(profile: str, records: Sequence[dict] | None = None) -> dict[str, Status]:
    """The statuses a learner on ``profile`` reads (``smoke`` measures nothing: it shows ``cpu``'s)."""
    return gpu_statuses() if profile == "gpu" else cpu_statuses(records)


def table(records: Sequence[dict] | None = None, gpu_folder: str | Path = RESULTS) -> str:
    """The README's findings table: one line per claim, its status on ``cpu`` and on ``gpu``."""
    cpu, gpu = cpu_statuses(records), gpu_statuses(gpu_folder)
    lines = ["| experiment | the claim | `cpu` (ToyWorld) | `gpu` (Stable Diffusion) | notebook |",
             "|---|---|---|---|---|"]
    for c in CLAIMS:
        said = c.said if c.source == "the study" else f"{c.said} (an opinion: \"We think\")"
        lines.append(f"| {c.experiment} | {said} | **{cpu[c.key].status}** | **{gpu[c.key].status}** | {c.notebook} |")
    return "\n".join(lines)


def takeaway(key: str, profile: str, records: Sequence[dict] | None = None) -> str:
    """The takeaway line a notebook prints about one claim: what was said, and what this profile measured."""
    claim = next(c for c in CLAIMS if c.key == key)
    shown = "gpu" if profile == "gpu" else "cpu"
    s = statuses(shown, records)[key]
    where = {"cpu": "On `cpu` (ToyWorld)", "gpu": "On `gpu` (Stable Diffusion)"}[shown]
    if profile == "smoke":
        where = "The `smoke` profile measures nothing; on `cpu` (ToyWorld)"
    lines = [f"{claim.source[0].upper()}{claim.source[1:]}: {claim.said}", _measured(where, s)]
    if shown == "gpu" and s.status == NOT_MEASURED:
        lines.append(_measured("On `cpu` (ToyWorld)", statuses("cpu", records)[key]))
    return "\n".join(lines)


def _measured(where: str, s: Status) -> str:
    evidence = s.evidence[0].upper() + s.evidence[1:]
    return f"{where}: {s.status}. {evidence}" + (f" ({s.rests_on})." if s.rests_on else ".")


def _show(text: str) -> None:
    try:
        from IPython.display import Markdown, display
    except ImportError:
        print(text)
    else:
        display(Markdown(text))


def show_table(records: Sequence[dict] | None = None) -> None:
    """The claims table, drawn as a table in a notebook (``00_setup``, the recap of ``07``)."""
    _show(table(records))


def show_takeaway(key: str, profile: str, records: Sequence[dict] | None = None) -> None:
    """One claim's takeaway line, as a notebook's takeaways show it (from ``01_learning_rate`` on)."""
    _show(takeaway(key, profile, records).replace("\n", "  \n"))


def fill_readme(markdown: str, records: Sequence[dict] | None = None) -> str:
    """``markdown`` with the table between the claims markers made anew."""
    start, end = MARKERS
    if start not in markdown or end not in markdown:
        raise LearnerError(f"The file has no {start} ... {end} markers: add them where the table goes.")
    head, rest = markdown.split(start, 1)
    _, tail = rest.split(end, 1)
    return f"{head}{start}\n{table(records)}\n{end}{tail}"
