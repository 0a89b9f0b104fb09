"""What values a setting takes, declared once: its range, its choices, whether it names a folder or a file.

The configuration classes (:class:`helpers.train.config.TrainConfig` and the textual-inversion one)
declare one :class:`Field` per setting and check every value against it; the command line uses the
same declarations for its plain options (:meth:`Field.arg`). A value outside its declaration is a
:class:`FieldError`, whose message names the setting and says what to write instead.
"""

from __future__ import annotations

import argparse
import math
import numbers
import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from helpers.errors import LearnerError


class FieldError(LearnerError, ValueError):
    """A setting whose value is of the wrong kind or outside its range."""


# How each type is described in a message, with an example of a valid value.
TYPE_WORDS = {
    bool: "true or false",
    int: "a whole number such as 400 (no quotes)",
    float: "a number such as 2e-6 (no quotes)",
    str: "text in quotes",
}


@dataclass(frozen=True)
class Field:
    """The valid values of one setting beyond its type; every limit is optional.

    Args:
        low, high: the smallest and largest value (numbers are also checked to be finite).
        low_open, high_open: ``low`` / ``high`` itself is not allowed.
        multiple_of: a number must be a multiple of this (resolution: 8).
        choices: the only values allowed.
        nonempty: text (or a list) must not be empty.
        path: ``"dir"``: a folder (a file there is an error); ``"file"``: a file (a folder there is an error).
        exists: with ``path``, the folder or file must already exist.
        advice: what to do, appended to the message (e.g. "the study used 1e-6 to 5e-6").
    """

    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False
    multiple_of: int | None = None
    choices: tuple = ()
    nonempty: bool = False
    path: str = ""
    exists: bool = False
    advice: str = ""

    def problem(self, value: Any) -> str:
        """Why ``value`` (already of the right type) is not valid here; "" when it is."""
        if isinstance(value, (list, tuple)):
            if self.nonempty and not value:
                return "must not be empty"
            return next((p for p in map(self.problem, value) if p), "")
        if isinstance(value, bool) or value is None:
            return ""
        if isinstance(value, numbers.Real):
            return self._number_problem(value)
        if isinstance(value, str):
            return self._text_problem(value)
        return ""

    def _number_problem(self, value: float) -> str:
        """The range check of a number."""
        if not math.isfinite(value):
            return "must be a finite number"
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return f"must be {'above' if self.low_open else 'at least'} {self.low:g}"
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            return f"must be {'below' if self.high_open else 'at most'} {self.high:g}"
        if self.multiple_of and value % self.multiple_of:
            return f"must be a multiple of {self.multiple_of}"
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(map(str, self.choices))}"
        return ""

    def _text_problem(self, value: str) -> str:
        """The choices, emptiness and path checks of a text."""
        if self.choices and value not in self.choices:
            return f"must be one of {', '.join(repr(c) for c in self.choices)}"
        if self.nonempty and not value.strip():
            return "must not be empty"
        if self.path and value:
            return path_problem(value, self.path, self.exists)
        return ""

    def check(self, name: str, value: Any, hint: Any = None) -> Any:
        """``value`` of type ``hint`` (an annotation; None: any) as the setting takes it, or a :class:`FieldError`."""
        if hint is not None:
            value = check_type(name, value, hint)
        problem = self.problem(value)
        if problem:
            advice = f" ({self.advice})" if self.advice else ""
            raise FieldError(f"{name}={value!r} {problem}{advice}.")
        return value

    def arg(self, kind: type, name: str = "") -> Callable[[str], Any]:
        """An argparse ``type=`` that converts a command-line word to ``kind`` and checks it against this field."""

        def convert(text: str) -> Any:
            try:
                value = text if kind is str else kind(text)
            except ValueError:
                raise argparse.ArgumentTypeError(f"{text!r} is not {TYPE_WORDS.get(kind, kind.__name__)}") from None
            problem = self.problem(value)
            if problem:
                advice = f" ({self.advice})" if self.advice else ""
                raise argparse.ArgumentTypeError(f"{text!r} {problem}{advice}")
            return value

        convert.__name__ = name or kind.__name__  # argparse names the type in some messages
        return convert


def path_problem(value: str, kind: str, exists: bool = False) -> str:
    """Why ``value`` cannot be the folder (``kind="dir"``) or file (``"file"``) it should be; "" when it can."""
    path = Path(value).expanduser()
    if kind == "dir" and path.is_file():
        return "is a file, not a folder: give the folder that holds it"
    if kind == "file" and path.is_dir():
        return "is a folder, not a file: give a file name inside it"
    if exists and not path.exists():
        return f"does not exist: check the path (it is read from {Path.cwd()})"
    return ""


def check_type(name: str, value: Any, hint: Any) -> Any:
    """``value`` as the annotation ``hint`` wants it (an int for a float, a tuple for a list), or a :class:`FieldError`.

    Nothing is parsed from text here (YAML and the command line do that before): ``"400"`` for an
    int is an error, as it is in a notebook's configuration cell.
    """
    if get_origin(hint) in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        hint = next(a for a in get_args(hint) if a is not type(None))
    if get_origin(hint) is list:
        (inner,) = get_args(hint) or (Any,)
        if not isinstance(value, (list, tuple)):
            raise FieldError(f"{name}={value!r} must be a list, e.g. {name}=[...].")
        return [check_type(f"{name}[{i}]", v, inner) for i, v in enumerate(value)]
    if hint is Any:
        return value
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if hint is float and isinstance(value, numbers.Real) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    raise FieldError(f"{name}={value!r} is {type(value).__name__}; it must be {TYPE_WORDS.get(hint, hint)}.")


def check_fields(config: Any, fields: dict[str, Field], hints: dict[str, Any]) -> None:
    """Check (and normalise: ints to floats, tuples to lists) every field of a config dataclass in place."""
    for name, hint in hints.items():
        rule = fields.get(name, Field())
        object.__setattr__(config, name, rule.check(name, getattr(config, name), hint))


# The kinds of command-line arguments the commands share (``type=SEED.arg(int)``): paths and counts.
FOLDER_IN = Field(nonempty=True, path="dir", exists=True)  # a folder to read
FOLDER_OUT = Field(nonempty=True, path="dir")  # a folder to write (not a file)
FILE_IN = Field(nonempty=True, path="file", exists=True)  # a file to read
FILE_OUT = Field(nonempty=True, path="file")  # a file to write (not a folder)
SEED = Field(low=0, high=2**32 - 1)
COUNT = Field(low=1)
RATE = Field(low=0, low_open=True, high=1)
SHARE = Field(low=0, high=1)
