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
traceback; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

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
    try:
        return args.run(args)
    except GraphMetaError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `graphmeta datasets | head` closed our stdout: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # Python's own advice
        return 0
