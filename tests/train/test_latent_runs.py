"""Runs with latent subtasks end to end: `graphmeta train` (training, evaluation), the Trainer,
a tuning study and a 2-process run, on a 4-node compositional DAG whose non-sinks are latent.

Latent nodes have no labels, so every loss, validation figure, trial value and evaluation is that
of the observed sinks alone, and the latent nodes' learners learn only through their children.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch
import yaml
from optuna.trial import TrialState

import graphmeta as gm
from graphmeta.cli import main
from graphmeta.train import RunDirectory, load_config
from tests.train.test_distributed import TORCHRUN_VARIABLES, model_state, run_processes

CARD = {"name": "compositional-dag-latent", "num_nodes": 4}
CONFIG = {
    "family": CARD,
    "model": {"inner_steps": 1, "inner_lr": 0.1, "message_passing": True, "message_channels": 8, "message_rounds": 1},
    "train": {"steps": 8, "meta_batch_size": 4, "shots": 3, "query_shots": 5, "outer_lr": 0.01, "val_every": 4,
              "val_tasks": 4, "checkpoint_every": 4, "log_every": 2, "progress": False, "name": "latent"},
    "evaluate": {"num_tasks": 4, "scratch_steps": 2, "ablation": False},
}


@pytest.fixture(scope="module")
def latent_and_observed() -> tuple[list[str], list[str]]:
    """The card's latent nodes and its observed ones (the sinks), both present."""
    graph = gm.load_family(CARD["name"], num_nodes=CARD["num_nodes"]).graph
    latent = graph.latent
    observed = [name for name in graph.names if name not in latent]
    assert latent and observed
    return latent, observed


def write_config(folder: Path, **sections: dict) -> Path:
    """:data:`CONFIG`, sections updated, runs under ``folder/runs``, written to ``folder/latent.yaml``."""
    config = {key: dict(value) for key, value in CONFIG.items()}
    config["train"]["run_dir"] = str(folder / "runs")
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    path = folder / "latent.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def test_graphmeta_train_scores_only_the_observed_nodes(tmp_path, capsys, latent_and_observed):
    latent, observed = latent_and_observed
    assert main(["train", str(write_config(tmp_path))]) == 0
    assert "after adaptation" in capsys.readouterr().out
    run = RunDirectory(tmp_path / "runs" / "latent")
    assert run.read_summary()["training"]["status"] == "completed"
    records = run.read_metrics()
    train = [record for record in records if record["split"] == "train"]
    assert [record["step"] for record in train] == [2, 4, 6, 8] and all(math.isfinite(r["loss"]) for r in train)
    for record in (record for record in records if record["split"] == "val"):
        assert all(record["per_node"][name] is None for name in latent)
        assert all(math.isfinite(record["per_node"][name]) for name in observed)
    methods = json.loads((run.path / "evaluation-test-1step.json").read_text())["methods"]
    # the monolithic MLP baseline and the reference with the hidden nodes labelled, trained alike, score the sinks
    for method in ("adapted", "monolithic", "supervised"):
        per_node = methods[method]["per_node"]
        assert all(per_node[name]["loss"]["tasks"] == 0 for name in latent)  # nothing to score: no labels
        assert all(per_node[name]["loss"]["tasks"] == 4 and math.isfinite(per_node[name]["loss"]["mean"])
                   for name in observed)
        assert all(math.isfinite(per_node[name]["nll"]["mean"]) for name in observed)
    for beside in (run.monolithic, run.supervised):
        assert RunDirectory(beside).read_summary()["training"]["status"] == "completed"
    assert methods["supervised"]["loss"]["mean"] != methods["adapted"]["loss"]["mean"]


def test_the_trainer_moves_the_latent_learners_through_their_children(tmp_path, latent_and_observed):
    latent, _ = latent_and_observed
    trainer = gm.Trainer.from_config(load_config(write_config(tmp_path), ["train.steps=4", "train.val_every=4"]))
    bank = trainer.model.banks[0]
    rows = [bank.names.index(name) for name in latent]
    prefix = "banks.banks.0.theta."
    before = {prefix + key: value[rows].detach().clone() for key, value in bank.theta.items()}
    assert trainer.fit()["status"] == "completed"
    last = model_state(trainer.run.path)  # the weights of the last step (the trainer ends holding the best)
    assert {key for key, value in before.items() if not torch.equal(last[key][rows], value)} == set(before)


def test_a_study_tunes_a_family_with_latent_nodes(tmp_path, latent_and_observed):
    config = yaml.safe_load(write_config(tmp_path, train={"steps": 4}).read_text())
    config["tune"] = {"strategy": "random", "n_trials": 2,
                      "space": {"model.inner_lr": {"low": 0.02, "high": 0.3, "log": True}}}
    result = gm.tune(config, progress=False, results=False)
    trials = result.study.trials
    assert [trial.state for trial in trials] == [TrialState.COMPLETE] * 2
    assert all(math.isfinite(trial.value) for trial in trials)  # a latent node's missing loss never enters it
    assert len({trial.params["model.inner_lr"] for trial in trials}) == 2
    for trial in ("0000", "0001"):  # each trained the graph with its latent nodes
        assert gm.TaskGraph.load(result.folder / "trials" / trial / "seed-0" / "graph.yaml").latent == \
            latent_and_observed[0]


@pytest.fixture
def one_process(monkeypatch):
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.slow  # two processes, 17-23 s; the two-process run itself is tested in test_distributed.py
def test_two_processes_train_a_family_with_latent_nodes_as_one_does(tmp_path, one_process):
    write_config(tmp_path)
    run_processes(sys.executable, "-m", "graphmeta", "train", "latent.yaml", "--nproc", "2", "--no-evaluate",
                  "--set", "train.name=two", cwd=tmp_path)
    alone = gm.Trainer.from_config(load_config(tmp_path / "latent.yaml", ["train.name=one"]))
    start = {name: value.detach().clone() for name, value in alone.model.state_dict().items()}
    alone.fit()
    one, two = model_state(alone.run.path), model_state(tmp_path / "runs" / "two")
    assert one.keys() == two.keys()
    assert json.loads((tmp_path / "runs" / "two" / "summary.json").read_text())["training"]["world_size"] == 2
    for name in (name for name in one if not name.startswith("input_statistics.")):
        # every tensor moves by ~1e-2 over the run, so a gradient left out of the all-reduce shows at that size;
        # atol: Adam's normalised step turns an entry near 0 of a latent node's gradient (which comes through
        # its children only, and small), summed in another order, into a move of a few 1e-6
        assert float((one[name] - start[name]).abs().max()) > 1e-3, f"{name} did not train"
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5, msg=lambda text: f"{name}: {text}")


def test_the_supervised_reference_is_scored_on_the_same_tasks_with_the_hidden_nodes_labelled():
    from graphmeta.train.episode_sampler import EpisodeSampler
    from graphmeta.train.evaluation import supervised_family

    family = gm.load_family(CARD["name"], num_nodes=CARD["num_nodes"])
    labelled = supervised_family(family)
    assert labelled is not None and not labelled.graph.latent
    assert supervised_family(labelled) is None  # nothing hidden: no reference to train
    tasks, same = (EpisodeSampler(f, 4, 3, 5, seed=7).fixed("test", 6) for f in (family, labelled))
    observed = [family.graph.names.index(name) for name in family.graph.names if name not in family.graph.latent]
    for side in ("support", "query"):
        hidden, shown = getattr(tasks, side), getattr(same, side)
        torch.testing.assert_close(hidden.features, shown.features)
        torch.testing.assert_close(hidden.observed[..., observed], shown.observed[..., observed])
        assert shown.observed.all() and not hidden.observed.all()
