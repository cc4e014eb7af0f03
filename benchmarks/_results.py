"""What the benchmark scripts share about their results: where they go and which code made them."""

from __future__ import annotations

import datetime
import shlex
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def graphmeta_commit() -> str:
    """The checkout's short commit, with ``+ uncommitted changes in graphmeta/`` when the package
    differs from it; ``?`` where git cannot tell."""

    def git(*command: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(ROOT), *command], capture_output=True, text=True,
                                  check=True).stdout.strip()
        except (OSError, subprocess.CalledProcessError):
            return "?"

    commit = git("rev-parse", "--short", "HEAD")
    if commit == "?":
        return commit
    return commit + (" + uncommitted changes in graphmeta/" if git("status", "--porcelain", "--", "graphmeta") else "")


def invocation(arguments: Sequence[str] | None = None) -> str:
    """How the running script was called, ``python benchmarks/<script> <arguments>`` (by default
    its own command-line arguments), as a results header quotes it."""
    arguments = sys.argv[1:] if arguments is None else arguments
    return " ".join(["python", f"benchmarks/{Path(sys.argv[0]).name}", shlex.join(arguments)]).strip()


def utc_now() -> str:
    """The date and minute now, in UTC, as results headers give it."""
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def destination(given: Path | None, default: Path, quick: bool) -> Path | None:
    """Where a script writes a file: the path given on its command line, else ``default`` for a
    full run and nowhere (``None``) for a ``--quick`` one."""
    if given is not None:
        return given
    return None if quick else default


def write_results(text: str, path: Path | None) -> None:
    """Write ``text`` to ``path``, creating its folder, and say where on stderr; nothing when ``path`` is ``None``."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    print(f"written to {path}", file=sys.stderr)
