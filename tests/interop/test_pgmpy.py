"""Task graphs from pgmpy: bundled networks, user-built networks, structure learned from tables,
and the one path (one state-name rule) that every pgmpy reader in graphmeta takes."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from graphmeta import GraphError, taskgraph_from_data, taskgraph_from_pgmpy
from graphmeta.bayesnet import NetworkStructure
from graphmeta.families import BayesNetFamily
from graphmeta.interop.pgmpy import load_bundled, network_evidence, network_states, read_network


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
    graph = taskgraph_from_pgmpy(asia_model)
    assert (len(graph), len(graph.edges)) == (8, 8)
    assert set(graph.edges) == set(asia_model.edges())
    assert graph.subtask("either").attrs["state_names"] == ["yes", "no"]
    assert graph.levels() == [["asia", "smoke"], ["tub", "lung", "bronc"], ["either"], ["xray", "dysp"]]


def test_ecoli70_gives_regression_subtasks():
    graph = taskgraph_from_pgmpy("ecoli70")
    assert (len(graph), len(graph.edges)) == (46, 70)
    assert all(graph.subtask(n).kind == "regression" and graph.subtask(n).out_dim == 1 for n in graph)


def test_user_built_network_with_state_names():
    graph = taskgraph_from_pgmpy(sprinkler())
    assert graph.names == ["rain", "sprinkler", "wet"]
    assert graph.parents("wet") == ["rain", "sprinkler"]
    assert graph.subtask("wet").num_classes == 3
    assert graph.subtask("wet").attrs == {"state_names": ["dry", "damp", "soaked"]}
    assert graph.input_width("wet") == 4


def test_network_without_state_names_errors():
    with pytest.raises(GraphError, match="variable 'rain' of the pgmpy network has no state names"):
        taskgraph_from_pgmpy(sprinkler(state_names=False))


def test_unknown_bundled_network_and_wrong_type():
    with pytest.raises(GraphError, match=r"unknown pgmpy network 'alarmm' \(did you mean 'alarm'\?\)"):
        taskgraph_from_pgmpy("alarmm")
    with pytest.raises(GraphError, match="needs a DiscreteBayesianNetwork or LinearGaussianBayesianNetwork, got int"):
        taskgraph_from_pgmpy(42)


def test_from_data_recovers_asia_structure(asia_sample):
    graph = taskgraph_from_data(asia_sample)
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
    graph = taskgraph_from_data(pd.DataFrame({"x": x, "y": y, "z": z}))
    assert all(graph.subtask(n).kind == "regression" for n in graph)
    edges = {frozenset(edge) for edge in graph.edges}
    assert {frozenset({"x", "y"}), frozenset({"y", "z"})} <= edges


def test_from_data_pc(asia_sample):
    columns = ["either", "xray", "tub", "lung"]
    graph = taskgraph_from_data(asia_sample[columns], method="pc")  # defaults: a DAG, one process
    assert set(graph.names) == set(columns)
    assert frozenset({"either", "xray"}) in {frozenset(edge) for edge in graph.edges}


def test_from_data_mixed_columns_use_the_conditional_gaussian_bic():
    rng = np.random.default_rng(0)
    group = rng.choice(["x", "y"], 400)
    level = np.where(group == "x", 2.0, -2.0) + rng.normal(size=400)
    graph = taskgraph_from_data(pd.DataFrame({"group": group, "level": level}))
    assert graph.subtask("group").kind == "classification" and graph.subtask("level").kind == "regression"
    assert {frozenset(edge) for edge in graph.edges} == {frozenset({"group", "level"})}


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        ([[1, 2]], {}, "needs a non-empty pandas DataFrame"),
        (pd.DataFrame(), {}, "needs a non-empty pandas DataFrame"),
        (pd.DataFrame({"a": ["x", "y"], "b": ["u", "u"]}), {}, "column 'b' has fewer than 2 distinct values"),
        (pd.DataFrame({"a": ["x", "y"]}), {"method": "magic"}, "unknown structure-learning method 'magic'"),
    ],
)
def test_from_data_errors(data, kwargs, message):
    with pytest.raises(GraphError, match=message):
        taskgraph_from_data(data, **kwargs)


def test_non_string_state_names_error():
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork([("a", "b")])
    model.add_cpds(TabularCPD("a", 2, [[0.5], [0.5]], state_names={"a": [0, 1]}),
                   TabularCPD("b", 2, [[0.3, 0.6], [0.7, 0.4]], evidence=["a"], evidence_card=[2],
                              state_names={"b": [0, 1], "a": [0, 1]}))
    with pytest.raises(GraphError, match=r"variable 'a' has state names \[0, 1\] that are not strings.*astype\(str\)"):
        taskgraph_from_pgmpy(model)
    with pytest.raises(GraphError, match="variable 'a' has state names .* not strings"):
        NetworkStructure.from_pgmpy(model)  # the same rule, wherever a network is read
    named = taskgraph_from_pgmpy(model, state_names={"a": ["off", "on"], "b": [0, 1]})
    assert named.subtask("a").attrs["state_names"] == ["off", "on"]
    assert named.subtask("b").attrs["state_names"] == ["0", "1"]  # names given are taken as strings


def test_state_names_name_the_states_of_a_bare_network():
    graph = taskgraph_from_pgmpy(sprinkler(state_names=False),
                                 state_names={"rain": ["no", "yes"], "sprinkler": ["off", "on"], "wet": "abc"})
    assert graph.subtask("wet").attrs["state_names"] == ["a", "b", "c"]
    with pytest.raises(GraphError, match=r"state_names names 'rian', which is no variable.*did you mean 'rain'"):
        taskgraph_from_pgmpy(sprinkler(), state_names={"rian": ["no", "yes"]})
    with pytest.raises(GraphError, match=r"variable 'rain' needs at least 2 distinct state names, got \['no', 'no'\]"):
        taskgraph_from_pgmpy(sprinkler(), state_names={"rain": ["no", "no"]})
    with pytest.raises(GraphError, match="state_names apply to discrete networks"):
        taskgraph_from_pgmpy("ecoli70", state_names={"sucA": ["lo", "hi"]})


def test_states_named_only_by_a_child_cpd_are_used():
    model = sprinkler()
    model.remove_cpds("rain")  # wet's CPD still names rain's states
    assert network_states(model)["rain"] == ["no", "yes"]


def test_evidence_follows_the_cpd_order_else_the_dag():
    from pgmpy.factors.discrete import TabularCPD

    assert network_evidence(sprinkler())["wet"] == ["rain", "sprinkler"]
    flipped = sprinkler()
    cpd = flipped.get_cpds("wet")
    flipped.remove_cpds(cpd)
    values = cpd.get_values().reshape(3, 2, 2).transpose(0, 2, 1).reshape(3, 4)
    flipped.add_cpds(TabularCPD("wet", 3, values, evidence=["sprinkler", "rain"], evidence_card=[2, 2],
                                state_names=cpd.state_names))
    assert network_evidence(flipped)["wet"] == ["sprinkler", "rain"]
    assert network_evidence(sprinkler(state_names=False))["wet"] == ["rain", "sprinkler"]


def test_bundled_networks_are_shared_read_only_and_copied_on_request():
    assert read_network("asia")[1] is read_network("asia")[1]
    assert read_network("asia")[0] == "asia"
    assert load_bundled("asia") is not load_bundled("asia")


@pytest.mark.parametrize("network", ["asia", "alarm"])
def test_every_former_path_reads_the_same_graph(network):
    """taskgraph_from_pgmpy, the Bayesian-network family and NetworkStructure once had three readers
    with different state-name rules; they now share one, so they agree on every variable."""
    family, structure = BayesNetFamily(network), NetworkStructure.from_pgmpy(network)
    graphs = {"from_pgmpy": taskgraph_from_pgmpy(network), "family": family.graph, "structure": structure.graph}

    def described(graph):
        return (graph.name, graph.names, graph.edges,
                {n: (graph.subtask(n).kind, graph.subtask(n).num_classes, graph.subtask(n).attrs) for n in graph})

    reference = described(graphs["from_pgmpy"])
    assert all(described(graph) == reference for graph in graphs.values())
    assert family.states == structure.states == network_states(read_network(network)[1])
    assert family.evidence == structure.evidence
    assert all(reference[3][n][2]["state_names"] == structure.states[n] for n in structure.names)
