"""A tiny study: a 3-node regression chain, a few meta-training steps per run."""

from __future__ import annotations

import pytest
import yaml

TINY = {
    "family": {"name": "compositional-chain", "num_nodes": 3},
    "model": {"inner_steps": 1, "inner_lr": 0.1, "message_channels": 8, "message_rounds": 1},
    "train": {"steps": 8, "meta_batch_size": 4, "shots": 3, "query_shots": 5, "outer_lr": 0.01, "val_every": 4,
              "val_tasks": 4, "checkpoint_every": 4, "log_every": 4, "progress": False},
    "evaluate": {"num_tasks": 4, "scratch_steps": 2, "ablation": False},
    "tune": {"strategy": "random", "n_trials": 2, "space": {"model.inner_lr": {"low": 0.02, "high": 0.3, "log": True},
                                                             "train.schedule": ["constant", "cosine"]}},
}


@pytest.fixture
def tiny_config(tmp_path):
    """``tiny_config(**sections)``: the tiny study, sections updated, with runs under ``tmp_path/runs``."""

    def make(**sections) -> dict:
        config = {key: dict(value) for key, value in TINY.items()}
        config["train"]["run_dir"] = str(tmp_path / "runs")
        config["train"]["name"] = "study"
        for key, value in sections.items():
            config[key].update(value)
        return config

    return make


@pytest.fixture
def tiny_file(tmp_path, tiny_config):
    """``tiny_file(**sections)``: :func:`tiny_config` written to ``tmp_path/tiny-study.yaml``; its path."""

    def write(**sections) -> str:
        path = tmp_path / "tiny-study.yaml"
        path.write_text(yaml.safe_dump(tiny_config(**sections), sort_keys=False))
        return str(path)

    return write


@pytest.fixture
def study_folder(tmp_path):
    return tmp_path / "runs" / "study"
