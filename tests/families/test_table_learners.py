"""``DataFrameFamily(learner=...)``: ``auto`` (the default) picks each node's learner from its column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import graphmeta as gm
from graphmeta.errors import GraphError


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"site": np.repeat(list("abcdefgh"), 10), "x": rng.normal(size=80),
                         "f": rng.normal(size=80), "c": rng.choice(["p", "q"], 80),
                         "d": rng.choice(["u", "v"], 80), "e": rng.choice(["s", "t"], 80),
                         "y": rng.normal(size=80)})


DEPENDENCIES = {"dependencies": [["c", "d"], ["x", "e"], ["x", "y"], ["c", "y"]]}


def learners(family: gm.DataFrameFamily) -> dict[str, str]:
    return {name: family.graph.subtask(name).learner.type for name in family.graph.names}


def test_auto_gives_numbers_linear_and_classes_a_table_only_where_every_input_is_a_class(table):
    family = gm.DataFrameFamily(table, "site", graph=DEPENDENCIES, columns=("c", "d", "e", "x", "y"))
    assert family.learner == "auto" and family.config["learner"] == "auto"
    assert learners(family) == {"c": "table", "d": "table", "e": "mlp", "x": "linear", "y": "linear"}
    with_features = gm.DataFrameFamily(table, "site", graph={"dependencies": [["c", "d"]]}, features={"d": ["f"]})
    assert learners(with_features) == {"c": "table", "d": "mlp"}


def test_an_explicit_learner_and_the_graphs_own_learners_win(table):
    assert set(learners(gm.DataFrameFamily(table, "site", graph=DEPENDENCIES, learner="mlp")).values()) == {"mlp"}
    given = {**DEPENDENCIES, "subtasks": {"y": {"learner": "mlp"}}}
    assert learners(gm.DataFrameFamily(table, "site", graph=given))["y"] == "mlp"


def test_a_misspelt_learner_names_the_closest_choice_auto_included(table):
    with pytest.raises(GraphError, match="did you mean 'auto'"):
        gm.DataFrameFamily(table, "site", graph=DEPENDENCIES, learner="atuo")
    with pytest.raises(GraphError, match="did you mean 'linear'"):
        gm.DataFrameFamily(table, "site", graph=DEPENDENCIES, learner="linaer")


def test_a_run_validates_a_linear_node_on_its_own_loss_not_the_tables_squared_error(table, tmp_path):
    """Evaluation tables compare regression nodes on squared error; a run validates (chooses its best
    checkpoint, draws its curves) on each node's own loss, a Linear node's predictive NLL, as it trains."""
    family = gm.DataFrameFamily(table, "site", graph={"dependencies": [["x", "y"]]}, columns=("x", "y"),
                                val_tasks=["g", "h"], test_tasks=["f"])
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph)
    trainer = gm.Trainer(model, family, steps=2, shots=5, val_tasks=4, run_dir=str(tmp_path), progress=False)
    trainer.fit()
    validated = trainer.validate()["per_node"]
    tasks = trainer.sampler.fixed("val", 4)
    metrics = model.adapt(tasks).evaluate(tasks.query)
    for n, node in enumerate(family.graph.names):
        assert family.graph.subtask(node).learner.type == "linear"
        assert validated[node] == pytest.approx(float(metrics["loss"][:, n].mean()), rel=1e-5)
        assert validated[node] != pytest.approx(float(metrics["mse"][:, n].mean()), rel=1e-3)
