"""What the fuzz tests share: run ``helpers.cli.main`` in this process and check how a mistake is reported.

A malformed input must give exit status 2, one line on stderr that starts with ``course-kit``, no
traceback, and leave every watched folder exactly as it was.
"""

from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

from helpers import cli

# How many cases each fuzz test tried, by test (printed at the end of each test, read by the report).
CASES: dict[str, int] = {}


@dataclass
class Outcome:
    """What one command did: exit status, stdout and stderr."""

    code: int
    out: str
    err: str


def run_cli(argv: list[str]) -> Outcome:
    """``course-kit ARGV`` in this process (argparse's exits included)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = cli.main(argv)
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
    return Outcome(code, out.getvalue(), err.getvalue())


def snapshot(*folders: Path) -> set[tuple[str, int]]:
    """Every file and folder under ``folders`` with its size: what a case must not change."""
    seen = set()
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            for name in dirs + files:
                path = Path(root) / name
                seen.add((str(path), path.stat().st_size if path.is_file() else -1))
    return seen


def assert_one_message(outcome: Outcome, argv: list[str], *names: str) -> None:
    """Exit status 2 and one line on stderr that starts with the program's name (and names ``names``)."""
    text = outcome.out + outcome.err
    assert "Traceback" not in text, f"{argv}: a traceback\n{text}"
    assert outcome.code == 2, f"{argv}: exit status {outcome.code}, not 2\n{text}"
    lines = outcome.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(cli.PROG), f"{argv}: not one message:\n{outcome.err}"
    for name in names:
        assert name in lines[0], f"{argv}: the message does not name {name!r}: {lines[0]}"


def count(test: str) -> None:
    """One more case for ``test``."""
    CASES[test] = CASES.get(test, 0) + 1


def report(test: str, what: str = "each one message, no traceback, nothing written") -> str:
    """The line a fuzz test prints: how many cases it tried."""
    line = f"{test}: {CASES.get(test, 0)} cases, {what}"
    print(line)
    return line
