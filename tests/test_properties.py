"""Property tests (hypothesis) where a hand-picked example is weak.

* Random small task graphs (any DAG, mixed kinds and widths, MLP, GNN, Table and Linear learners), random
  observed masks, shot counts, steps, algorithm and message-passing setting: the engine's
  meta-loss and meta-gradient equal the independent reference's.
* Random small discrete Bayesian networks: the rows a :class:`~graphmeta.families.BayesNetFamily`
  samples have, at every variable, empirical CPDs within 5 standard errors of the task's CPDs.

Examples are few and derandomised (the suite stays fast and every run checks the same cases).
"""

from __future__ import annotations

import os

import numpy as np
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import graphmeta as gm
from graphmeta.families import BayesNetFamily
from tests.test_model import task_data
from tests.test_reference import ALGORITHMS, assert_engine_equals_reference, build

#: Shrinking a failure to its smallest example helps whoever debugs it; ``benchmarks/mutation.py``
#: only needs to know that a test fails and turns it off.
PHASES = [phase for phase in Phase if phase != Phase.shrink or not os.environ.get("GRAPHMETA_NO_SHRINK")]


def few(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, derandomize=True, database=None, phases=PHASES,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@st.composite
def task_graphs(draw, conjugate: bool) -> gm.TaskGraph:
    """2-5 nodes; each earlier node is a parent of a later one or not (every DAG up to relabelling);
    with ``conjugate``, a classification node without features whose parents all classify may be
    a Table, and a regression node may be Linear."""
    size = draw(st.integers(2, 5))
    graph = gm.TaskGraph()
    parents: dict[str, list[str]] = {}
    for i in range(size):
        name = f"n{i}"
        parents[name] = [f"n{j}" for j in range(i) if draw(st.booleans())]
        kind = draw(st.sampled_from(["regression", "classification"]))
        width = {"num_classes": draw(st.integers(2, 3))} if kind == "classification" else {
            "out_dim": draw(st.integers(1, 2))}
        in_dim = draw(st.integers(0, 2))
        table_possible = (conjugate and kind == "classification" and in_dim == 0
                          and all(graph.subtask(p).kind == "classification" for p in parents[name]))
        learners = (["mlp"] + (["gnn"] if in_dim else []) + (["table"] if table_possible else [])
                    + (["linear"] if conjugate and kind == "regression" else []))
        learner = draw(st.sampled_from(learners))
        spec = {"mlp": lambda: gm.MLP(hidden=draw(st.sampled_from([(), (3,), (2, 3)])),
                                      activation=draw(st.sampled_from(["relu", "tanh", "gelu", "silu"]))),
                "gnn": lambda: gm.GNN(hidden=draw(st.integers(2, 3)), layers=draw(st.integers(1, 2))),
                "table": lambda: gm.Table(prior_strength=draw(st.sampled_from([0.5, 2.0]))),
                "linear": lambda: gm.Linear(prior_precision=draw(st.sampled_from([0.5, 2.0])))}[learner]()
        graph.add_subtask(name, in_dim=in_dim, kind=kind, learner=spec, **width)
        for parent in parents[name]:
            graph.add_dependency(parent, name)
    return graph


@st.composite
def observed_masks(draw, graph: gm.TaskGraph, tasks: int, shots: int, keep_one: bool) -> dict:
    """Random masks; with ``keep_one`` every node keeps at least one observed shot per task (a
    support set may not be empty), though maybe none where its parents are observed too."""
    masks = {}
    for name in graph.names:
        mask = torch.tensor(draw(st.lists(st.lists(st.booleans(), min_size=shots, max_size=shots),
                                          min_size=tasks, max_size=tasks)))
        if keep_one:
            for t in range(tasks):
                mask[t, draw(st.integers(0, shots - 1))] = True
        masks[name] = mask
    return masks


@few(30)
@given(data=st.data())
def test_engine_equals_reference_on_random_graphs_masks_and_shots(data):
    algorithm = data.draw(st.sampled_from(ALGORITHMS), label="algorithm")
    graph = data.draw(task_graphs(conjugate=algorithm != "reptile"), label="graph")
    tasks, shots, query_shots = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 4)), data.draw(st.integers(1, 3))
    steps = data.draw(st.sampled_from([2, 1, 0]), label="steps")
    message_passing = data.draw(st.booleans(), label="message_passing")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    support_observed = data.draw(observed_masks(graph, tasks, shots, keep_one=True))
    query_observed = data.draw(observed_masks(graph, tasks, query_shots, keep_one=False))
    model = build(graph, algorithm, message_passing, steps=steps, seed=seed)
    support, query = task_data(graph, tasks, shots, seed + 1), task_data(graph, tasks, query_shots, seed + 2)
    assert_engine_equals_reference(model, support, query, support_observed, query_observed, require_gradient=False)


# --------------------------------------------------------------------- Bayesian networks
@st.composite
def discrete_networks(draw):
    """A pgmpy network of 2-4 variables with 2-3 states each, up to 2 parents (none at all
    possible: a network without edges), Dirichlet(1) CPDs."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    size = draw(st.integers(2, 4))
    cards = [draw(st.integers(2, 3)) for _ in range(size)]
    names = [f"v{i}" for i in range(size)]
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    network = DiscreteBayesianNetwork()
    network.add_nodes_from(names)
    for i, name in enumerate(names):
        parents = draw(st.lists(st.sampled_from(names[:i]), max_size=2, unique=True)) if i else []
        network.add_edges_from((parent, name) for parent in parents)
        configurations = int(np.prod([cards[names.index(p)] for p in parents]))
        values = rng.dirichlet(np.ones(cards[i]), size=configurations).T  # [card, configurations]
        network.add_cpds(TabularCPD(name, cards[i], values, evidence=parents or None,
                                    evidence_card=[cards[names.index(p)] for p in parents] or None,
                                    state_names={v: [f"s{k}" for k in range(cards[names.index(v)])]
                                                 for v in [name, *parents]}))
    return network


@few(10)
@given(network=discrete_networks(), prior=st.sampled_from(["dirichlet", "latent"]), seed=st.integers(0, 100))
def test_sampled_rows_have_the_task_cpds_at_every_variable(network, prior, seed):
    family = BayesNetFamily(network, prior=prior, alpha=20.0, seed=seed)
    rows = 20_000
    batch = family.sample(1, rows, 1, seed=seed)
    cpds = {name: table[0] for name, table in family.task_cpds(1, seed=seed).items()}
    values = batch.support.values[0]
    states = {name: values[:, family.layout.value_slices[name]].argmax(-1).numpy() for name in family.graph.names}
    for name, cpd in cpds.items():  # cpd: [card, configurations], parents in family.evidence order
        evidence = family.evidence[name]
        configuration = (np.ravel_multi_index([states[p] for p in evidence], [len(family.states[p]) for p in evidence])
                         if evidence else np.zeros(rows, dtype=np.int64))
        counts = np.zeros_like(cpd)
        np.add.at(counts, (states[name], configuration), 1)
        seen = counts.sum(0)
        checked = seen >= 200
        assert checked.any(), name  # every variable is checked, at least in its most frequent column
        empirical = counts[:, checked] / seen[checked]
        expected = cpd[:, checked]
        standard_error = np.sqrt(expected * (1 - expected) / seen[checked])
        assert np.all(np.abs(empirical - expected) <= 5 * standard_error + 1e-3), name
    assert batch.support.observed.all()


def test_a_network_without_edges_samples():
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    network = DiscreteBayesianNetwork()
    network.add_nodes_from(["a", "b"])
    for name in ("a", "b"):
        network.add_cpds(TabularCPD(name, 2, [[0.3], [0.7]], state_names={name: ["no", "yes"]}))
    family = BayesNetFamily(network)
    batch = family.sample(1, 4000, 1, seed=0)
    assert batch.support.observed.all()
    for name, cpd in family.task_cpds(1, seed=0).items():  # each variable drawn from its own task marginal
        drawn = batch.support.values[0][:, family.layout.value_slices[name]].argmax(-1).float().mean().item()
        assert abs(drawn - cpd[0][1, 0]) < 0.05, name
