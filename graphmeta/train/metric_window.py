"""`MetricWindow`: the metrics of the units since the last log record of a run.

A record holds each metric's mean over the units that defined it,
``mean_k = sum_{u in window, m_k(u) defined} m_k(u) / #{u in window : m_k(u) defined}``:
NaN (the accuracy of regression nodes, a skipped update's loss) does not count, and a metric
no unit defined is left out.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


class MetricWindow:
    """The sums and counts of each metric since the last record, and how many meta-updates were skipped."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.skipped = 0

    def add(self, metrics: Mapping[str, float]) -> None:
        for key, value in metrics.items():
            if not math.isnan(value):
                self.sums[key] = self.sums.get(key, 0.0) + value
                self.counts[key] = self.counts.get(key, 0) + 1

    def take(self) -> dict[str, float]:
        """The means (and ``skipped``, when some were), and an empty window."""
        means: dict[str, Any] = {key: total / self.counts[key] for key, total in self.sums.items()}
        if self.skipped:
            means["skipped"] = self.skipped
        self.load_state_dict({"sums": {}, "counts": {}, "skipped": 0})
        return means

    def state_dict(self) -> dict[str, Any]:
        return {"sums": dict(self.sums), "counts": dict(self.counts), "skipped": self.skipped}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.sums = {key: float(value) for key, value in state["sums"].items()}
        self.counts = {key: int(value) for key, value in state["counts"].items()}
        self.skipped = int(state["skipped"])
