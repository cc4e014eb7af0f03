"""A tiny run config (a 3-node regression chain) for the command-line tests."""

from __future__ import annotations

import pytest
import yaml

TINY = {
    "family": {"name": "compositional-chain", "num_nodes": 3},
    "model": {"inner_steps": 1, "inner_lr": 0.1, "message_channels": 8, "message_rounds": 1},
    "train": {"steps": 12, "meta_batch_size": 4, "shots": 3, "query_shots": 5, "val_every": 4, "val_tasks": 6,
              "checkpoint_every": 4, "log_every": 2, "progress": False, "schedule": "cosine", "grad_clip": 1.0},
    "evaluate": {"num_tasks": 6, "scratch_steps": 5},
}


@pytest.fixture
def write_config(tmp_path):
    """``write_config(**sections)``: the tiny config, sections updated, written to ``tmp_path/tiny.yaml``;
    runs go to ``tmp_path/runs``."""

    def write(**sections) -> str:
        config = {key: dict(value) for key, value in TINY.items()}
        config["train"]["run_dir"] = str(tmp_path / "runs")
        for key, value in sections.items():
            config[key].update(value)
        path = tmp_path / "tiny.yaml"
        path.write_text(yaml.safe_dump(config))
        return str(path)

    return write
