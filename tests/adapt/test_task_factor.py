"""The task factor of Linear priors: the engine against the per-node reference (to 1e-9), the
coefficients against Gaussian conditioning on every node's rows at once, done by hand, and what
meta-training makes of it on a family whose sites differ through a shared factor."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import graphmeta as gm
from graphmeta.families import GaussianNetFamily
from graphmeta.learners.banks import linear as linear_bank
from graphmeta.testing.reference import unpadded_slices
from tests.learners.test_linear import assert_engine_equals_reference, build, node_prior
from tests.test_model import task_data


def factored_graph() -> gm.TaskGraph:
    """Two Linear nodes reading 2 factors (``b`` of two outputs, below ``a``), one reading 1 (``c``,
    which has no features), an MLP parent of ``a`` and a Linear node without factors."""
    return (gm.TaskGraph()
            .add_subtask("p", in_dim=1, learner=gm.MLP(hidden=(3,)))
            .add_subtask("a", in_dim=2, learner=gm.Linear(task_factors=2))
            .add_subtask("b", in_dim=1, out_dim=2, learner=gm.Linear(task_factors=2))
            .add_subtask("c", learner=gm.Linear(task_factors=1))
            .add_subtask("d", in_dim=1, learner="linear")
            .add_dependency("p", "a").add_dependency("a", "b").add_dependency("b", "c").add_dependency("a", "d"))


@pytest.mark.parametrize("message_passing", [False, True])
@pytest.mark.parametrize("bank_cost", [None, 0])
def test_engine_equals_reference_to_1e_9(message_passing, bank_cost, monkeypatch):
    """Meta-loss, meta-gradient (the loadings' included) and adapted weights, missing cells included;
    with a bank costing nothing the factored nodes sit in banks of their own, and share the factor."""
    if bank_cost is not None:
        monkeypatch.setattr(linear_bank, "BANK_COST", bank_cost)
    graph = factored_graph()
    model = build(graph, message_passing=message_passing)
    assert model.task_factors == 2
    factored = [bank.names for bank in model.banks if bank.task_factors]
    assert factored == ([["a", "b"], ["c"]] if bank_cost is None else [["b"], ["a"], ["c"]])
    assert any(name.endswith("loadings") for name, _ in model.named_parameters())
    assert_engine_equals_reference(model, shots=5)


def test_coefficients_are_gaussian_conditioning_on_every_nodes_rows():
    """Under the model ``w_vo = m_vo + A_vo u + e_vo``, ``e_vo ~ N(0, s_vo^2 Lambda_v^-1)``, ``u ~ N(0, I)``,
    ``y_vo = Z_v w_vo + N(0, s_vo^2 I)`` with ``s^2 = b / a``, the adapted mean of every node is
    ``E[w | all rows]``, from the joint covariance of every coefficient and row (one conditioning)."""
    graph = (gm.TaskGraph()
             .add_subtask("a", in_dim=2, learner=gm.Linear(task_factors=2))
             .add_subtask("b", in_dim=1, out_dim=2, learner=gm.Linear(task_factors=2))
             .add_dependency("a", "b"))
    model = build(graph, seed=4)
    support = task_data(graph, 2, 3, 7)  # 3 rows: fewer than a's 3 and b's 3 coefficients together
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support))
    blocks = []  # per (node, output): prior mean, loadings, prior covariance, design, rows
    for name in graph.names:
        prior = node_prior(model, name)
        b, row, slices = unpadded_slices(model, name)
        loadings = model.banks[b].theta["loadings"][(row, *slices["loadings"])].detach().numpy()
        for o in range(graph.subtask(name).width):
            noise = prior["scale"][o] / prior["shape"][o]
            blocks.append((name, o, prior["mean"][:, o], loadings[:, o], noise * np.linalg.inv(prior["precision"]),
                           noise))
    for t in range(2):
        designs = {"a": np.concatenate([np.ones((3, 1)), support["a"][0][t].numpy()], axis=1),
                   "b": np.concatenate([np.ones((3, 1)), support["b"][0][t].numpy(), support["a"][1][t].numpy()], 1)}
        mean = np.concatenate([block[2] for block in blocks])
        loadings = np.concatenate([block[3] for block in blocks])  # [sum D, r]
        within = np.zeros((len(mean), len(mean)))
        design = np.zeros((3 * len(blocks), len(mean)))
        noise = np.zeros(3 * len(blocks))
        start = 0
        for i, (name, _, m, _, covariance, s2) in enumerate(blocks):
            within[start:start + len(m), start:start + len(m)] = covariance
            design[3 * i:3 * i + 3, start:start + len(m)] = designs[name]
            noise[3 * i:3 * i + 3] = s2
            start += len(m)
        rows = np.concatenate([support[name][1][t].numpy()[:, o] for name, o, *_ in blocks])
        coefficients = loadings @ loadings.T + within
        expected = mean + coefficients @ design.T @ np.linalg.solve(
            design @ coefficients @ design.T + np.diag(noise), rows - design @ mean)
        start = 0
        for name, o, m, *_ in blocks:
            b, row, slices = unpadded_slices(model, name)
            got = adapted.fast[b]["mean"][t, row][slices["mean"]][:, o].numpy()
            np.testing.assert_allclose(got, expected[start:start + len(m)], rtol=1e-9, atol=1e-10)
            start += len(m)


# a few test sites lie far out on a node (the sites' spread is wide), which adapt says
@pytest.mark.filterwarnings("ignore::graphmeta.errors.DistributionShiftWarning")
def test_meta_training_learns_a_shared_site_factor_and_predicts_new_sites_better():
    """On sites whose coefficients all move with one 2-number factor, the factored prior meta-trained
    for 40 steps scores new sites' query rows, 3 rows of support each, better than the same prior
    without factors (0.866 against 0.930 nats per node when written)."""
    family = GaussianNetFamily("ecoli70", prior="latent", scale=0.5)
    scores = {}
    for factors in (0, 2):
        graph = family.graph.with_learner(gm.Linear(task_factors=factors))
        torch.manual_seed(0)
        model = gm.GraphMetaLearner(graph, message_passing=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
        for step in range(40):
            optimizer.zero_grad()
            batch = family.sample(8, 3, 20, seed=step)
            loss, _ = model.meta_loss(gm.TaskBatch(graph, batch.support, batch.query), metrics=False)
            loss.backward()
            optimizer.step()
        test = family.sample(64, 3, 50, seed=10_000, split="test")
        with torch.no_grad():
            test = gm.TaskBatch(graph, test.support, test.query)
            scores[factors] = float(model.adapt(test).evaluate(test)["loss"].mean())
    assert scores[2] < scores[0] - 0.03, scores


def test_the_spec_takes_a_count_of_factors_from_yaml_and_refuses_a_negative_one():
    graph = gm.TaskGraph.from_dict({"subtasks": {"y": {"learner": {"type": "linear", "task_factors": 3}}}})
    assert graph.subtask("y").learner == gm.Linear(task_factors=3)
    assert gm.TaskGraph.from_dict(graph.to_dict()) == graph
    with pytest.raises(gm.SpecError, match="task_factors"):
        gm.Linear(task_factors=-1)
