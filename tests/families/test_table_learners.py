"""``DataFrameFamily(learner=...)``: ``auto`` (the default) picks each node's learner from its column."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

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
