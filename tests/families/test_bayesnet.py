"""The discrete Bayesian-network family: priors, ancestral sampling, pgmpy DataFrames and networks."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from graphmeta import ConfigError, DataError, GraphError
from graphmeta.families import BayesNetFamily, batch_from_dataframes


def _states(family: BayesNetFamily, values: torch.Tensor) -> dict[str, np.ndarray]:
    """``{variable: [T, K] state index}`` read back from one-hot values."""
    return {name: values[..., s].argmax(-1).numpy() for name, s in family.layout.value_slices.items()}


def _aligned(cpd, order: list[str]) -> np.ndarray:
    """A pgmpy CPD's values with axes in ``order`` (pgmpy orders evidence as it likes)."""
    return np.transpose(cpd.values, [cpd.variables.index(v) for v in order])


def _check_empirical(family: BayesNetFamily, states: dict[str, np.ndarray], theta: dict[str, np.ndarray]) -> int:
    """Every empirical column P(v | u) is within 5 standard errors of theta; returns how many were checked."""
    checked = 0
    for name, table in theta.items():
        evidence = family.evidence[name]
        cards = [len(family.states[p]) for p in evidence]
        config = np.ravel_multi_index([states[p] for p in evidence], cards) if evidence else np.zeros_like(states[name])
        counts = np.zeros_like(table)
        np.add.at(counts, (states[name], config), 1)
        seen = counts.sum(0)
        for column in np.flatnonzero(seen >= 300):
            expected = table[:, column]
            error = np.abs(counts[:, column] / seen[column] - expected)
            assert np.all(error <= 5 * np.sqrt(expected * (1 - expected) / seen[column]) + 1e-3), (name, column)
            checked += 1
    return checked


@pytest.fixture(scope="module")
def asia_latent() -> BayesNetFamily:
    return BayesNetFamily("asia", prior="latent", seed=3)


def test_graph_and_reference_cpds_follow_the_network(asia_model):
    family = BayesNetFamily("asia", floor=1e-3)
    model = asia_model
    assert family.graph.name == "asia" and set(family.graph.names) == set(model.nodes())
    assert set(family.graph.edges) == set(model.edges())
    for name in family.graph.names:
        cpd = model.get_cpds(name)
        assert family.states[name] == cpd.state_names[name] == family.graph.subtask(name).attrs["state_names"]
        assert family.evidence[name] == cpd.variables[1:]
        floored = np.maximum(cpd.get_values(), 1e-3)
        np.testing.assert_allclose(family.theta_star[name], floored / floored.sum(0))
    assert min(t.min() for t in family.theta_star.values()) > 0  # asia has exact zeros; the floor removes them


def test_dirichlet_tasks_have_the_prior_moments():
    alpha = 10.0
    family = BayesNetFamily("asia", alpha=alpha)
    theta = family.task_cpds(4000, seed=0)
    for name, draws in theta.items():
        np.testing.assert_allclose(draws.sum(1), 1.0)
        star = family.theta_star[name]
        variance = star * (1 - star) / (alpha + 1)
        assert np.all(np.abs(draws.mean(0) - star) <= 5 * np.sqrt(variance / 4000) + 1e-12), name
        wide = (star > 0.05) & (star < 0.95)  # the floored tails are too skewed for a variance check
        np.testing.assert_allclose(draws.var(0)[wide], variance[wide], rtol=0.15)


def test_dirichlet_handles_tiny_concentrations():
    theta = BayesNetFamily("alarm", alpha=0.01).task_params(20, seed=0)["theta"]
    assert np.isfinite(theta).all()
    np.testing.assert_allclose(theta.sum(-1), 1.0)


def test_latent_tasks_shift_the_logits_as_the_formula_says(asia_latent):
    family = asia_latent
    params = family.task_params(6, seed=2)
    theta = family.task_cpds(6, seed=2)
    assert params["latent"].shape == (6, 2)
    for name, star in family.theta_star.items():
        weights = family.latent_weights[name]  # [card, configs, d]
        assert weights.shape == (*star.shape, 2)
        logits = np.log(star) + family.scale * np.einsum("vcd,td->tvc", weights, params["latent"])
        expected = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
        np.testing.assert_allclose(theta[name], expected, rtol=1e-10)
    # without the shift every task is the reference network
    flat = BayesNetFamily("asia", prior="latent", scale=0.0).task_cpds(3, seed=0)
    assert all(np.allclose(flat[name], star) for name, star in family.theta_star.items())


def test_latent_weights_are_fixed_by_the_family_seed():
    a, b = BayesNetFamily("asia", prior="latent", seed=1), BayesNetFamily("asia", prior="latent", seed=2)
    assert all(np.array_equal(a.latent_weights[v], BayesNetFamily("asia", prior="latent", seed=1).latent_weights[v])
               for v in a.latent_weights)
    assert not np.array_equal(a.latent_weights["dysp"], b.latent_weights["dysp"])
    assert BayesNetFamily("asia").latent_weights is None


@pytest.mark.parametrize("network, prior", [("asia", "dirichlet"), ("alarm", "latent")])
def test_empirical_cpds_converge_to_the_task_cpds(network, prior):
    family = BayesNetFamily(network, prior=prior)
    batch = family.sample(1, 100_000, 1, seed=5)
    theta = {name: table[0] for name, table in family.task_cpds(1, seed=5).items()}
    states = {name: s[0] for name, s in _states(family, batch.support.values).items()}
    assert _check_empirical(family, states, theta) >= (15 if network == "asia" else 150)


def test_maximum_likelihood_on_a_large_dataframe_recovers_the_task(asia_latent):
    from pgmpy.estimators import MaximumLikelihoodEstimator
    from pgmpy.models import DiscreteBayesianNetwork

    family = asia_latent
    frame = family.sample_dataframes(1, 100_000, split="test", seed=1)[0]
    truth = family.task_networks(1, split="test", seed=1)[0]
    model = DiscreteBayesianNetwork(family.graph.edges)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = MaximumLikelihoodEstimator(model, frame, state_names=family.states)
        for name in family.graph.names:
            fitted, true = estimator.estimate_cpd(name), truth.get_cpds(name)
            order = true.variables
            counts = frame.groupby(order[1:]).size() if order[1:] else pd.Series([len(frame)])
            tolerance = 5 * np.sqrt(0.25 / counts.min()) + 1e-3
            np.testing.assert_allclose(_aligned(fitted, order), _aligned(true, order), atol=tolerance, err_msg=name)


def test_dataframes_are_pgmpy_tables_of_the_sampled_rows(asia_latent):
    family = asia_latent
    frames = family.sample_dataframes(3, 12, split="val", seed=4)
    assert len(frames) == 3 and all(list(f.columns) == family.graph.names and len(f) == 12 for f in frames)
    for name in family.graph.names:
        assert all(isinstance(v, str) and v in family.states[name] for f in frames for v in f[name])
    batch = family.sample(3, 5, 7, split="val", seed=4)
    again = batch_from_dataframes(family.graph, [f.iloc[:5] for f in frames], [f.iloc[5:] for f in frames])
    assert torch.equal(again.support.values, batch.support.values)
    assert torch.equal(again.query.values, batch.query.values)


def test_task_networks_are_valid_pgmpy_networks_with_the_task_cpds(asia_latent):
    family = asia_latent
    networks = family.task_networks(2, seed=9)
    theta = family.task_cpds(2, seed=9)
    for t, network in enumerate(networks):
        assert network.check_model()
        for name in family.graph.names:
            np.testing.assert_allclose(network.get_cpds(name).get_values(), theta[name][t])
    assert family.reference_network().check_model()


def test_batch_from_dataframes_masks_missing_values_and_pads_rows():
    family = BayesNetFamily("asia")
    support = family.sample_dataframes(2, 6, seed=0)
    query = family.sample_dataframes(2, 4, seed=1)
    support[0].loc[2, "dysp"] = None
    support[1].loc[0, "xray"] = np.nan
    support[1] = support[1].iloc[:4]  # fewer rows: padded with unobserved rows
    batch = batch_from_dataframes(family.graph, support, query)
    index = family.layout.index
    assert batch.shots == 6 and batch.query_shots == 4
    assert not batch.support.observed[0, 2, index["dysp"]] and batch.support.observed[0, 2, index["xray"]]
    assert not batch.support.observed[1, 0, index["xray"]]
    assert not batch.support.observed[1, 4:].any() and batch.support.observed[1, :4, index["asia"]].all()
    assert batch.support.values[0, 2, family.layout.value_slices["dysp"]].sum() == 0


def test_batch_from_dataframes_rejects_bad_tables():
    family = BayesNetFamily("asia")
    frames = family.sample_dataframes(1, 5, seed=0)
    wrong = frames[0].copy()
    wrong.loc[1, "smoke"] = "sometimes"
    with pytest.raises(DataError, match=r"column 'smoke': value 'sometimes'"):
        batch_from_dataframes(family.graph, [wrong], frames)
    numeric = frames[0].copy()
    numeric["smoke"] = (numeric["smoke"] == "yes").astype(int)
    with pytest.raises(DataError, match="strings"):
        batch_from_dataframes(family.graph, [numeric], frames)
    with pytest.raises(DataError, match="no column for node 'smoke'"):
        batch_from_dataframes(family.graph, [frames[0].drop(columns="smoke")], frames)
    with pytest.raises(DataError, match="did you mean 'smoke'"):
        batch_from_dataframes(family.graph, [frames[0].rename(columns={"smoke": "smoker"})], frames)
    with pytest.raises(DataError, match="one of each per task"):
        batch_from_dataframes(family.graph, frames, frames * 2)


def _rain_and_wet(rain_states_of_wet: list[str]):
    """rain -> wet; rain's own CPD names its states no, yes; wet's CPD names them ``rain_states_of_wet``."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    model = DiscreteBayesianNetwork([("rain", "wet")])
    model.add_cpds(
        TabularCPD("rain", 2, [[0.7], [0.3]], state_names={"rain": ["no", "yes"]}),
        TabularCPD("wet", 2, [[0.1, 0.8], [0.9, 0.2]], evidence=["rain"], evidence_card=[2],
                   state_names={"wet": ["dry", "wet"], "rain": rain_states_of_wet}),
    )
    return model


def test_a_child_cpd_may_list_parent_states_in_another_order():
    family = BayesNetFamily(_rain_and_wet(["yes", "no"]), floor=1e-6)
    np.testing.assert_allclose(family.theta_star["wet"], [[0.8, 0.1], [0.2, 0.9]])  # columns: rain = no, yes
    assert family.config["network"] == "DiscreteBayesianNetwork"


def test_a_child_cpd_naming_other_parent_states_is_rejected():
    with pytest.raises(GraphError, match=r"CPD of 'wet' names the states of 'rain' \['false', 'true'\], "
                                         r"expected \['no', 'yes'\]"):
        BayesNetFamily(_rain_and_wet(["false", "true"]))


def test_a_network_without_cpds_is_rejected():
    from pgmpy.models import DiscreteBayesianNetwork

    with pytest.raises(GraphError, match=r"no CPD for 'a', 'b'.*add_cpds"):
        BayesNetFamily(DiscreteBayesianNetwork([("a", "b")]))


def test_a_network_fitted_on_numbers_has_non_string_states():
    from pgmpy.models import DiscreteBayesianNetwork

    rng = np.random.default_rng(0)
    data = pd.DataFrame({"a": rng.integers(0, 2, 200), "b": rng.integers(0, 3, 200)})
    model = DiscreteBayesianNetwork([("a", "b")])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data)
    with pytest.raises(GraphError, match=r"variable '[ab]' has state names .* not strings.*astype\(str\)"):
        BayesNetFamily(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data.astype(str))
    assert BayesNetFamily(model).states["b"] == ["0", "1", "2"]


@pytest.mark.parametrize("arguments, error, match", [
    ({"network": "ecoli70"}, GraphError, "LinearGaussianBayesianNetwork"),
    ({"network": "alrm"}, GraphError, "did you mean 'alarm'"),
    ({"prior": "dirichlett"}, ConfigError, "did you mean 'dirichlet'"),
    ({"alpha": 0}, ConfigError, "alpha"),
    ({"floor": -1}, ConfigError, "floor"),
    ({"learner": "tabel"}, ConfigError, "did you mean 'table'"),
])
def test_bad_arguments(arguments, error, match):
    with pytest.raises(error, match=match):
        BayesNetFamily(**arguments)


def test_table_learners_meta_train_on_the_family(tmp_path):
    """With learner="table" every variable is a CPD; one adaptation is the Dirichlet posterior, so even
    before meta-training it beats no adaptation, and meta-training the prior lowers the query loss."""
    import graphmeta as gm

    family = BayesNetFamily("asia", learner="table")
    assert {family.graph.subtask(name).learner for name in family.graph.names} == {gm.Table()}
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph, message_passing=False)
    batch = family.sample(64, shots=10, query=50, split="test", seed=0)
    before = model.adapt(batch, steps=0).evaluate(batch.query)["loss"].mean()
    untrained = model.adapt(batch).evaluate(batch.query)["loss"].mean()
    gm.Trainer(model, family, steps=150, shots=10, query_shots=50, outer_lr=0.1, val_every=50, progress=False,
               run_dir=str(tmp_path), name="table").fit()
    trained = model.adapt(batch).evaluate(batch.query)["loss"].mean()
    assert untrained < before and trained < untrained - 0.03  # 0.312 -> 0.269 nats per variable when written
