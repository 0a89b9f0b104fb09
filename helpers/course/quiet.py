"""Library chatter a learner does not need, filtered in one place (called when a notebook opens its course home).

The libraries under the kit speak to their own developers: a missing optional kernel, a fallback
image processor, a loading bar per model that a notebook shows frozen at 0%. A learner reads the
kit's messages, its training and sampling progress bars, and the figures. :func:`quiet_libraries`
hides the known noise (each pattern below, nothing else) and the libraries' model-loading bars;
``COURSE_DEBUG=1`` leaves everything as the libraries print it.
"""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path

DEBUG_ENV = "COURSE_DEBUG"

# Messages that say nothing a learner can act on, each with where it comes from.
NOISE = (
    r"Failed to load CPU gemm_4bit_forward",  # bitsandbytes on a CPU without its optional kernels package
    r"requires torchvision \(not installed\)",  # transformers' image processors; the kit has no torchvision
    r"should be kept in float32: \[\]",  # diffusers, when a model with no such module is cast
)
NOISE_RE = re.compile("|".join(NOISE))
# Loggers whose records are checked, at their source (a logger's filter sees only its own records).
NOISY_LOGGERS = ("bitsandbytes", "bitsandbytes.backends.cpu.ops", "transformers", "transformers.utils.import_utils",
                 "diffusers", "diffusers.models.modeling_utils")


class NoiseFilter(logging.Filter):
    """Drops log records whose message matches :data:`NOISE`."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not NOISE_RE.search(record.getMessage())


_FILTER = NoiseFilter()


def debug() -> bool:
    """True when ``COURSE_DEBUG=1``: every library message and bar is shown."""
    return os.environ.get(DEBUG_ENV, "") not in ("", "0")


def _handlers() -> list[logging.Handler]:
    """Every handler a library's warning can end in: the libraries' own, the root logger's, Python's last resort."""
    found = list(logging.getLogger().handlers) + [logging.lastResort]
    for name in ("transformers", "diffusers"):
        found += logging.getLogger(name).handlers
    return [h for h in found if h is not None]


def quiet_libraries() -> bool:
    """Hide the libraries' known noise and model-loading bars (not under ``COURSE_DEBUG=1``); True when it did."""
    if debug():
        return False
    import diffusers.utils.logging as diffusers_logging
    import transformers.utils.logging as transformers_logging
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars

    downloads_shown = not are_progress_bars_disabled()
    transformers_logging.disable_progress_bar()  # "Loading weights" per model, frozen at 0% in a saved notebook
    diffusers_logging.disable_progress_bar()  # "Loading pipeline components"
    if downloads_shown:  # transformers' switch turns off the Hub's too: a download of minutes keeps its bar
        enable_progress_bars()
    transformers_logging.get_logger()  # makes sure the library's handler exists before it is filtered
    diffusers_logging.get_logger()
    for target in [*map(logging.getLogger, NOISY_LOGGERS), *_handlers()]:
        if _FILTER not in target.filters:
            target.addFilter(_FILTER)
    for pattern in NOISE:
        warnings.filterwarnings("ignore", message=f".*{pattern}")
    return True


# ------------------------------------------------------------------------------ checking executed notebooks

# What no output cell of an executed notebook should show: the noise above, library bars left at 0%,
# a machine's paths (the learner's course home is named by its folder, never by its absolute path).
MACHINE_PATHS = ("/home/", "/tmp/", "/work", "/root", "PosixPath(", "WindowsPath(")
FROZEN_BAR_RE = re.compile(r"^(Loading|Writing|Fetching)[^\n]*?:\s+0%\|", re.MULTILINE)


def output_text(output: dict) -> str:
    """The text an output cell shows: a stream, a result's or display's plain text, or an error's traceback."""
    if output.get("output_type") == "stream":
        text = output.get("text", "")
    elif output.get("output_type") == "error":
        text = "\n".join(output.get("traceback", []))
    else:
        text = output.get("data", {}).get("text/plain", "")
    return "".join(text) if isinstance(text, list) else text


def output_problems(text: str, home: str | None = None) -> list[str]:
    """What is wrong with one output's text: library noise, a frozen library bar, a machine path."""
    problems = [f"library noise: {m.group(0)!r}" for m in NOISE_RE.finditer(text)]
    problems += [f"frozen progress bar: {m.group(0).strip()!r}" for m in FROZEN_BAR_RE.finditer(text)]
    paths = [*MACHINE_PATHS, *([home] if home else [])]
    problems += [f"machine path: {p!r}" for p in paths if re.search(r"(?<![\w.~-])" + re.escape(p), text)]
    return problems


def scan_notebook(path: str | Path, home: str | None = None) -> list[str]:
    """One line per offending output of an executed notebook: ``name [cell N] problem``."""
    path = Path(path)
    cells = json.loads(path.read_text()).get("cells", [])
    found = []
    for number, cell in enumerate(cells, 1):
        for output in cell.get("outputs", []):
            if output.get("output_type") == "execute_result" and set(output.get("data", {})) == {"text/plain"}:
                found.append(f"{path.name} [cell {number}] ends on a value: {output_text(output)[:80]!r}")
            found += [f"{path.name} [cell {number}] {p}" for p in output_problems(output_text(output), home)]
    return found


def scan_outputs(folder: str | Path, home: str | None = None) -> list[str]:
    """:func:`scan_notebook` over every ``*.ipynb`` in ``folder`` (e.g. ``runs/notebooks`` after ``make course``)."""
    return [line for path in sorted(Path(folder).glob("*.ipynb")) for line in scan_notebook(path, home)]
