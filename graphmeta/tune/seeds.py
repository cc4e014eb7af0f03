"""Multi-run averaging: one configuration trained with several seeds, mean ± 95% CI over the runs.

``graphmeta train CONFIG --seeds 0 1 2`` (:func:`train_seeds`) trains ``CONFIG`` once per seed,
in ``train.run_dir/train.name/seed-<s>``, evaluates each run, and reports every number as

    mean ± t_{0.975, S-1} * s / sqrt(S)      over the S seeds,

where a seed's number is its run's total over the evaluation tasks (the mean query loss of
:class:`~graphmeta.train.EvaluationReport`) and ``s`` the standard deviation across seeds. This
interval is the spread of training itself (initialisation, task stream, validation tasks), which
the interval over the tasks of one run does not show; the same seed gives the same run, so
``--seeds 0 1 2`` run again resumes or repeats exactly. A study's trials average their seeds the
same way (:mod:`.objective`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from ..errors import ConfigError
from ..train import EvaluationReport, OnlineMetaLearner, RunConfig, Trainer
from ..train.evaluation import Estimate
from ..train.run_loop import RunLoop


def over_seeds(values: Sequence[float]) -> Estimate:
    """The mean of ``values`` (one per seed) and its 95% Student-t interval (NaN below two values)."""
    return Estimate.over_tasks(torch.tensor(list(values), dtype=torch.float64))


def seed_config(config: RunConfig, seed: int, run_dir: str | Path, name: str) -> RunConfig:
    """``config`` run with ``seed``, in ``run_dir/name``."""
    return config.with_values({"train.seed": seed, "train.run_dir": str(run_dir), "train.name": name})


def learner_for(config: RunConfig) -> RunLoop:
    """The learner of ``config``: a :class:`Trainer`, or an :class:`OnlineMetaLearner` for ``train.mode: online``."""
    return (OnlineMetaLearner if config.train.mode == "online" else Trainer).from_config(config)


@dataclass(frozen=True)
class SeedsReport:
    """The runs of one configuration with ``seeds``: their directories, best validation losses
    (batch runs) and evaluations (``None`` when not evaluated)."""

    name: str
    seeds: list[int]
    runs: list[Path]
    validation: list[float] | None
    evaluations: list[EvaluationReport] | None

    def rows(self) -> dict[str, dict[str, list[float]]]:
        """``{row label: {"query loss": [per seed], "accuracy": [per seed]}}``; accuracy where defined."""
        rows: dict[str, dict[str, list[float]]] = {}
        if self.validation is not None:
            rows["best validation loss"] = {"query loss": list(self.validation)}
        for report in self.evaluations or []:
            for method, result in report.methods.items():
                row = rows.setdefault(report.label(method), {"query loss": []})
                row["query loss"].append(result.total_loss().mean)
                if report.has_accuracy:
                    row.setdefault("accuracy", []).append(result.total_accuracy().mean)
        return rows

    def table(self) -> str:
        """One row per method: mean ± 95% CI over the seeds, then each seed's value."""
        frame = []
        for label, columns in self.rows().items():
            row: dict[str, Any] = {"": label, "query loss": str(over_seeds(columns["query loss"]))}
            if "accuracy" in columns:
                row["accuracy"] = str(over_seeds(columns["accuracy"]))
            row.update({f"seed {seed}": f"{value:.4f}" for seed, value in zip(self.seeds, columns["query loss"])})
            frame.append(row)
        first = self.evaluations[0] if self.evaluations else None
        tasks = f", {first.num_tasks} {first.split} tasks, {first.shots} shots" if first else ""
        title = (f"{self.name}: {len(self.seeds)} seeds ({', '.join(map(str, self.seeds))}){tasks}; "
                 "mean ± 95% CI over seeds of each run's mean over tasks")
        return title + "\n" + pd.DataFrame(frame).fillna("").to_string(index=False, justify="left")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "seeds": list(self.seeds), "runs": [str(run) for run in self.runs],
                "rows": {label: {column: {"values": values, **over_seeds(values).to_dict()}
                                 for column, values in columns.items()} for label, columns in self.rows().items()}}


def train_seeds(config: RunConfig, seeds: Sequence[int], evaluate: bool = True, resume: bool = False,
                allow_changes: bool = False) -> SeedsReport:
    """Train ``config`` once per seed, in ``train.run_dir/train.name/seed-<s>``, and evaluate each
    run (``evaluate:`` section); ``resume`` and ``allow_changes`` as in :meth:`RunLoop.fit`."""
    if not seeds:
        raise ConfigError("train_seeds needs one seed or more, e.g. --seeds 0 1 2")
    name = config.train.name or config.family["name"]
    folder = Path(config.train.run_dir) / name
    runs, validation, evaluations = [], [], []
    for seed in seeds:
        learner = learner_for(seed_config(config, seed, folder, f"seed-{seed}"))
        learner.fit(resume=resume, allow_changes=allow_changes)
        runs.append(learner.run.path)
        validation.append(learner.best_loss)
        if evaluate:
            evaluations.append(learner.evaluate())
    return SeedsReport(name, list(seeds), runs, validation if learner.validates else None,
                       evaluations if evaluate else None)
