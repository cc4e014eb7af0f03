"""``graphmeta train CONFIG.yaml``: meta-train a run from a YAML config, then evaluate it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "train",
        help="meta-train from a YAML config (and evaluate against the baselines)",
        description="Meta-train a graph meta-learner as a YAML run config says (sections family, model, "
                    "train, evaluate, online; see examples/configs/): in batches, or online on a stream of "
                    "tasks with train.mode: online; writing runs/<name>/ (name: train.name, "
                    "default the config file's name): config, metrics.jsonl, checkpoints, figures, "
                    "summary. Then evaluate on held-out tasks against the baselines and print the table.",
    )
    parser.add_argument("config", type=Path, help="run config (.yaml)")
    parser.add_argument("--resume", action="store_true",
                        help="continue the run from its checkpoints/last.pt (exactly where it stopped), under "
                             "the run's own config: a CONFIG or --set that changes it is refused, listing the changes")
    parser.add_argument("--allow-changes", action="store_true",
                        help="with --resume, accept a config that differs from the run's own; the run's "
                             "config.yaml takes the new values and summary.json records what changed and when")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set train.steps=200 --set model.inner_lr=0.1 "
                             "(repeatable; values are read as YAML)")
    parser.add_argument("--no-evaluate", dest="evaluate", action="store_false",
                        help="only train; evaluate later with `graphmeta evaluate RUN_DIR`")
    parser.add_argument("--per-node", action="store_true", help="also print the per-node losses")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..train import OnlineMetaLearner, Trainer, load_config
    from ..train.figures import plot_run_figures

    config = load_config(args.config, args.overrides)
    if config.train.name is None:
        config = config.with_overrides([f"train.name={args.config.stem}"])
    online = config.train.mode == "online"
    trainer = (OnlineMetaLearner if online else Trainer).from_config(config)
    if args.resume and trainer.run.last.is_file():
        print(f"resuming {trainer.run.path}")
    summary = trainer.fit(resume=args.resume, allow_changes=args.allow_changes)
    if online:
        print(f"trained {trainer.run.path} online on {summary['tasks']} tasks: query loss of arriving tasks "
              f"{summary['loss_first_window']:.4g} (first {summary['window']}) -> {summary['loss_last_window']:.4g} "
              f"(last {summary['window']})")
    else:
        print(f"trained {trainer.run.path}: best validation loss {trainer.best_loss:.4g} at step {trainer.best_step}")
    report = trainer.evaluate() if args.evaluate else None
    plot_run_figures(trainer.run, report)
    if report is not None:
        print()
        print(report.table(per_node=args.per_node))
    print(f"\nrun directory: {trainer.run.path} (metrics.jsonl, checkpoints/, figures/, summary.json)")
    return 0
