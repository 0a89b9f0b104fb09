"""Install the kit on Colab or Kaggle beside the platform's own libraries (the notebooks' first cell runs this).

In order, it:

1. stops with one sentence when the platform's torch is older than pyproject.toml asks for;
2. does nothing more when a marker in the kit's folder says an earlier run finished (same kit
   version, same libraries installed), so running the cell again is quick;
3. writes one constraints file: the tested versions of ``constraints.txt``, and the platform's
   torch, ipywidgets, numpy and pillow pinned to the versions installed, so pip never replaces them;
4. runs pip, its whole output going to ``<course home>/logs/install.log``;
5. checks that those four are unchanged and that the course's libraries import in a fresh
   interpreter, then writes the marker and prints one line (and a plain note about conflicts
   pip reported in packages the course does not use).

A failure stops with one line: pip's decisive error (or the import error) and where the log is.
``COURSE_KIT_SOURCE`` (a git URL or a folder) is read by the notebook cell that fetches the kit.

    python kit/scripts/hosted_install.py            # install
    python kit/scripts/hosted_install.py --dry-run  # print the pip command and the constraints only
    python kit/scripts/hosted_install.py --pip "python my_pip.py" --kit DIR  # another pip or kit folder
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import time
import tomllib
from importlib import metadata
from pathlib import Path

KIT = Path(__file__).resolve().parents[1]
PLATFORM_PACKAGES = ("torch", "ipywidgets", "numpy", "pillow")  # the platform's builds, never replaced
MARKER = ".install-complete.json"  # in the kit's folder, written only after a verified install
NO_INTERNET = ("this notebook has no internet, which the install needs. On Kaggle turn it on in the panel on "
               "the right: Settings > Internet > On (it needs a phone-verified account); on Colab reconnect. "
               "Then run this cell again.")
OFFLINE_SIGNS = ("Could not resolve host", "Temporary failure in name resolution", "Name or service not known",
                 "Failed to establish a new connection", "Network is unreachable", "No address associated")
RESTART = "Colab: Runtime > Restart session; Kaggle: Run > Restart & clear cell outputs"
# What pip says after installing when packages it did not touch now miss a requirement.
CONFLICT = re.compile(r"^(\S+) (\S+) requires (.+?), (?:but you have (\S+) (\S+) which is incompatible|"
                      r"which is not installed)\.$")
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # colour codes, which pip writes even to a file inside a notebook
VERIFY = """
import json
import helpers
from helpers.course.doctor import import_problems
print(json.dumps({"kit": helpers.__version__, "problems": import_problems()}))
"""


class InstallStopped(Exception):
    """The install cannot go on; the message says why and what to do."""

    def _render_traceback_(self) -> list[str]:
        """Jupyter shows this one line instead of a traceback."""
        return [f"Install stopped: {self}"]


def canonical(name: str) -> str:
    """A distribution name as pip compares them (``Pillow_Heif`` -> ``pillow-heif``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(name: str) -> str | None:
    """The installed version of a distribution, or None."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def read_pins(path: Path) -> dict[str, str]:
    """The ``name==version`` lines of a constraints file (canonical name -> version)."""
    pins = {}
    for line in path.read_text().splitlines():
        line = line.split("#")[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[canonical(name)] = version.strip()
    return pins


def kit_project(kit: Path) -> dict:
    """The ``[project]`` table of the kit's pyproject.toml."""
    return tomllib.loads((kit / "pyproject.toml").read_text())["project"]


def dependencies(kit: Path) -> dict[str, str]:
    """The kit's own requirements (canonical name -> requirement), not its test tools."""
    found = {}
    for requirement in kit_project(kit)["dependencies"]:
        found[canonical(re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0])] = requirement
    return found


def tested_libraries(kit: Path) -> dict[str, str]:
    """The tested version of each course library the install brings (name -> version), in constraints.txt's order."""
    wanted = set(dependencies(kit)) - set(PLATFORM_PACKAGES)
    return {name: version for name, version in read_pins(kit / "constraints.txt").items() if name in wanted}


def version_tuple(version: str) -> tuple[int, ...]:
    """``"2.6.0+cu124"`` -> ``(2, 6, 0)``: enough to compare release numbers."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def torch_problem(kit: Path) -> str | None:
    """Why the platform's torch cannot carry the kit (missing, or older than pyproject.toml asks), or None."""
    minimum = re.search(r">=\s*([\d.]+)", dependencies(kit)["torch"]).group(1)
    have = installed("torch")
    if have is None:
        return "torch is not installed. This install keeps the platform's torch; install one first " \
               "(`bash kit/scripts/install_torch.sh`), then run this cell again."
    if version_tuple(have) < version_tuple(minimum):
        return (f"the platform's torch {have} is older than {minimum}, which the kit's transformers needs. Choose a "
                "newer runtime (Colab: Runtime > Change runtime type > the latest runtime version; Kaggle: Settings > "
                "Environment > Always use latest environment), then run this cell again.")
    return None


def constraints_text(kit: Path, platform_versions: dict[str, str | None], relaxed: frozenset[str] = frozenset()) -> str:
    """One constraints file: the tested versions, except the platform's own packages, pinned where they are.

    Args:
        kit: the kit's folder.
        platform_versions: the platform's packages and their installed versions.
        relaxed: tested pins left out because they cannot live with a platform version (see ``blocked_pins``).
    """
    lines = ["# Written by scripts/hosted_install.py: constraints.txt's tested versions and the platform's kept ones."]
    for name, version in read_pins(kit / "constraints.txt").items():
        if name not in PLATFORM_PACKAGES and name not in relaxed:
            lines.append(f"{name}=={version}")
    lines += [f"{name}=={version}  # the platform's" for name, version in platform_versions.items() if version]
    return "\n".join(lines) + "\n"


def logs_folder(kit: Path) -> Path:
    """``<course home>/logs``, with the course home found as helpers.base.home finds it."""
    sys.path.insert(0, str(kit))
    try:
        from helpers.base.home import course_home  # light: the standard library only
    finally:
        sys.path.remove(str(kit))
    return course_home() / "logs"


def decisive_error(output: str) -> str:
    """The line of a failed pip run that says why, in plain words (never pip's ``ERROR:`` prefix)."""
    lines = output.splitlines()
    if "The conflict is caused by:" in lines:
        causes = []
        for line in lines[lines.index("The conflict is caused by:") + 1:]:
            if not line.strip():
                break
            causes.append(plain_cause(line.strip()))
        return "the versions asked for conflict: " + "; ".join(causes)
    errors = [line.removeprefix("ERROR:").strip() for line in lines
              if line.startswith("ERROR:") and "dependency resolver does not currently" not in line]
    if errors:
        return errors[0]
    rest = [line.strip() for line in lines if line.strip()]
    return rest[-1] if rest else "pip failed without saying why"


def blocked_pins(output: str, tested: dict[str, str]) -> set[str]:
    """Tested pins that pip says need another version of a platform package (``pillow-heif 1.8.1 depends on pillow>=11.1``).

    Leaving such a pin out lets pip pick an older release that fits the platform, which the install prefers
    to replacing the platform's package.
    """
    blocked = set()
    for line in output.splitlines():
        match = re.match(r"\s*(\S+) (\S+) depends on ([A-Za-z0-9_.-]+)", line)
        if match and tested.get(canonical(match.group(1))) == match.group(2) \
                and canonical(match.group(3)) in PLATFORM_PACKAGES:
            blocked.add(canonical(match.group(1)))
    return blocked


def plain_cause(line: str) -> str:
    """One line of pip's "The conflict is caused by:" block, saying where a pinned version comes from."""
    match = re.match(r"The user requested \(constraint\) (\S+?)==(\S+)$", line)
    if not match:
        return line
    name, version = match.groups()
    source = "the platform's, which the install keeps" if canonical(name) in PLATFORM_PACKAGES else "the tested one"
    return f"{name} {version} ({source})"


def conflicts(output: str) -> dict[str, list[str]]:
    """Packages pip left with a requirement it no longer meets (name -> what each asks for), from pip's report."""
    found: dict[str, list[str]] = {}
    for line in output.splitlines():
        match = CONFLICT.match(line.strip())
        if match:
            found.setdefault(match.group(1), []).append(match.group(3))
    return found


def conflict_note(found: dict[str, list[str]], course: set[str], log: Path | str) -> list[str]:
    """Plain lines about pip's conflicts: the ones in packages the course does not use are harmless."""
    unused = {name: wants for name, wants in found.items() if canonical(name) not in course}
    used = {name: wants for name, wants in found.items() if canonical(name) in course}
    lines = []
    if len(unused) == 1:
        (name, wants), = unused.items()
        lines.append(f"Note: {name}, which the course does not use, asks for {' and '.join(wants)}; it may not work "
                     "in this session, and nothing in the course needs it.")
    elif unused:
        shown = [f"{name} ({' and '.join(wants)})" for name, wants in list(unused.items())[:3]]
        more = f" and {len(unused) - 3} more" if len(unused) > 3 else ""
        lines.append(f"Note: {', '.join(shown)}{more}, which the course does not use, ask for other versions; they may "
                     f"not work in this session, and nothing in the course needs them (the list is in {log}).")
    for name, wants in used.items():
        lines.append(f"Warning: {name}, which the course uses, asks for {' and '.join(wants)}; if a notebook fails, "
                     f"send the instructor {log}.")
    return lines


def verify(kit: Path, python: str) -> tuple[str | None, dict[str, str]]:
    """Import the course's libraries in a fresh interpreter: (the kit's version, library -> import error)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(kit) + (":" + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    result = subprocess.run([python, "-c", VERIFY], capture_output=True, text=True, env=env, check=False)
    if result.returncode != 0:
        last = (result.stderr.strip() or "it exited without a message").splitlines()[-1]
        return None, {"helpers": last}
    report = json.loads(result.stdout.strip().splitlines()[-1])
    return report["kit"], report["problems"]


def current_versions(kit: Path) -> dict[str, str | None]:
    """What the marker records: the kit's, the tested libraries' and the platform packages' installed versions."""
    names = [kit_project(kit)["name"], *tested_libraries(kit), *PLATFORM_PACKAGES]
    return {name: installed(name) for name in names}


def marker_holds(kit: Path) -> bool:
    """True when the marker exists and everything it recorded is still installed at the same version."""
    path = kit / MARKER
    if not path.exists():
        return False
    try:
        recorded = json.loads(path.read_text())
    except ValueError:
        return False
    return recorded.get("kit") == kit_project(kit)["version"] and recorded.get("versions") == current_versions(kit)


def stale_modules(kit: Path) -> list[str]:
    """Course libraries this Python process loaded before the install, at another version than installed now."""
    stale = []
    for name in tested_libraries(kit):
        module = sys.modules.get(name.replace("-", "_"))
        loaded = getattr(module, "__version__", None)
        if loaded and loaded != installed(name):
            stale.append(f"{name} {loaded}")
    return stale


def summary(kit: Path, verb: str, log: Path) -> str:
    """The one line that says what is installed."""
    tested = tested_libraries(kit)
    libs = [f"{name} {installed(name)}" + ("" if installed(name) == tested_version else f" (tested: {tested_version})")
            for name, tested_version in tested.items()]
    kept = [f"{name} {installed(name)}" for name in PLATFORM_PACKAGES if installed(name)]
    return (f"kit {kit_project(kit)['version']} {verb}: {', '.join(libs)}; the platform's {', '.join(kept)} "
            f"unchanged (pip's log: {log})")


def run_pip(command: list[str], log: Path) -> tuple[int, str]:
    """Run pip with its whole output appended to ``log``; returns (exit status, this run's output)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("a") as out:
        out.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')}: {' '.join(command)}\n")
        out.flush()
        start = out.tell()
        code = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, check=False).returncode
    with log.open() as done:
        done.seek(start)
        return code, ANSI.sub("", done.read())


def install_kit(kit: Path = KIT, pip: list[str] | None = None) -> None:
    """Install the kit and the tested libraries beside the platform's own; print one line, or raise InstallStopped.

    Args:
        kit: the kit's folder (a clone of the repository).
        pip: the command that stands for pip (tests pass a fake); None is this Python's pip.
    """
    kit = Path(kit).resolve()
    problem = torch_problem(kit)
    if problem:
        raise InstallStopped(problem)
    log = logs_folder(kit) / "install.log"
    if marker_holds(kit):
        check_session(kit)
        print(summary(kit, "already installed", log))
        return
    waiting = f"Installing the kit's tested libraries (a minute or two; pip's output goes to {log}) ..."
    print(waiting, end="", flush=True)
    try:
        output = install_and_verify(kit, pip, log)
    except InstallStopped:
        print()  # the stop's line goes under the waiting line
        raise
    print("\r" + summary(kit, "installed", log).ljust(len(waiting)))  # replaces the waiting line
    for line in conflict_note(conflicts(output), set(dependencies(kit)) | {canonical(kit_project(kit)["name"])}, log):
        print(line)


def install_and_verify(kit: Path, pip: list[str] | None, log: Path) -> str:
    """Run pip with the platform's packages pinned, check the result and write the marker; returns pip's output."""
    before = {name: installed(name) for name in PLATFORM_PACKAGES}
    constraints = log.parent / "install-constraints.txt"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [*(pip or [sys.executable, "-m", "pip"]), "install", "--no-color", "--progress-bar", "off",
               "-e", str(kit), "-c", str(constraints)]
    relaxed: frozenset[str] = frozenset()
    for _ in range(3):  # each try may leave out tested pins that the platform's versions rule out
        constraints.write_text(constraints_text(kit, before, relaxed))
        code, output = run_pip(command, log)
        blocked = blocked_pins(output, read_pins(kit / "constraints.txt")) - relaxed
        if code == 0 or not blocked:
            break
        relaxed |= blocked
    if code != 0:
        raise InstallStopped(NO_INTERNET if any(sign in output for sign in OFFLINE_SIGNS)
                             else f"pip could not install the kit: {decisive_error(output)} (full log: {log})")
    changed = [f"{name} {was} -> {installed(name)}" for name, was in before.items() if installed(name) != was]
    if changed:
        raise InstallStopped(f"pip replaced the platform's {', '.join(changed)}. Restart the session ({RESTART}) and "
                             f"send the instructor {log}.")
    version, problems = verify(kit, sys.executable)
    if problems:
        listed = "; ".join(f"{name}: {error}" for name, error in problems.items())
        raise InstallStopped(f"the libraries installed but do not import: {listed} (full log: {log})")
    if version != kit_project(kit)["version"]:
        raise InstallStopped(f"Python imports kit {version}, not the {kit_project(kit)['version']} just installed "
                             f"in {kit}; restart the session ({RESTART}) and run this cell again.")
    (kit / MARKER).write_text(json.dumps({"kit": version, "versions": current_versions(kit)}, indent=1) + "\n")
    check_session(kit)
    return output


def check_session(kit: Path) -> None:
    """Stop when this session already loaded an older copy of a library the install replaced."""
    stale = stale_modules(kit)
    if stale:
        raise InstallStopped(f"the install is complete, but this session loaded {', '.join(stale)} before it. Restart "
                             f"the session ({RESTART}) and run the notebook again; the install is not repeated.")


def main(argv: list[str] | None = None) -> int:
    """The command line: install, or with ``--dry-run`` print what would run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dry-run", action="store_true", help="print the pip command and the constraints only")
    parser.add_argument("--pip", help="the command that stands for pip, e.g. 'python fake_pip.py' (tests)")
    parser.add_argument("--kit", type=Path, default=KIT, help="the kit's folder (default: the one holding this script)")
    args = parser.parse_args(argv)
    if args.dry_run:
        platform_versions = {name: installed(name) for name in PLATFORM_PACKAGES}
        print(" ".join([sys.executable, "-m", "pip", "install", "-e", str(args.kit), "-c", "install-constraints.txt"]))
        print(constraints_text(args.kit, platform_versions), end="")
        return 0
    try:
        install_kit(args.kit, shlex.split(args.pip) if args.pip else None)
    except InstallStopped as stop:
        print(f"Install stopped: {stop}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
