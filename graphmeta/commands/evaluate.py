"""``graphmeta evaluate RUN_DIR``: evaluate a trained run (batch or online) against the baselines."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "evaluate",
        help="evaluate a run on held-out tasks against the baselines",
        description="Evaluate the run in RUN_DIR on held-out tasks: per-node and total query loss (and "
                    "accuracy for classification), mean ± 95% CI over tasks, without adaptation, after "
                    "adaptation, trained from scratch on the support set and, when the run uses message "
                    "passing, the same configuration trained without it (trained once into RUN_DIR/ablation); "
                    "with latent subtasks, one MLP from every input to the observed sinks, trained alike "
                    "(once, into RUN_DIR/monolithic), and where the family can label them, the graph trained "
                    "with them labelled (RUN_DIR/supervised). "
                    "Prints a table; writes RUN_DIR/evaluation-<split>-<k>steps.json (k: the adaptation "
                    "steps, so evaluations with other steps are kept) and figures.",
    )
    parser.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory, e.g. runs/sinusoid")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint to evaluate (default: best; an online run has only last)")
    parser.add_argument("--split", choices=("train", "val", "test"), help="tasks to evaluate on (default: test)")
    parser.add_argument("--num-tasks", type=int, help="number of tasks (default: the run config's)")
    parser.add_argument("--no-ablation", dest="ablation", action="store_false", default=None,
                        help="skip the run trained without message passing")
    parser.add_argument("--no-monolithic", dest="monolithic", action="store_false", default=None,
                        help="skip the monolithic MLP baseline of a graph with latent subtasks")
    parser.add_argument("--no-supervised", dest="supervised", action="store_false", default=None,
                        help="skip the reference trained with a graph's latent subtasks labelled")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override an evaluate key, e.g. --set adapt_steps=10 (repeatable)")
    parser.add_argument("--per-node", action="store_true", help="also print the per-node losses")
    parser.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="evaluate on N processes of this machine, each on its share of the tasks (the same "
                             "table): the shortcut for torchrun --standalone --nproc-per-node N -m graphmeta evaluate")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import ConfigError
    from ..train import OnlineMetaLearner, Trainer
    from ..train.config import load_run_config, parse_override
    from ..train.distributed import resolve_backend
    from ..train.figures import plot_run_figures
    from ..train.interrupts import reported_as
    from ..train.launch import run_on_processes

    if args.nproc > 1:
        train = load_run_config(args.run_dir).train
        return run_on_processes(args.nproc, run, argparse.Namespace(**{**vars(args), "nproc": 1}),
                                backend=resolve_backend(train.backend, train.device), what="evaluating")
    options: dict[str, Any] = {}
    for text in args.overrides:
        section, key, value = parse_override(text if "." in text.split("=", 1)[0] else f"evaluate.{text}")
        if section != "evaluate":
            raise ConfigError(f"graphmeta evaluate takes evaluate keys only, got --set {text}")
        options[key] = value
    flags = {"split": args.split, "num_tasks": args.num_tasks, "ablation": args.ablation, "monolithic": args.monolithic,
             "supervised": args.supervised}
    options.update({key: value for key, value in flags.items() if value is not None})
    online = load_run_config(args.run_dir).train.mode == "online"
    trainer = (OnlineMetaLearner if online else Trainer).from_run(args.run_dir, checkpoint=args.checkpoint)
    with reported_as(f"the evaluation of {trainer.run.path}", "no evaluation file was written"):
        report = trainer.evaluate(**options)
    if not trainer.parallel.is_writer:  # of several processes, rank 0 reports
        return 0
    plot_run_figures(trainer.run, report)
    print(report.table(per_node=args.per_node))
    print(f"\nwrote {trainer.run.evaluation(report.split, report.adapt_steps)} and "
          f"{trainer.run.figures}/graph-{report.split}-*.png")
    return 0
