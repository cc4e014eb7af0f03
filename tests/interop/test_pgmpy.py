"""Task graphs from pgmpy: bundled networks, user-built networks, and structure learned from tables."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from graphmeta import GraphError, TaskGraph


@pytest.fixture(scope="module")
def asia_sample(asia_model) -> pd.DataFrame:
    from pgmpy.sampling import BayesianModelSampling

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return BayesianModelSampling(asia_model).forward_sample(size=1000, seed=0, show_progress=False)


def sprinkler(state_names: bool = True):
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork([("rain", "wet"), ("sprinkler", "wet")])
    if state_names:
        names = {"rain": ["no", "yes"], "sprinkler": ["off", "on"], "wet": ["dry", "damp", "soaked"]}
        model.add_cpds(
            TabularCPD("rain", 2, [[0.8], [0.2]], state_names={"rain": names["rain"]}),
            TabularCPD("sprinkler", 2, [[0.5], [0.5]], state_names={"sprinkler": names["sprinkler"]}),
            TabularCPD("wet", 3, [[0.9, 0.2, 0.3, 0.1], [0.05, 0.4, 0.3, 0.2], [0.05, 0.4, 0.4, 0.7]],
                       evidence=["rain", "sprinkler"], evidence_card=[2, 2], state_names=names),
        )
    return model


def test_alarm(alarm):
    assert (len(alarm), len(alarm.edges)) == (37, 46)
    assert alarm.name == "alarm"
    assert {alarm.subtask(n).kind for n in alarm} == {"classification"}
    hr = alarm.subtask("HR")
    assert hr.num_classes == len(hr.attrs["state_names"]) == 3
    assert alarm.parents("HR") == ["CATECHOL"]
    assert alarm.input_width("HR") == alarm.subtask("CATECHOL").num_classes


def test_asia_matches_the_pgmpy_network(asia_model):
    graph = TaskGraph.from_pgmpy(asia_model)
    assert (len(graph), len(graph.edges)) == (8, 8)
    assert set(graph.edges) == set(asia_model.edges())
    assert graph.subtask("either").attrs["state_names"] == ["yes", "no"]
    assert graph.levels() == [["asia", "smoke"], ["tub", "lung", "bronc"], ["either"], ["xray", "dysp"]]


def test_ecoli70_gives_regression_subtasks():
    graph = TaskGraph.from_pgmpy("ecoli70")
    assert (len(graph), len(graph.edges)) == (46, 70)
    assert all(graph.subtask(n).kind == "regression" and graph.subtask(n).out_dim == 1 for n in graph)


def test_user_built_network_with_state_names():
    graph = TaskGraph.from_pgmpy(sprinkler())
    assert graph.names == ["rain", "sprinkler", "wet"]
    assert graph.parents("wet") == ["rain", "sprinkler"]
    assert graph.subtask("wet").num_classes == 3
    assert graph.subtask("wet").attrs == {"state_names": ["dry", "damp", "soaked"]}
    assert graph.input_width("wet") == 4


def test_network_without_state_names_errors():
    with pytest.raises(GraphError, match="variable 'rain' of the pgmpy network has no state names"):
        TaskGraph.from_pgmpy(sprinkler(state_names=False))


def test_unknown_bundled_network_and_wrong_type():
    with pytest.raises(GraphError, match=r"unknown pgmpy network 'alarmm' \(did you mean 'alarm'\?\)"):
        TaskGraph.from_pgmpy("alarmm")
    with pytest.raises(GraphError, match="needs a DiscreteBayesianNetwork or LinearGaussianBayesianNetwork, got int"):
        TaskGraph.from_pgmpy(42)


def test_from_data_recovers_asia_structure(asia_sample):
    graph = TaskGraph.from_data(asia_sample)
    assert graph.name == "learned" and set(graph.names) == set(asia_sample.columns)
    assert graph.subtask("xray").kind == "classification"
    assert graph.subtask("xray").attrs["state_names"] == ["no", "yes"]
    edges = {frozenset(edge) for edge in graph.edges}
    assert frozenset({"either", "xray"}) in edges or frozenset({"either", "dysp"}) in edges


def test_from_data_numeric_columns_are_regression():
    rng = np.random.default_rng(0)
    x = rng.normal(size=400)
    y = 2 * x + 0.3 * rng.normal(size=400)
    z = -y + 0.3 * rng.normal(size=400)
    graph = TaskGraph.from_data(pd.DataFrame({"x": x, "y": y, "z": z}))
    assert all(graph.subtask(n).kind == "regression" for n in graph)
    edges = {frozenset(edge) for edge in graph.edges}
    assert {frozenset({"x", "y"}), frozenset({"y", "z"})} <= edges


def test_from_data_pc(asia_sample):
    columns = ["either", "xray", "tub", "lung"]
    graph = TaskGraph.from_data(asia_sample[columns], method="pc")  # defaults: a DAG, one process
    assert set(graph.names) == set(columns)
    assert frozenset({"either", "xray"}) in {frozenset(edge) for edge in graph.edges}


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ([[1, 2]], {}, "needs a non-empty pandas DataFrame"),
        (pd.DataFrame(), {}, "needs a non-empty pandas DataFrame"),
        (pd.DataFrame({"a": ["x", "y"], "b": ["u", "u"]}), {}, "column 'b' has fewer than 2 distinct values"),
        (pd.DataFrame({"a": ["x", "y"]}), {"method": "magic"}, "unknown structure-learning method 'magic'"),
        (pd.DataFrame({"a": ["x", "y"], "b": [0.5, 1.5]}), {}, "'a' is discrete but 'b' is numeric"),
    ],
)
def test_from_data_errors(data, kwargs, message):
    with pytest.raises(GraphError, match=message):
        TaskGraph.from_data(data, **kwargs)


def test_non_string_state_names_error():
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork([("a", "b")])
    model.add_cpds(TabularCPD("a", 2, [[0.5], [0.5]], state_names={"a": [0, 1]}),
                   TabularCPD("b", 2, [[0.3, 0.6], [0.7, 0.4]], evidence=["a"], evidence_card=[2],
                              state_names={"b": [0, 1], "a": [0, 1]}))
    with pytest.raises(GraphError, match="variable 'a' has non-string state names.*astype\\(str\\)"):
        TaskGraph.from_pgmpy(model)
