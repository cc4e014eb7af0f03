"""A checkpoint records its model's task graph; a run is rebuilt on its recorded graph.yaml."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import yaml

import graphmeta as gm
from graphmeta.families import dataframe
from graphmeta.taskgraph.comparison import graph_fingerprint
from graphmeta.train.checkpoint import load_checkpoint


def test_a_checkpoint_records_the_fingerprint_of_its_graph(make_trainer, family):
    trainer = make_trainer()
    trainer.save()
    state = load_checkpoint(trainer.run.last)
    assert state["graph_fingerprint"] == graph_fingerprint(family.graph.to_dict())
    assert gm.TaskGraph.from_dict(state["graph"]) == family.graph


def test_the_fingerprint_is_of_the_decomposition_not_its_name_or_order(family):
    renamed = {**family.graph.to_dict(), "name": "another name"}
    reordered = {**renamed, "dependencies": list(reversed(renamed["dependencies"]))}
    assert graph_fingerprint(reordered) == graph_fingerprint(family.graph.to_dict())
    assert graph_fingerprint(gm.load_family("compositional-chain", num_nodes=4).graph.to_dict()) != \
        graph_fingerprint(family.graph.to_dict())


def test_a_checkpoint_of_another_model_lists_every_setting_and_the_graph_difference(make_trainer, tmp_path):
    trainer = make_trainer()
    trainer.save()
    bigger = gm.load_family("compositional-chain", num_nodes=4)
    model = gm.GraphMetaLearner(bigger.graph, inner_steps=2, inner_lr=0.2, message_passing=False,
                                message_channels=8, message_rounds=1)
    other = gm.Trainer(model, bigger, run_dir=str(tmp_path / "other"), progress=False)
    with pytest.raises(gm.CheckpointError) as error:
        other.load(trainer.run.last)
    message = str(error.value)
    assert "model.inner_lr: 0.1 -> 0.2" in message and "model.inner_steps: 1 -> 2" in message
    assert "nodes only in this model's: ['n3']" in message
    assert "edges only in this model's: [('n2', 'n3')]" in message
    assert "\n" not in message


def test_a_checkpoint_of_another_graph_with_the_same_settings_names_the_graph(make_trainer, tmp_path):
    trainer = make_trainer()
    trainer.save()
    bigger = gm.load_family("compositional-chain", num_nodes=4)
    model = gm.GraphMetaLearner(bigger.graph, inner_steps=1, inner_lr=0.1, message_passing=False,
                                message_channels=8, message_rounds=1)
    other = gm.Trainer(model, bigger, run_dir=str(tmp_path / "other"), progress=False)
    with pytest.raises(gm.CheckpointError, match=r"another model than this one: task graph \(nodes only in this "
                                                 r"model's: \['n3'\]"):
        other.load(trainer.run.last)


# ------------------------------------------------------------ a graph learned from a table
def _table(path) -> str:
    rng = np.random.default_rng(0)
    frames = []
    for site in range(6):
        dose = rng.normal(10.0, 2.0, 40)
        frames.append(pd.DataFrame({"site": f"s{site}", "dose": dose,
                                    "response": 0.5 * dose + site + rng.normal(0.0, 0.1, 40),
                                    "age": rng.normal(50.0, 10.0, 40)}))
    pd.concat(frames, ignore_index=True).to_csv(path, index=False)
    return str(path)


def _table_config(tmp_path) -> dict:
    return {"family": {"data": _table(tmp_path / "sites.csv"), "task_column": "site", "test_tasks": ["s5"],
                       "val_tasks": ["s4"]},
            "model": {"inner_steps": 1, "inner_lr": 0.1, "message_passing": False},
            "train": {"steps": 4, "meta_batch_size": 2, "shots": 3, "query_shots": 5, "val_every": 2,
                      "checkpoint_every": 2, "val_tasks": 2, "run_dir": str(tmp_path / "runs"), "name": "table",
                      "progress": False},
            "evaluate": {"num_tasks": 2, "scratch_steps": 1, "ablation": False}}


@pytest.fixture
def learned_run(tmp_path, monkeypatch):
    """A run on a table whose graph was learned, then a structure search that learns no edge at all
    (another pgmpy version, another search): the graph the run's config would learn now differs."""
    trainer = gm.Trainer.from_config(_table_config(tmp_path))
    trainer.fit()
    assert trainer.model.graph.edges, "the learned graph has edges"
    monkeypatch.setattr(dataframe.DataFrameFamily, "_learned_edges", lambda family, rows, nodes: [])
    (tmp_path / "new").mkdir()
    assert not gm.Trainer.from_config(_table_config(tmp_path / "new")).model.graph.edges
    return trainer


def test_from_run_rebuilds_a_learned_graph_from_graph_yaml(learned_run):
    try:
        loaded, refusal = gm.Trainer.from_run(learned_run.run.path), None
    except gm.CheckpointError as error:  # the graph learned again is not the checkpoints' graph
        loaded, refusal = None, str(error)
    assert refusal is None, refusal
    assert loaded.model.graph == learned_run.model.graph
    assert loaded.family.graph == learned_run.model.graph
    assert torch.equal(next(iter(loaded.model.state_dict().values())),
                       next(iter(learned_run.model.state_dict().values())))


def test_a_resumed_run_keeps_its_recorded_graph_and_its_config(learned_run, tmp_path):
    resumed = gm.Trainer.from_config({**_table_config(tmp_path), "train": {**_table_config(tmp_path)["train"],
                                                                            "steps": 6}})
    resumed.fit(resume=True, allow_changes=True)
    assert resumed.model.graph == learned_run.model.graph and resumed.step == 6
    assert yaml.safe_load(resumed.run.config.read_text())["family"].get("graph") is None


def test_a_family_that_now_builds_another_graph_is_refused_naming_the_difference(tmp_path):
    config = {"family": {"name": "compositional-chain", "num_nodes": 3},
              "model": {"inner_steps": 1, "inner_lr": 0.1, "message_passing": False},
              "train": {"steps": 2, "meta_batch_size": 2, "shots": 3, "query_shots": 5, "val_every": 2,
                        "val_tasks": 2, "run_dir": str(tmp_path), "name": "chain", "progress": False}}
    trainer = gm.Trainer.from_config(config)
    trainer.fit()
    recorded = gm.TaskGraph.load(trainer.run.graph).to_dict()
    recorded["dependencies"] = recorded["dependencies"][:-1]  # the card gave one edge less when the run trained
    trainer.run.graph.write_text(yaml.safe_dump(recorded))
    with pytest.raises(gm.CheckpointError, match=r"now builds another task graph .*edges only in the family's: "
                                                 r"\[\('n1', 'n2'\)\]"):
        gm.Trainer.from_run(trainer.run.path)
