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
        tensorboard/           scalars, when TensorBoard is installed
        ablation/              the same layout: the run's configuration without message passing
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .checkpoint import atomic_write_text


class RunDirectory:
    """The files of one run under ``path``; nothing is created before it is written."""

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
        self._tensorboard: Any = None

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def evaluation(self, split: str, adapt_steps: int) -> Path:
        """The results of evaluating on ``split`` with ``adapt_steps`` adaptation steps: one file
        per number of steps, so evaluating with other steps keeps the earlier results."""
        return self.path / f"evaluation-{split}-{adapt_steps}step{'' if adapt_steps == 1 else 's'}.json"

    def write_config(self, config: Mapping[str, Any]) -> Path:
        return atomic_write_text(self.config, yaml.safe_dump(_plain(config), sort_keys=False))

    def read_config(self) -> dict[str, Any]:
        """The mapping in ``config.yaml`` as written (unchecked; :func:`~graphmeta.train.config.load_run_config`
        checks it), ``{}`` when there is none."""
        if not self.config.is_file():
            return {}
        return yaml.safe_load(self.config.read_text()) or {}

    def write_json(self, path: str | Path, data: Mapping[str, Any]) -> Path:
        return atomic_write_text(path, json.dumps(_plain(data), indent=2) + "\n")

    def log(self, record: Mapping[str, Any]) -> None:
        """Append ``record`` (with ``step`` and ``split``) to ``metrics.jsonl``, and its numbers to TensorBoard."""
        self.path.mkdir(parents=True, exist_ok=True)
        with self.metrics.open("a") as file:
            file.write(json.dumps(_plain(record), allow_nan=False) + "\n")
            file.flush()
            os.fsync(file.fileno())
        writer = self._tensorboard_writer()
        if writer is not None:
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "step":
                    writer.add_scalar(f"{record['split']}/{key}", value, record["step"])
            writer.flush()

    def read_metrics(self) -> list[dict[str, Any]]:
        """The records of ``metrics.jsonl``; a torn last line (a killed run) is skipped."""
        if not self.metrics.is_file():
            return []
        records = []
        for line in self.metrics.read_text().splitlines():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue
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
        if self._tensorboard:
            self._tensorboard.close()
            self._tensorboard = None

    def _tensorboard_writer(self) -> Any:
        if self._tensorboard is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                self._tensorboard = False
            else:
                self._tensorboard = SummaryWriter(str(self.path / "tensorboard"))
        return self._tensorboard or None


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
