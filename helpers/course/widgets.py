"""The notebooks' controls (sliders, menus, a text box, a Run button) on ipywidgets 7 and 8, with a text fallback.

Colab ships ipywidgets 7.7 and draws it natively; ipywidgets 8 shows there only through an
opt-in widget manager (https://github.com/googlecolab/colabtools/issues/3020). Jupyter and
Kaggle have 8. The controls are described by small :class:`Control` values and turned into
widgets only when a live notebook can show them, through constructors both majors share.
Where they cannot show (tests, ``make course``, a plain Python process, no ipywidgets) a cell
prints one line naming the controls and how to get them, and may call its function once
with the controls' starting values instead.

The learner's uploads arrive in two shapes, one per major: :func:`uploaded_files` reads both.
"""

from __future__ import annotations

import inspect
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.base.home import detect_platform, interactive

MIN_VERSION = (7, 7)  # the oldest ipywidgets the kit is tested with (Colab's)
INSTALL_HINT = "pip install 'ipywidgets>=7.7' and restart the kernel"


@dataclass(frozen=True)
class Control:
    """One control of a cell: its kind, starting value and range or choices (a widget only when shown).

    ``kind`` is ``"slider"``, ``"log_slider"``, ``"steps"`` (a slider over ``options``),
    ``"choice"`` (a menu), ``"text"`` or ``"checkbox"``.
    """

    kind: str
    value: Any
    low: float | None = None
    high: float | None = None
    step: float | None = None
    options: tuple = field(default=())

    def describe(self) -> str:
        """A few words for the text fallback, e.g. ``slider 100..2000``."""
        if self.kind in ("slider", "log_slider"):
            return f"{self.kind.replace('_', ' ')} {_number(self.low)}..{_number(self.high)}"
        if self.kind in ("steps", "choice"):
            shown = ", ".join(map(str, self.options[:4])) + (", ..." if len(self.options) > 4 else "")
            return f"{'slider over' if self.kind == 'steps' else 'menu of'} {shown}"
        return "text box" if self.kind == "text" else "checkbox"

    def build(self, description: str):
        """The ipywidgets widget for this control (the same constructor call on ipywidgets 7 and 8)."""
        import ipywidgets

        common = {"value": self.value, "description": description, "style": {"description_width": "initial"}}
        if self.kind == "slider":
            whole = all(isinstance(v, int) for v in (self.value, self.low, self.high, self.step))
            make = ipywidgets.IntSlider if whole else ipywidgets.FloatSlider
            return make(min=self.low, max=self.high, step=self.step, **common)
        if self.kind == "log_slider":  # FloatLogSlider's min and max are exponents of ten
            return ipywidgets.FloatLogSlider(base=10, min=math.log10(self.low), max=math.log10(self.high), step=self.step,
                                             readout_format=".0e", **common)
        if self.kind in ("steps", "choice"):
            make = ipywidgets.SelectionSlider if self.kind == "steps" else ipywidgets.Dropdown
            return make(options=list(self.options), **common)
        if self.kind == "text":
            return ipywidgets.Text(layout={"width": "90%"}, **common)
        if self.kind == "checkbox":
            return ipywidgets.Checkbox(**common)
        raise ValueError(f"unknown control kind {self.kind!r}")


def slider(value: float, low: float, high: float, step: float | None = None) -> Control:
    """A slider from ``low`` to ``high``: whole numbers when all four are ints, else decimals."""
    step = step if step is not None else (1 if all(isinstance(v, int) for v in (value, low, high)) else (high - low) / 100)
    return Control("slider", value, low, high, step)


def log_slider(value: float, low: float, high: float, step: float = 0.1) -> Control:
    """A slider on a log scale from ``low`` to ``high`` (e.g. learning rates 1e-7..1e-5); ``step`` in powers of ten."""
    return Control("log_slider", value, low, high, step)


def selection_slider(options: Sequence, value: Any = None) -> Control:
    """A slider over a list of values (e.g. saved checkpoints); starts at ``value`` or the first."""
    return Control("steps", options[0] if value is None else value, options=tuple(options))


def dropdown(options: Sequence, value: Any = None) -> Control:
    """A drop-down menu of ``options``; starts at ``value`` or the first."""
    return Control("choice", options[0] if value is None else value, options=tuple(options))


def text_box(value: str) -> Control:
    """A text box (a prompt, say)."""
    return Control("text", value)


def checkbox(value: bool) -> Control:
    """A tick box."""
    return Control("checkbox", value)


def as_control(spec: Any, default: Any = inspect.Parameter.empty) -> Control:
    """A :class:`Control` from interact's shorthand: ``(low, high[, step])`` a slider, a list a menu, a bool a
    tick box, a string a text box; ``default`` (the function's) is the starting value where it fits."""
    given = default is not inspect.Parameter.empty
    if isinstance(spec, Control):
        return spec
    if isinstance(spec, bool):
        return checkbox(spec)
    if isinstance(spec, str):
        return text_box(spec)
    if isinstance(spec, tuple) and len(spec) in (2, 3):
        low, high, step = spec[0], spec[1], spec[2] if len(spec) == 3 else None
        value = default if given and low <= default <= high else _middle(low, high, step)
        return slider(value, low, high, step)
    if isinstance(spec, list) and spec:
        return dropdown(spec, default if given and default in spec else None)
    raise TypeError(f"no control for {spec!r}: give a Control, a (low, high[, step]) tuple, a list, a bool or a str")


def controls_for(fn: Callable, **controls: Any) -> dict[str, Control]:
    """Every parameter of ``fn`` with its control, in the function's order: those given, then those whose
    default is a bool or a string (a tick box or a text box, as ``interact`` does)."""
    found = {}
    for name, param in inspect.signature(fn).parameters.items():
        if name in controls:
            found[name] = as_control(controls[name], param.default)
        elif isinstance(param.default, (bool, str)):
            found[name] = as_control(param.default)
        else:
            raise TypeError(f"{fn.__name__}() parameter {name!r} needs a control or a bool/str default")
    return found


def why_no_widgets() -> str | None:
    """Why this cell cannot show widgets, as advice for the learner; None when it can."""
    if os.environ.get("COURSE_INTERACTIVE", "1") != "1":
        return "COURSE_INTERACTIVE is set to 0 here (tests, make course); unset it to get them"
    if not interactive():
        return "this is not a live notebook; open it in Jupyter, Colab or Kaggle to get them"
    try:
        import ipywidgets
    except ImportError:
        return f"ipywidgets is not installed; {INSTALL_HINT}"
    if version_of(ipywidgets.__version__) < MIN_VERSION:
        return f"ipywidgets {ipywidgets.__version__} is older than 7.7; {INSTALL_HINT}"
    return None


def version_of(text: str) -> tuple[int, int]:
    """``(major, minor)`` of a version string such as ``"8.1.9"`` or ``"7.7.1"``."""
    major, minor = (text.split(".") + ["0"])[:2]
    return int(major), int("".join(c for c in minor if c.isdigit()) or 0)


def build_controls(fn: Callable, manual: bool = True, button: str = "Run", **controls: Any):
    """``fn`` with its controls as an ``ipywidgets.interactive`` (not displayed; tests drive it).

    Args:
        manual: run ``fn`` when the button is pressed (True) or whenever a control moves (False).
        button: the button's label when ``manual``.
        controls: per parameter, a :class:`Control` or interact's shorthand (see :func:`as_control`).
    """
    import ipywidgets

    built = {name: c.build(name) for name, c in controls_for(fn, **controls).items()}
    options = {"manual": True, "manual_name": button} if manual else {}
    return ipywidgets.interactive(fn, options, **built)


def fallback_line(found: dict[str, Control], reason: str, ran: bool, hint: str = "") -> str:
    """The one line a cell prints instead of its controls."""
    names = "; ".join(f"{name} ({c.describe()})" for name, c in found.items())
    ran_with = ", ".join(f"{name}={c.value!r}" for name, c in found.items())
    line = f"Controls in a live notebook: {names}. Not shown: {reason}." + (f" {hint}" if hint else "")
    return line + (f" Ran once with {ran_with}." if ran else "")


def interactive_controls(fn: Callable, manual: bool = True, button: str = "Run",
                         fallback: bool | Callable[[], object] = True, hint: str = "", **controls: Any) -> None:
    """Show ``fn`` with its controls where widgets can show; otherwise print which controls there would be.

    Args:
        fn: called with one keyword argument per control.
        manual, button: see :func:`build_controls`.
        fallback: without widgets, call ``fn`` once with the controls' starting values (True), not at all
            (False), or call this instead.
        hint: a sentence added to the printed line, e.g. ``"Or set EXTRA_ARM in the configuration cell."``.
        controls: per parameter, a :class:`Control` or interact's shorthand (see :func:`as_control`).
    """
    found = controls_for(fn, **controls)
    reason = why_no_widgets()
    if reason is None:
        from IPython.display import display

        _prepare_frontend()
        display(build_controls(fn, manual, button, **found))
        return
    print(fallback_line(found, reason, ran=fallback is True, hint=hint))
    if fallback is True:
        fn(**{name: c.value for name, c in found.items()})
    elif callable(fallback):
        fallback()


def show_image_file(path: str | Path, width: int = 256) -> None:
    """Show a saved PNG or JPEG as an image widget in a live notebook; otherwise print where it was saved."""
    path = Path(path)
    if why_no_widgets() is not None:
        print(f"saved {path.name}")
        return
    import ipywidgets
    from IPython.display import display

    fmt = "jpeg" if path.suffix.lower() in (".jpg", ".jpeg") else "png"
    display(ipywidgets.Image(value=path.read_bytes(), format=fmt, width=width))


def uploaded_files(value: Any) -> list[tuple[str, bytes]]:
    """``(name, content)`` of every file in an upload, whichever shape it came in.

    Reads ipywidgets 8's ``FileUpload.value`` (dicts with ``name`` and ``content``, a memoryview),
    ipywidgets 7's (``{name: {"content": bytes, "metadata": {...}}}``) and Colab's
    ``files.upload()`` (``{name: bytes}``).
    """
    if isinstance(value, dict):
        items: Iterable = ((name, v["content"] if isinstance(v, dict) else v) for name, v in value.items())
    else:
        items = ((v["name"], v["content"]) for v in value)
    return [(str(name), bytes(content)) for name, content in items]


def _prepare_frontend() -> None:
    """On Colab with ipywidgets 8, switch on the widget manager that draws it (7.x is drawn natively)."""
    import ipywidgets

    if detect_platform() == "colab" and version_of(ipywidgets.__version__) >= (8, 0):
        try:
            from google.colab import output  # only on Colab
        except ImportError:
            return
        output.enable_custom_widget_manager()


def _middle(low: float, high: float, step: float | None) -> float:
    """The slider position interact picks when the function gives no default: the middle, on a step."""
    if isinstance(low, int) and isinstance(high, int) and (step is None or isinstance(step, int)):
        return low + ((high - low) // 2 // (step or 1)) * (step or 1)
    step = step or (high - low) / 100
    return low + round((high - low) / 2 / step) * step


def _number(x: Any) -> str:
    return f"{x:.0e}" if isinstance(x, float) and x and abs(x) < 1e-3 else str(x)
