"""Linear learners: the conjugate Normal-Inverse-Gamma update and its Student-t predictive, against
the per-node reference (to 1e-9), against the update and the marginal likelihood done by hand,
with message passing, mixed with other learners, and from every place a learner is named."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import multivariate_t

import graphmeta as gm
from graphmeta.adapt.algorithms import ALGORITHMS
from graphmeta.learners.banks import linear as linear_bank
from graphmeta.testing.reference import reference_adapted_weights, reference_meta_loss, unpadded_slices
from tests.test_model import observed_masks, task_data


def linear_graph(in_dim: int = 1, out_dim: int = 2, prior_precision: float = 1.0) -> gm.TaskGraph:
    """A Linear node ``y`` below a regression MLP (2 outputs) and a classification MLP (3 classes,
    one-hot), a Linear child ``z`` of another width, and a Table beside them."""
    return (gm.TaskGraph()
            .add_subtask("p", in_dim=1, out_dim=2, learner=gm.MLP(hidden=(3,)))
            .add_subtask("c", in_dim=1, kind="classification", num_classes=3, learner=gm.MLP(hidden=()))
            .add_subtask("w", kind="classification", num_classes=2, learner="table")
            .add_subtask("y", in_dim=in_dim, out_dim=out_dim, learner=gm.Linear(prior_precision=prior_precision))
            .add_subtask("z", learner=gm.Linear(prior_precision=prior_precision))
            .add_dependency("p", "y").add_dependency("c", "y").add_dependency("y", "z").add_dependency("c", "w"))


def build(graph: gm.TaskGraph, algorithm: str = "maml", message_passing: bool = False,
          seed: int = 0) -> gm.GraphMetaLearner:
    """A float64 model with a random prior (padding included) and, with message passing, an open gate."""
    torch.manual_seed(seed)
    model = gm.GraphMetaLearner(graph, algorithm=algorithm, inner_steps=2, inner_lr=0.25,
                                message_passing=message_passing, message_channels=6).double()
    with torch.no_grad():
        for bank in model.banks:
            if bank.closed_form:
                for parameter in bank.theta.values():
                    parameter.add_(0.5 * torch.randn_like(parameter))
        if message_passing:
            for gate in model.message_passing.gates:
                gate.uniform_(0.5, 1.0)
            model.message_passing.node_embedding.normal_()
    return model


def node_prior(model: gm.GraphMetaLearner, name: str) -> dict[str, np.ndarray]:
    """Node ``name``'s prior ``m [D, O]``, ``Lambda [D, D]``, ``a, b [O]`` read from its bank, by hand."""
    b, row, slices = unpadded_slices(model, name)
    theta = {key: p[(row, *slices[key])].detach().numpy() for key, p in model.banks[b].theta.items()}
    return {"mean": theta["mean"], "precision": precision_of(theta["precision_factor"]),
            "shape": np.exp(theta["log_shape"]), "scale": np.exp(theta["log_scale"])}


def precision_of(packed: np.ndarray) -> np.ndarray:
    """``L L^T`` from the rows of ``L``'s lower triangle (diagonal as log)."""
    size = int(round((math.sqrt(8 * len(packed) + 1) - 1) / 2))
    factor = np.zeros((size, size))
    factor[np.tril_indices(size)] = packed
    factor[np.diag_indices(size)] = np.exp(np.diag(factor))
    return factor @ factor.T


def design(data: dict, t: int, in_dim: int) -> np.ndarray:
    """``[1, x, p, onehot(c)]`` of node ``y`` in task ``t``."""
    rows = len(data["y"][1][t])
    own = [data["y"][0][t].numpy()] if in_dim else []
    return np.concatenate([np.ones((rows, 1)), *own, data["p"][1][t].numpy(),
                           np.eye(3)[data["c"][1][t].numpy()]], axis=1)


def hand_posterior(prior: dict[str, np.ndarray], z: np.ndarray, y: np.ndarray) -> dict[str, np.ndarray]:
    """The conjugate update in its covariance (Kalman) form, ``S = I + Z Lambda^-1 Z^T``:
    ``m_n = m + Lambda^-1 Z^T S^-1 (y - Z m)``, ``Lambda_n^-1 = Lambda^-1 - Lambda^-1 Z^T S^-1 Z Lambda^-1``,
    ``a_n = a + K / 2``, ``b_n = b + (y - Z m)^T S^-1 (y - Z m) / 2`` per output."""
    covariance = np.linalg.inv(prior["precision"])
    innovation = np.eye(len(z)) + z @ covariance @ z.T
    gain = covariance @ z.T @ np.linalg.inv(innovation)
    residual = y - z @ prior["mean"]
    return {"mean": prior["mean"] + gain @ residual,
            "precision": np.linalg.inv(covariance - gain @ z @ covariance),
            "shape": prior["shape"] + len(z) / 2,
            "scale": prior["scale"] + 0.5 * np.einsum("ko,kl,lo->o", residual, np.linalg.inv(innovation), residual)}


def adapted_node(model: gm.GraphMetaLearner, support: dict, observed: dict | None = None
                 ) -> tuple[gm.AdaptedGraph, int]:
    graph = model.graph
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support, observed, observed))
    b, _, _ = unpadded_slices(model, "y")
    return adapted, b


# ------------------------------------------------------------------ the exact posterior
@settings(max_examples=25, deadline=None, derandomize=True, database=None)
@given(in_dim=st.integers(0, 3), out_dim=st.integers(1, 2), shots=st.integers(1, 9), seed=st.integers(0, 2**16))
def test_posterior_is_the_conjugate_update_done_by_hand(in_dim, out_dim, shots, seed):
    """On random data and a random prior, one shot (a singular design: D = in_dim + 6 > K) to many."""
    graph = linear_graph(in_dim, out_dim)
    model = build(graph, seed=seed)
    support = task_data(graph, 2, shots, seed + 1)
    adapted, b = adapted_node(model, support)
    _, row, slices = unpadded_slices(model, "y")
    prior = node_prior(model, "y")
    for t in range(2):
        expected = hand_posterior(prior, design(support, t, in_dim), support["y"][1][t].numpy())
        fast = {key: w[t, row][slices[key]].numpy() for key, w in adapted.fast[b].items()}
        np.testing.assert_allclose(fast["mean"], expected["mean"], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(precision_of(fast["precision_factor"]), expected["precision"], rtol=1e-9, atol=1e-10)
        np.testing.assert_allclose(np.exp(fast["log_shape"]), expected["shape"], rtol=1e-12)
        np.testing.assert_allclose(np.exp(fast["log_scale"]), expected["scale"], rtol=1e-9)


def test_the_loss_is_the_marginal_likelihood_of_a_query_row_given_the_support():
    """The adapted node's loss on one query row is ``-log p(y_q | y_S) = log p(y_S) - log p(y_S, y_q)``,
    both from the multivariate Student-t marginal ``y ~ t_2a(Z m, (b / a)(I + Z Lambda^-1 Z^T))``."""
    graph = linear_graph(in_dim=2, out_dim=1)
    model = build(graph, seed=3)
    support, query = task_data(graph, 2, 4, 5), task_data(graph, 2, 1, 6)
    adapted, _ = adapted_node(model, support)
    loss = adapted.evaluate(gm.TaskBatch.from_tensors(graph, query, query))["loss"][:, graph.names.index("y")]
    prior = node_prior(model, "y")
    for t in range(2):
        z = np.concatenate([design(support, t, 2), design(query, t, 2)])
        y = np.concatenate([support["y"][1][t].numpy(), query["y"][1][t].numpy()])[:, 0]

        def log_marginal(rows: slice) -> float:
            scatter = np.eye(len(z[rows])) + z[rows] @ np.linalg.inv(prior["precision"]) @ z[rows].T
            shape, scale = prior["shape"][0], prior["scale"][0]
            return multivariate_t(loc=z[rows] @ prior["mean"][:, 0], shape=scale / shape * scatter,
                                  df=2 * shape).logpdf(y[rows])

        assert float(loss[t]) == pytest.approx(log_marginal(slice(0, 4)) - log_marginal(slice(0, 5)), rel=1e-9)


def test_predictions_are_the_posterior_predictive_mean():
    graph = linear_graph(in_dim=1, out_dim=2)
    model = build(graph, seed=1)
    support, query = task_data(graph, 2, 6, 2), task_data(graph, 2, 3, 3)
    adapted, b = adapted_node(model, support)
    _, row, slices = unpadded_slices(model, "y")
    predictions = adapted.predict({"p": query["p"][0], "c": query["c"][0], "y": query["y"][0]},
                                  observed={"p": query["p"][1], "c": query["c"][1]})
    for t in range(2):
        mean = adapted.fast[b]["mean"][t, row][slices["mean"]].numpy()
        np.testing.assert_allclose(predictions["y"][t].numpy(), design(query, t, 1) @ mean, rtol=1e-12)


@pytest.mark.parametrize("message_passing", [False, True])
@pytest.mark.parametrize("bank_cost", [None, 0])
def test_engine_equals_reference_to_1e_9(message_passing, bank_cost, monkeypatch):
    """Meta-loss, meta-gradient and the adapted weights of every node, missing cells included; with a
    bank costing nothing, ``y`` and ``z`` (designs 8 and 3 wide) in banks of their own."""
    if bank_cost is not None:
        monkeypatch.setattr(linear_bank, "BANK_COST", bank_cost)
    graph = linear_graph(in_dim=2, out_dim=2)
    model = build(graph, message_passing=message_passing)
    linear_banks = [bank.names for bank in model.banks if isinstance(bank, linear_bank.LinearBank)]
    assert linear_banks == ([["y", "z"]] if bank_cost is None else [["z"], ["y"]])
    assert_engine_equals_reference(model, shots=4)


def assert_engine_equals_reference(model: gm.GraphMetaLearner, shots: int) -> None:
    """The model's meta-loss, the meta-gradient of its banks' parameters and its adapted weights equal
    the per-node reference's to 1e-9, on 3 random tasks of ``shots`` rows with missing cells."""
    graph = model.graph
    support, query = task_data(graph, 3, shots, 1), task_data(graph, 3, 4, 2)
    s_obs, q_obs = observed_masks(graph, 3, shots, 3), observed_masks(graph, 3, 4, 4)
    batch = gm.TaskBatch.from_tensors(graph, support, query, s_obs, q_obs)
    theta = [p for name, p in model.named_parameters() if name.startswith("banks.")]
    loss, _ = model.meta_loss(batch)
    reference = reference_meta_loss(model, support, query, s_obs, q_obs)
    torch.testing.assert_close(loss, reference, rtol=1e-9, atol=1e-12)
    for grad, expected in zip(torch.autograd.grad(loss, theta), torch.autograd.grad(reference, theta)):
        torch.testing.assert_close(grad, expected, rtol=1e-9, atol=1e-12)
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support, s_obs, s_obs))
    for (t, name), weights in reference_adapted_weights(model, support, s_obs).items():
        b, row, slices = unpadded_slices(model, name)
        for key, expected in weights.items():
            torch.testing.assert_close(adapted.fast[b][key][t, row][slices[key]], expected, rtol=1e-9, atol=1e-12,
                                       msg=lambda m, key=key, name=name: f"{name}.{key}: {m}")


def test_nodes_with_many_parents_get_a_bank_of_their_own_when_padding_costs_more():
    """96 one-parent nodes and 11 six-parent ones (arth150's shape): one bank would pad every design
    to 7 columns, so the wide ones split off; a few nodes stay together."""
    graph = gm.TaskGraph().add_subtask("root", learner="linear")
    roots = [f"r{i}" for i in range(6)]
    for name in roots:
        graph.add_subtask(name, learner="linear").add_dependency("root", name)
    for i in range(96):
        graph.add_subtask(f"a{i}", learner="linear").add_dependency("root", f"a{i}")
    for i in range(11):
        graph.add_subtask(f"w{i}", learner="linear")
        for parent in roots:
            graph.add_dependency(parent, f"w{i}")
    names = graph.names
    partition = linear_bank.LinearBank.partition(graph, names)
    assert [len(part) for part in partition] == [103, 11]
    assert partition[1] == [f"w{i}" for i in range(11)]
    assert linear_bank.LinearBank.partition(graph, ["root", "a0", "w0"]) == [["root", "a0", "w0"]]


# ----------------------------------------------------------------------- message passing
def test_message_passing_moves_a_small_support_and_leaves_a_large_one_at_its_least_squares_fit():
    """With an open gate the corrected fit differs from the plain posterior's on 2 rows; on 4000 rows
    both are the node's own least-squares fit."""
    graph = linear_graph(in_dim=1, out_dim=1)
    model = build(graph, message_passing=True)
    moved = {}
    for shots in (2, 4000):
        support = task_data(graph, 1, shots, 7)
        coefficients = torch.tensor([[0.5], [1.0], [-2.0], [0.3], [1.5], [0.0], [-1.0]], dtype=torch.float64)
        z = torch.from_numpy(design(support, 0, 1))
        support["y"] = (support["y"][0], (z @ coefficients + 0.1 * support["y"][1][0])[None])
        adapted, b = adapted_node(model, support)
        model.message_passing, passing = None, model.message_passing
        plain, _ = adapted_node(model, support)
        model.message_passing = passing
        _, row, slices = unpadded_slices(model, "y")
        corrected_fit = z @ adapted.fast[b]["mean"][0, row][slices["mean"]]
        plain_fit = z @ plain.fast[b]["mean"][0, row][slices["mean"]]
        moved[shots] = float((corrected_fit - plain_fit).abs().max())
        if shots == 4000:  # the one-hot columns sum to the constant one: compare fitted values, which are unique
            least_squares = z @ torch.linalg.lstsq(z, support["y"][1][0]).solution
            torch.testing.assert_close(corrected_fit, least_squares, rtol=0, atol=0.03)
    assert moved[2] > 0.05 and moved[4000] < 0.05 * moved[2], moved


# ------------------------------------------------------------------ meta-training the prior
def test_meta_training_the_prior_by_the_query_likelihood_nears_the_true_priors():
    """Tasks ``y = [1, x] w_t + 0.1 e``, ``w_t ~ N(c, 0.1^2 I)``: after 150 meta-steps the query loss
    after adapting on 2 rows (untrained: 2.8 nats above) is within 0.25 nats of the true prior's
    (``m = c``, ``Lambda = I``, the noise variance pinned at 0.01 by ``a = 10^4``)."""
    graph = gm.TaskGraph().add_subtask("y", in_dim=1, learner="linear")
    shared = torch.tensor([2.0, -3.0], dtype=torch.float64)

    def batch(tasks: int, generator: torch.Generator) -> gm.TaskBatch:
        x = torch.randn(tasks, 12, 1, generator=generator, dtype=torch.float64)
        w = shared + 0.1 * torch.randn(tasks, 2, generator=generator, dtype=torch.float64)
        noise = 0.1 * torch.randn(tasks, 12, 1, generator=generator, dtype=torch.float64)
        y = w[:, None, :1] + x * w[:, None, 1:] + noise
        return gm.TaskBatch.from_tensors(graph, {"y": (x[:, :2], y[:, :2])}, {"y": (x[:, 2:], y[:, 2:])})

    def query_loss(model: gm.GraphMetaLearner) -> float:
        return float(model.meta_loss(evaluation)[1]["loss_after"])

    evaluation = batch(512, torch.Generator().manual_seed(99))
    true_prior = gm.GraphMetaLearner(graph, message_passing=False).double()
    with torch.no_grad():
        theta = true_prior.banks[0].theta
        theta["mean"][0, :, 0] = shared
        theta["precision_factor"].zero_()
        theta["log_shape"].fill_(math.log(1e4))
        theta["log_scale"].fill_(math.log(1e4 * 0.01))
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, algorithm="fomaml", message_passing=False).double()
    untrained = query_loss(model)
    generator = torch.Generator().manual_seed(1)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(150):
        optimizer.zero_grad()
        model.meta_loss(batch(16, generator), metrics=False)[0].backward()
        optimizer.step()
    assert untrained > query_loss(true_prior) + 2
    assert query_loss(model) < query_loss(true_prior) + 0.25


@pytest.mark.parametrize("algorithm", sorted(set(ALGORITHMS) - {"reptile"}))
def test_every_algorithm_adapts_it_in_closed_form_and_trains_its_prior(algorithm):
    graph = linear_graph()
    model = build(graph, algorithm, message_passing=True)
    batch = gm.TaskBatch.from_tensors(graph, task_data(graph, 2, 3, 1), task_data(graph, 2, 3, 2))
    loss, _ = model.meta_loss(batch)
    bank = next(bank for bank in model.banks if "y" in bank.names)
    grads = torch.autograd.grad(loss, list(bank.theta.values()))
    assert torch.isfinite(loss) and all(g.abs().sum() > 0 for g in grads)


def test_reptile_refuses_it():
    with pytest.raises(gm.ConfigError, match="closed form"):
        gm.GraphMetaLearner(linear_graph(), algorithm="reptile")


# ---------------------------------------------------------------- where a learner is named
def test_a_classification_subtask_cannot_be_linear():
    with pytest.raises(gm.GraphError, match="'c'.*Linear learner.*kind='regression'"):
        gm.TaskGraph().add_subtask("c", kind="classification", num_classes=2, learner="linear")


def test_it_is_read_from_yaml_and_written_back(tmp_path):
    path = tmp_path / "graph.yaml"
    path.write_text("subtasks:\n  x: {in_dim: 1}\n"
                    "  y: {learner: linear}\n"
                    "  z: {learner: {type: linear, prior_precision: 4.0, noise_shape: 3.0}}\n"
                    "dependencies: [[x, y], [y, z]]\n")
    graph = gm.TaskGraph.load(path)
    assert graph.subtask("y").learner == gm.Linear()
    assert graph.subtask("z").learner == gm.Linear(prior_precision=4.0, noise_shape=3.0)
    assert gm.TaskGraph.from_dict(graph.to_dict()) == graph
    with pytest.raises(gm.SpecError):
        gm.Linear(prior_precision=0.0)


def test_a_dataframe_family_takes_it_by_name():
    rng = np.random.default_rng(0)
    frames = []
    for site in range(5):
        dose = rng.normal(10.0, 2.0, 20)
        frames.append(pd.DataFrame({"site": f"s{site}", "dose": dose,
                                    "response": 0.5 * dose + site + rng.normal(0.0, 0.1, 20)}))
    family = gm.DataFrameFamily(pd.concat(frames), task_column="site", learner="linear",
                                graph={"dependencies": [["dose", "response"]]})
    assert {family.graph.subtask(name).learner for name in family.graph.names} == {gm.Linear()}
    model = gm.GraphMetaLearner(family.graph)
    loss, _ = model.meta_loss(family.sample(2, 4, 3, seed=0))
    assert torch.isfinite(loss)
