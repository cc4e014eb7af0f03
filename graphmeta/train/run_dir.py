"""`RunDirectory`: where a run keeps its config, metrics, checkpoints, figures and summary.

::

    runs/<name>/
        config.yaml            the resolved run config (every default filled in)
        graph.yaml             the task graph
        metrics.jsonl          one JSON record per line: {"step", "split", ...}
        checkpoints/last.pt    the latest state (resume from here)
        checkpoints/best.pt    the state with the lowest validation loss
        figures/*.png          training curves, task graphs coloured by per-node metrics
        evaluation-<split>-<k>steps.json   an evaluation with k adaptation steps
        summary.json           {"training": {...}, "evaluation": {...}, "config_changes": [...]}
        .writer.lock           held by the process writing the run (.run_lock): one writer at a time
        tensorboard/           event files: scalars, hyperparameters, figures (train.loggers, see .loggers)
        ablation/              the same layout: the run's configuration without message passing
        monolithic/            the same layout: the monolithic baseline (a graph with latent subtasks)
        supervised/            the same layout: the graph with its latent subtasks labelled, a reference
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from ..taskgraph import TaskGraph
from .checkpoint import atomic_write_text, storage_error
from .loggers import Logger, flat_hyperparameters, open_loggers, scalars_of


class RunDirectory:
    """The files of one run under ``path``; nothing is created before it is written.

    What the run logs also goes to the experiment trackers its ``config.yaml`` names in
    ``train.loggers`` (by default TensorBoard when installed; see :mod:`.loggers`), opened at the
    first record and closed by :meth:`close`.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.config = self.path / "config.yaml"
        self.graph = self.path / "graph.yaml"
        self.metrics = self.path / "metrics.jsonl"
        self.checkpoints = self.path / "checkpoints"
        self.last = self.checkpoints / "last.pt"
        self.best = self.checkpoints / "best.pt"
        self.figures = self.path / "figures"
        self.summary = self.path / "summary.json"
        self.ablation = self.path / "ablation"
        self.monolithic = self.path / "monolithic"
        self.supervised = self.path / "supervised"
        self._loggers: list[Logger] | None = None

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def evaluation(self, split: str, adapt_steps: int) -> Path:
        """The results of evaluating on ``split`` with ``adapt_steps`` adaptation steps: one file
        per number of steps, so evaluating with other steps keeps the earlier results."""
        return self.path / f"evaluation-{split}-{adapt_steps}step{'' if adapt_steps == 1 else 's'}.json"

    def write_config(self, config: Mapping[str, Any]) -> Path:
        return atomic_write_text(self.config, yaml.safe_dump(_plain(config), sort_keys=False))

    def write_graph(self, graph: TaskGraph) -> Path:
        """Write ``graph.yaml`` atomically (:meth:`TaskGraph.save` writes in place)."""
        return atomic_write_text(self.graph, yaml.safe_dump(_plain(graph.to_dict()), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        """The mapping in ``config.yaml`` as written (unchecked; :func:`~graphmeta.train.config.load_run_config`
        checks it), ``{}`` when there is none."""
        if not self.config.is_file():
            return {}
        return yaml.safe_load(self.config.read_text()) or {}

    def write_json(self, path: str | Path, data: Mapping[str, Any]) -> Path:
        return atomic_write_text(path, json.dumps(_plain(data), indent=2) + "\n")

    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (with ``step`` and ``split``) to ``metrics.jsonl``, and its numbers
        (:func:`~.loggers.scalars_of`) to the run's loggers. An append the system refuses (a full
        disk) is a :class:`~graphmeta.errors.RunStorageError`; the records before it stay readable."""
        line = json.dumps(_plain(record), allow_nan=False) + "\n"
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with self.metrics.open("a") as file:
                file.write(line)
                file.flush()
                os.fsync(file.fileno())
        except OSError as error:
            raise storage_error(self.metrics, error, "its earlier records are intact (a resumed run drops the cut "
                                "last one)") from error
        scalars = scalars_of(record)
        for logger in self._open_loggers():
            logger.log_scalars(scalars, record["step"])

    def log_figures(self, paths: list[Path]) -> None:
        """Send the pictures ``paths`` (drawn from this run) to the run's loggers, at its last logged step."""
        step = max((record["step"] for record in self.read_metrics()), default=0)
        for logger in self._open_loggers():
            for path in paths:
                logger.log_figure(path, step)

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl``; a line that is no record (the torn last line of a killed
        run, a damaged one) is skipped, and a resumed run rewrites the file without it (:meth:`truncate_metrics`)."""
        if not self.metrics.is_file():
            return []
        records = []
        for line in self.metrics.read_bytes().splitlines():
            try:
                record = json.loads(line.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError):
                continue
            if isinstance(record, dict) and isinstance(record.get("step"), int):
                records.append(record)
        return records

    def truncate_metrics(self, step: int) -> None:
        """Keep only records up to ``step``: on resume, the resumed run rewrites the rest."""
        kept = [record for record in self.read_metrics() if record["step"] <= step]
        atomic_write_text(self.metrics, "".join(json.dumps(record) + "\n" for record in kept))

    def read_summary(self) -> dict[str, Any]:
        """The sections of ``summary.json`` (``{}`` before one is written)."""
        return json.loads(self.summary.read_text()) if self.summary.is_file() else {}

    def update_summary(self, section: str, values: Any) -> Path:
        """Set ``summary.json[section]`` to ``values``, keeping the other sections."""
        return self.write_json(self.summary, {**self.read_summary(), section: values})

    def close(self) -> None:
        """Close the loggers (the next record opens them again)."""
        for logger in self._loggers or []:
            logger.close()
        self._loggers = None

    def _open_loggers(self) -> list[Logger]:
        """The loggers of ``train.loggers`` in ``config.yaml``, opened on first use with the run's
        hyperparameters."""
        if self._loggers is None:
            config = self.read_config()
            self._loggers = open_loggers((config.get("train") or {}).get("loggers"), self.path)
            for logger in self._loggers if config else []:
                logger.log_hyperparameters(flat_hyperparameters(config))
        return self._loggers


def as_written(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` as it reads back from ``config.yaml`` (tuples as lists, non-finite floats as
    ``None``), so a config in memory compares equal to the file written from it."""
    return yaml.safe_load(yaml.safe_dump(_plain(config), sort_keys=False))


def _plain(value: Any) -> Any:
    """``value`` with tuples as lists and non-finite floats as ``None``, for YAML and strict JSON."""
    if isinstance(value, Mapping):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
