"""``graphmeta train CONFIG.yaml``: meta-train a run from a YAML config, then evaluate it."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..train import RunConfig


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
    parser.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                        help="train once per seed (runs/<name>/seed-<s>/), evaluate each, and print one table: "
                             "mean ± 95%% CI over the seeds of each run's mean over tasks, and each seed's value")
    parser.add_argument("--nproc", type=int, default=1, metavar="N",
                        help="train (and evaluate) on N processes of this machine, each on its share of every "
                             "meta-batch: the shortcut for torchrun --standalone --nproc-per-node N -m graphmeta "
                             "train CONFIG (several machines: torchrun itself, see the README)")
    return parser


def run(args: argparse.Namespace) -> int:
    """Train (and evaluate); a run stopped by SIGINT or SIGTERM (under ``--nproc``, a second one
    kills its processes) prints how to resume it and exits with ``128 + signal``
    (:mod:`graphmeta.train.interrupts`); so does one whose files could not be written (a full
    disk), with status 2."""
    from ..errors import RunStorageError
    from ..train.interrupts import RunInterrupted
    from ..train.launch import ProcessesStopped

    try:
        return train(args)
    except (RunInterrupted, ProcessesStopped) as interrupted:
        print(f"{interrupted}. Resume with: {resume_command(args)}", file=sys.stderr)
        return interrupted.exit_status
    except RunStorageError as error:
        print(f"error: {error}. With space to write, resume with: {resume_command(args)}", file=sys.stderr)
        return 2


def resume_command(args: argparse.Namespace) -> str:
    """The command line that resumes the run(s) ``args`` started."""
    words = ["graphmeta", "train", str(args.config)]
    for override in args.overrides:
        words += ["--set", override]
    if args.seeds:
        words += ["--seeds", *map(str, args.seeds)]
    if args.nproc > 1:
        words += ["--nproc", str(args.nproc)]
    if not args.evaluate:
        words.append("--no-evaluate")
    return shlex.join([*words, "--resume"])


def train(args: argparse.Namespace) -> int:
    """What :func:`run` does until a signal stops it."""
    from ..train import OnlineMetaLearner, Trainer, load_config
    from ..train.distributed import DataParallelGroup, resolve_backend, restart_count
    from ..train.figures import plot_run_figures
    from ..train.interrupts import reported_as
    from ..train.launch import run_on_processes

    config = load_config(args.config, args.overrides)
    if args.seeds:
        return run_seeds(config.with_values({"train.name": config.train.name or args.config.stem}), args)
    if args.nproc > 1:  # a config that cannot be split is refused before any process starts
        DataParallelGroup(0, args.nproc).check_training(config.train.mode, config.train.meta_batch_size)
        return run_on_processes(args.nproc, train, argparse.Namespace(**{**vars(args), "nproc": 1}),
                                backend=resolve_backend(config.train.backend, config.train.device), what="training")
    if config.train.name is None:
        config = config.with_overrides([f"train.name={args.config.stem}"])
    online = config.train.mode == "online"
    trainer = (OnlineMetaLearner if online else Trainer).from_config(config)
    writer = trainer.parallel.is_writer  # of several processes, rank 0 reports
    resume = args.resume or restart_count() > 0  # torchrun restarted the run's processes: go on from last.pt
    if resume and writer and trainer.run.last.is_file():
        print(f"resuming {trainer.run.path}")
    summary = trainer.fit(resume=resume, allow_changes=args.allow_changes)
    if writer and online:
        print(f"trained {trainer.run.path} online on {summary['tasks']} tasks: query loss of arriving tasks "
              f"{summary['loss_first_window']:.4g} (first {summary['window']}) -> {summary['loss_last_window']:.4g} "
              f"(last {summary['window']})")
    elif writer:
        print(f"trained {trainer.run.path}: best validation loss {trainer.best_loss:.4g} at step {trainer.best_step}")
    with reported_as(f"the evaluation of {trainer.run.path}", "its training is complete and saved, its evaluation "
                     f"was not written: evaluate it with graphmeta evaluate {shlex.quote(str(trainer.run.path))}"):
        report = trainer.evaluate() if args.evaluate else None
    if not writer:
        return 0
    plot_run_figures(trainer.run, report)
    if report is not None:
        print()
        print(report.table(per_node=args.per_node))
    print(f"\nrun directory: {trainer.run.path} (metrics.jsonl, checkpoints/, figures/, summary.json)")
    return 0


def run_seeds(config: RunConfig, args: argparse.Namespace) -> int:
    """``--seeds``: one run per seed, one after another, then one table over them."""
    from ..errors import ConfigError
    from ..train.figures import plot_run_figures
    from ..tune.seeds import train_seeds

    if getattr(args, "nproc", 1) > 1:
        raise ConfigError("--seeds trains its runs one after another in this process: leave out --nproc")
    report = train_seeds(config, args.seeds, evaluate=args.evaluate, resume=args.resume,
                         allow_changes=args.allow_changes)
    for run, evaluation in zip(report.runs, report.evaluations or [None] * len(report.runs)):
        plot_run_figures(run, evaluation)
    print(report.table())
    print(f"\nrun directories: {', '.join(map(str, report.runs))}")
    return 0
