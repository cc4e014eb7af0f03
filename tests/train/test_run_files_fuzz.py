"""Fuzzing what a run directory holds: every damaged file is the package's own error, never another.

Each kind of file a run writes (a checkpoint, ``config.yaml``, ``graph.yaml``, ``metrics.jsonl``)
is cut at random points and has random bytes overwritten, a few hundred times in all (seeded);
reading it back is either its content or a :class:`~graphmeta.errors.GraphMetaError` in one line.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import torch

import graphmeta as gm
from graphmeta.errors import RunStorageError
from graphmeta.train import RunDirectory
from graphmeta.train.checkpoint import load_checkpoint, save_checkpoint
from graphmeta.train.config import load_run_config
from tests.train.test_fault_injection import disk_full_after

DAMAGES = 60


def damaged_versions(data: bytes, seed: int) -> list[bytes]:
    """``DAMAGES`` damaged copies of ``data``: cut short, bytes overwritten, or both."""
    rng = random.Random(seed)
    versions = []
    for _ in range(DAMAGES):
        damaged = bytearray(data[:rng.randrange(len(data))] if rng.random() < 0.5 else data)
        for _ in range(rng.choice((0, 1, 4, 32)) if damaged else 0):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        versions.append(bytes(damaged))
    return versions


def read_all(path: Path, versions: list[bytes], read) -> int:
    """Write each version to ``path`` and ``read(path)``; the versions that raised (each a
    GraphMetaError in one line, else the test fails)."""
    refused = 0
    for data in versions:
        path.write_bytes(data)
        try:
            read(path)
        except gm.GraphMetaError as error:
            assert "\n" not in str(error), str(error)
            refused += 1
    return refused


def test_a_damaged_checkpoint_is_always_a_checkpoint_error(tmp_path):
    path = save_checkpoint({"step": 3, "model": {"w": torch.arange(6.0)}, "note": "x"}, tmp_path / "last.pt")
    assert read_all(path, damaged_versions(path.read_bytes(), 0), load_checkpoint) > DAMAGES // 2


@pytest.fixture(scope="module")
def run_files(tmp_path_factory) -> RunDirectory:
    """A trained tiny run: its config.yaml and graph.yaml, as the run loop wrote them."""
    run_dir = tmp_path_factory.mktemp("fuzz")
    config = {"family": {"name": "compositional-chain", "num_nodes": 3}, "model": {"inner_steps": 1},
              "train": {"steps": 1, "meta_batch_size": 2, "shots": 2, "query_shots": 2, "val_every": 1,
                        "val_tasks": 2, "run_dir": str(run_dir), "name": "run", "progress": False}}
    trainer = gm.Trainer.from_config(config)
    trainer.fit()
    return trainer.run


def test_a_damaged_run_config_is_always_a_graphmeta_error(run_files):
    original = run_files.config.read_bytes()
    try:
        read_all(run_files.config, damaged_versions(original, 1), lambda path: load_run_config(path.parent))
    finally:
        run_files.config.write_bytes(original)


def test_a_damaged_graph_file_is_always_a_graphmeta_error(run_files):
    original = run_files.graph.read_bytes()
    try:
        read_all(run_files.graph, damaged_versions(original, 2), gm.TaskGraph.load)
    finally:
        run_files.graph.write_bytes(original)


def test_damaged_metrics_keep_every_intact_record_and_a_resume_rewrites_them(tmp_path):
    run = RunDirectory(tmp_path)
    records = [{"step": step, "split": "train", "loss": step / 7} for step in range(1, 30)]
    for record in records:
        run.log(record)
    lines = run.metrics.read_bytes().splitlines()
    for data in damaged_versions(run.metrics.read_bytes(), 3):
        run.metrics.write_bytes(data)
        read = run.read_metrics()
        assert all(isinstance(record, dict) and isinstance(record.get("step"), int) for record in read)
        assert all(json.loads(line) in read for line in data.splitlines() if line in lines)
        run.truncate_metrics(20)  # what a resumed run does first
        assert all(json.loads(line)["step"] <= 20 for line in run.metrics.read_bytes().splitlines())


def test_graph_yaml_is_written_atomically_on_a_full_disk(tmp_path):
    run = RunDirectory(tmp_path)
    run.write_graph(gm.load_family("compositional-chain", num_nodes=2).graph)
    old = run.graph.read_bytes()
    bigger = gm.load_family("compositional-chain", num_nodes=40).graph
    with pytest.raises(RunStorageError, match="the previous graph.yaml is intact"), disk_full_after(len(old) + 100):
        run.write_graph(bigger)
    assert [path.name for path in tmp_path.iterdir()] == ["graph.yaml"] and run.graph.read_bytes() == old
    run.write_graph(bigger)
    assert gm.TaskGraph.load(run.graph) == bigger


def test_a_cut_last_metrics_line_is_repaired_on_resume(make_trainer, tmp_path):
    whole = make_trainer(run_dir=str(tmp_path / "whole"))
    whole.fit()
    killed = make_trainer(steps=8)
    killed.fit()
    with killed.run.metrics.open("ab") as file:  # killed while appending the record of step 10
        file.write(b'{"step": 10, "split": "train", "lo')
    resumed = make_trainer(steps=12)
    resumed.fit(resume=True, allow_changes=True)
    def steps(run):
        return [(record["split"], record["step"]) for record in map(json.loads, run.metrics.read_text().splitlines())]
    assert steps(resumed.run) == steps(whole.run)
