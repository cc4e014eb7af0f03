"""``graphmeta curves RUN``: redraw a run's training curves from its ``metrics.jsonl``, while it trains.

A run draws ``figures/curves.png`` (``online.png`` for an online run) when it ends; this command
draws it from the records written so far, so a running job can be followed without TensorBoard
(``--every 30`` redraws every 30 seconds until interrupted).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "curves",
        help="redraw a run's training curves from its metrics.jsonl, also while it trains",
        description="Draw RUN/figures/curves.png (online.png for an online run) from the records of "
                    "RUN/metrics.jsonl written so far, and print its path.",
    )
    parser.add_argument("run_path", type=Path, metavar="RUN", help="the run's folder, e.g. runs/alarm-latent")
    parser.add_argument("--every", type=float, metavar="SECONDS",
                        help="redraw every SECONDS until interrupted (Ctrl-C)")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..train.figures import plot_run_curves
    from ..train.run_dir import RunDirectory

    directory = RunDirectory(args.run_path)
    if not directory.metrics.is_file():
        raise ConfigError(f"{directory.metrics} does not exist: give the folder of a run that has logged a record")
    if args.every is not None and args.every <= 0:
        raise ConfigError(f"--every must be a positive number of seconds, got {args.every:g}")
    while True:
        print(f"wrote {plot_run_curves(directory)}", flush=True)
        if args.every is None:
            return 0
        try:
            time.sleep(args.every)
        except KeyboardInterrupt:
            return 0
