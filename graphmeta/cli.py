"""The ``graphmeta`` command line (also ``python -m graphmeta``).

Each subcommand is one module ``graphmeta/commands/<name>.py`` with two functions::

    def add_parser(subparsers) -> argparse.ArgumentParser:
        parser = subparsers.add_parser("<name>", help="one line for `graphmeta --help`",
                                       description="what it does, in full")
        parser.add_argument(...)
        return parser

    def run(args: argparse.Namespace) -> int:
        ...  # import heavy modules here, so `graphmeta --help` stays fast
        return 0

To add a command, write that module and add its name to :data:`COMMANDS`; the order there is
the order of ``graphmeta --help``. A :class:`~graphmeta.errors.GraphMetaError` raised by a
command is printed as ``error: <message>`` on stderr and the exit status is 2, with no
traceback; any other exception is a bug and keeps its traceback. A Ctrl-C (SIGINT) or SIGTERM
ends a command with one line on stderr, saying what was under way and what was kept where the
command knows (:mod:`graphmeta.train.interrupts`), and the exit status ``128 + signal`` (130, 143).
"""

from __future__ import annotations

import argparse
import importlib
import os
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType

from . import __version__
from .allocator import reuse_large_allocations
from .errors import GraphMetaError

COMMANDS = ("demo", "train", "tune", "evaluate", "curves", "draw", "datasets")


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per module named in :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="graphmeta",
        description="Graph-structured meta-learning: task graphs, batched adaptation, message passing.",
    )
    parser.add_argument("--version", action="version", version=f"graphmeta {__version__}")
    subparsers = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"graphmeta.commands.{name}")
        module.add_parser(subparsers).set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), run the command, return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    reuse_large_allocations()  # this process is ours: keep big tensor buffers for reuse
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm) if in_main_thread else None
    try:
        return args.run(args)
    except GraphMetaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as interrupt:
        print(str(interrupt) or "SIGINT received: stopped", file=sys.stderr)
        return getattr(interrupt, "exit_status", 128 + signal.SIGINT)
    except BrokenPipeError:  # `graphmeta datasets | head` closed our stdout: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own advice
        return 0
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


def _sigterm(number: int, frame: FrameType | None) -> None:
    """SIGTERM as an :class:`~graphmeta.train.interrupts.Interrupted`; graphmeta.train is imported
    only now, so the commands that never need it stay quick."""
    from .train.interrupts import raise_interrupted

    raise_interrupted(number, frame)
