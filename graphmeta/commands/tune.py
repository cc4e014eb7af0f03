"""``graphmeta tune CONFIG.yaml``: a hyperparameter search over a run config (its ``tune:`` section)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "tune",
        help="search a run config's hyperparameters with Optuna (its tune: section)",
        description="Run the Optuna study of a run config's tune: section (see examples/configs/*-tune.yaml): "
                    "each trial meta-trains the config with settings drawn from tune.space, once per seed, "
                    "and is scored by its validation loss (accuracy for classification cards); pruned trials "
                    "stop early. The study lives in runs/<name>/ (name: tune.study_name, train.name or the "
                    "config file's name): study.journal (Optuna's storage), trials/<n>/seed-<s>/ (the runs), "
                    "trials.csv, best.yaml (runnable: graphmeta train best.yaml) and figures/. Running the "
                    "same command again resumes the study; so does starting it in more terminals, as workers "
                    "on one study. A worker killed mid-trial leaves that trial failed, and the study runs "
                    "another in its place.",
    )
    parser.add_argument("config", type=Path, help="run config with a tune: section (.yaml)")
    parser.add_argument("--workers", type=int, default=1, metavar="N",
                        help="worker processes on the study, this one included (default 1)")
    parser.add_argument("--n-trials", type=int, metavar="N",
                        help="trials to finish in all, over every worker and resume (default: tune.n_trials)")
    parser.add_argument("--timeout", type=float, metavar="SECONDS",
                        help="each worker starts no trial after this long (default: tune.timeout)")
    parser.add_argument("--storage", metavar="URL",
                        help="an Optuna storage URL, e.g. sqlite:///study.db (default: tune.storage, else a "
                             "journal file in the study's folder)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set tune.strategy=random --set train.steps=200 "
                             "(repeatable; values are read as YAML)")
    parser.add_argument("--top", type=int, default=10, metavar="N", help="trials shown in the printed table")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)  # a process --workers started
    return parser


def run(args: argparse.Namespace) -> int:
    from ..train import load_config
    from ..tune import tune
    from ..tune.results import format_trials

    config = load_config(args.config, args.overrides)
    if config.train.name is None:
        config = config.with_values({"train.name": args.config.stem})
    result = tune(config, n_trials=args.n_trials, timeout=args.timeout, workers=args.workers, storage=args.storage,
                  results=not args.worker)
    if args.worker:
        return 0
    print()
    print(format_trials(result.trials, result.study.direction.name.lower(), args.top))
    folder = result.folder
    if result.best_config is not None:
        print(f"\nbest configuration: {folder / 'best.yaml'} (graphmeta train {folder / 'best.yaml'})")
    print(f"trials: {folder / 'trials.csv'}; figures: {', '.join(path.name for path in result.figures) or 'none yet'} "
          f"in {folder / 'figures'}")
    return 0
