"""GaussianNetMetaLearner: the conjugate posterior in the columns' units, the LinearGaussianCPD export,
pgmpy simulation on the result, meta-fitting, saving and loading, bad input."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pandas as pd
import pytest
import torch
from pgmpy.models import LinearGaussianBayesianNetwork
from scipy.special import gammaln

import graphmeta
from graphmeta import DataError, GraphError
from graphmeta.bayesnet import BayesNetMetaLearner, GaussianNetMetaLearner
from graphmeta.bayesnet.gaussian_baselines import empirical_bayes_prior, marginal_likelihood_priors, site_statistics

#: A -> C <- B, with C's coefficients on (A, B) and noise standard deviations.
BETA = {"A": [2.0], "B": [-1.0], "C": [0.5, 1.5, -2.0]}
STD = {"A": 1.0, "B": 0.5, "C": 0.3}


@pytest.fixture
def network():
    from pgmpy.factors.continuous import LinearGaussianCPD

    model = LinearGaussianBayesianNetwork([("A", "C"), ("B", "C")])
    model.add_cpds(LinearGaussianCPD("A", BETA["A"], STD["A"]), LinearGaussianCPD("B", BETA["B"], STD["B"]),
                   LinearGaussianCPD("C", BETA["C"], STD["C"], ["A", "B"]))
    return model


def site_beta(seed: int) -> dict[str, np.ndarray]:
    """Site ``seed``'s coefficients: :data:`BETA` with every entry shifted by N(0, 0.3^2)."""
    rng = np.random.default_rng(seed + 1000)
    return {name: np.asarray(beta) + 0.3 * rng.standard_normal(len(beta)) for name, beta in BETA.items()}


def rows(count: int, seed: int) -> pd.DataFrame:
    """``count`` rows of site ``seed`` (coefficients :func:`site_beta`)."""
    rng, beta = np.random.default_rng(seed), site_beta(seed)
    a = beta["A"][0] + STD["A"] * rng.standard_normal(count)
    b = beta["B"][0] + STD["B"] * rng.standard_normal(count)
    c = beta["C"][0] + beta["C"][1] * a + beta["C"][2] * b + STD["C"] * rng.standard_normal(count)
    return pd.DataFrame({"A": a, "B": b, "C": c})


def conjugate_posterior(design: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray, float, float]:
    """The textbook Normal-Inverse-Gamma update of the Linear spec's default prior (m = 0, Lambda = I, a = 2, b = 1)."""
    precision = np.eye(design.shape[1]) + design.T @ design
    mean = np.linalg.solve(precision, design.T @ target)
    return (mean, np.linalg.inv(precision), 2 + len(target) / 2,
            1 + 0.5 * (target @ target - mean @ precision @ mean))


def test_untrained_posterior_is_the_conjugate_update_and_exports_to_pgmpy(network):
    learner = GaussianNetMetaLearner(network, task_factors=0, message_passing=False)  # each variable on its own
    support = rows(7, seed=1)
    posterior = learner.posterior([support])["C"]
    design = np.c_[np.ones(7), support[["A", "B"]].to_numpy()]
    mean, spread, shape, scale = conjugate_posterior(design, support["C"].to_numpy())
    np.testing.assert_allclose(posterior.mean[0], mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(posterior.spread[0], spread, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose([posterior.shape[0], posterior.scale[0]], [shape, scale], rtol=1e-4)
    np.testing.assert_allclose(posterior.covariance[0], scale / (shape - 1) * spread, rtol=1e-4, atol=1e-6)

    exported = learner.adapt(support)
    assert isinstance(exported, LinearGaussianBayesianNetwork)
    assert exported.check_model()
    cpd = exported.get_cpds("C")
    assert list(cpd.evidence) == ["A", "B"]
    np.testing.assert_allclose(cpd.beta, mean, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cpd.std**2, scale / (shape - 1), rtol=1e-4)
    simulated = exported.simulate(50, seed=0)
    assert simulated.shape == (50, 3) and np.isfinite(simulated.to_numpy()).all()


def test_predictive_log_likelihood_is_the_student_t():
    posterior = GaussianNetMetaLearner(nx.DiGraph([("A", "C")]), message_passing=False).posterior(
        [pd.DataFrame({"A": [0.3, -1.0], "C": [1.0, 0.2]})])["C"]
    design, target = np.array([[[1.0, 0.7]]]), np.array([[0.4]])
    shape, scale = posterior.shape[0], posterior.scale[0]
    squared_scale = scale / shape * (1 + design[0, 0] @ posterior.spread[0] @ design[0, 0])
    location = design[0, 0] @ posterior.mean[0]
    freedom = 2 * shape
    expected = (gammaln((freedom + 1) / 2) - gammaln(freedom / 2) - 0.5 * np.log(freedom * np.pi * squared_scale)
                - (freedom + 1) / 2 * np.log1p((0.4 - location) ** 2 / (freedom * squared_scale)))
    np.testing.assert_allclose(posterior.log_likelihood(design, target)[0, 0], expected, rtol=1e-6)


def test_meta_fit_reports_in_column_units_and_recovers_a_site_from_many_rows(network):
    sites = [rows(60, seed) for seed in range(12)]
    learner = GaussianNetMetaLearner(network)
    summary = learner.meta_fit(sites, steps=3, val_every=3, meta_batch_size=4, query_shots=10, progress=False)
    assert summary["steps"] == 3
    # the training rows' means: C has mean 0.5 + 1.5 * 2 - 2 * (-1) = 5.5 at the central coefficients
    assert learner.column_mean[2] == pytest.approx(5.5, abs=1.0)
    exported = learner.adapt(rows(3000, seed=99))
    assert exported.check_model()
    for name in ("A", "B", "C"):
        cpd = exported.get_cpds(name)
        np.testing.assert_allclose(cpd.beta, site_beta(99)[name], atol=0.05)
        assert cpd.std == pytest.approx(STD[name], rel=0.1)
    few, many = learner.posterior([rows(3, 5), rows(300, 5)])["C"].covariance
    assert np.all(np.linalg.eigvalsh(few) > 0)
    assert np.trace(many) < np.trace(few)


def test_posterior_follows_a_change_of_units(network):
    """Data in other units (x -> 10 x + 50) give the same fit, in those units: the export's un-standardising."""
    sites = [rows(40, seed) for seed in range(6)]
    plain, scaled = GaussianNetMetaLearner(network), GaussianNetMetaLearner(network)
    plain.meta_fit(sites, steps=0, progress=False)
    scaled.meta_fit([10 * site + 50 for site in sites], steps=0, progress=False)
    support = rows(5, seed=42)
    a, b = plain.posterior([support])["C"], scaled.posterior([10 * support + 50])["C"]
    # C = w0 + w1 A + w2 B in the plain units is 10 w0 + 50 - 50 (w1 + w2) + w1 A' + w2 B' in the scaled ones
    expected = np.r_[10 * a.mean[0, 0] + 50 - 50 * a.mean[0, 1:].sum(), a.mean[0, 1:]]
    np.testing.assert_allclose(b.mean[0], expected, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(b.noise_variance, 100 * a.noise_variance, rtol=1e-4)


def sites_of_a_line(seed: int, sites: int, rows: int, spread: list[float]) -> np.ndarray:
    """``[sites, rows, 2]`` columns ``(x, y)``: ``y = w0 + w1 x + 0.5 e`` with each site's ``(w0, w1)``
    drawn from ``N((1, -0.5), diag(spread)^2)``."""
    rng = np.random.default_rng(seed)
    weights = np.array([1.0, -0.5]) + rng.standard_normal((sites, 2)) * spread
    x = rng.standard_normal((sites, rows))
    y = weights[:, :1] + weights[:, 1:] * x + 0.5 * rng.standard_normal((sites, rows))
    return np.stack([x, y], -1)


def test_empirical_bayes_prior_matches_the_sites_spread():
    """Sites whose coefficients are N(m, C) with known noise: the prior's mean, s^2 Lambda^-1 and noise come back."""
    prior = empirical_bayes_prior(site_statistics(sites_of_a_line(seed=0, sites=400, rows=200, spread=[0.3, 0.2]),
                                                  [[], [0]])[1])
    np.testing.assert_allclose(prior.mean, [1.0, -0.5], atol=0.05)
    covariance = prior.scale / prior.shape * np.linalg.inv(prior.precision)
    np.testing.assert_allclose(np.sqrt(np.diag(covariance)), [0.3, 0.2], rtol=0.15)
    assert prior.scale / prior.shape == pytest.approx(0.25, rel=0.05)
    assert prior.shape > 50  # the noise is the same at every site


def test_marginal_likelihood_prior_recovers_the_sites_prior_from_few_rows_each():
    """Sites of 6 rows: their own fits are poor, the marginal likelihood of all rows still finds the prior."""
    statistics = site_statistics(sites_of_a_line(seed=1, sites=600, rows=6, spread=[0.4, 0.3]), [[], [0]])
    start = [empirical_bayes_prior(s) for s in statistics]
    prior = marginal_likelihood_priors(statistics, start)[1]
    np.testing.assert_allclose(prior.mean, [1.0, -0.5], atol=0.05)
    covariance = prior.scale / prior.shape * np.linalg.inv(prior.precision)
    np.testing.assert_allclose(np.sqrt(np.diag(covariance)), [0.4, 0.3], rtol=0.15)
    assert abs(covariance[0, 1]) < 0.02
    assert prior.scale / prior.shape == pytest.approx(0.25, rel=0.1)


def test_message_passing_reads_a_precise_node():
    """A node whose support loss (a negative log-density) is far below -1 still gives a finite posterior."""
    rng = np.random.default_rng(0)
    sites = []
    for _ in range(6):
        a = rng.standard_normal(30)
        slope = 1 + 0.1 * rng.standard_normal()
        sites.append(pd.DataFrame({"A": a, "C": slope * a + 0.001 * rng.standard_normal(30)}))
    learner = GaussianNetMetaLearner(nx.DiGraph([("A", "C")]))
    learner.meta_fit(sites, steps=0, progress=False)
    posterior = learner.posterior([sites[0].iloc[:5]])["C"]
    assert np.isfinite(posterior.mean).all() and np.isfinite(posterior.scale).all()


def test_bad_input_is_a_named_error(network):
    learner = GaussianNetMetaLearner(network)
    with pytest.raises(DataError, match="DataFrame"):
        learner.adapt(rows(3, 0).to_numpy())
    with pytest.raises(DataError, match="not a number"):
        learner.adapt(pd.DataFrame({"A": ["x"], "B": [1.0], "C": [0.0]}))
    with pytest.raises(DataError, match="no observed value"):
        learner.posterior([pd.DataFrame({"A": [np.nan]})])
    with pytest.raises(GraphError, match="structure must be"):
        GaussianNetMetaLearner(42)
    with pytest.raises(DataError, match="at least 2"):
        learner.meta_fit([rows(10, 0)], progress=False)


def test_exported_from_the_package():
    assert graphmeta.GaussianNetMetaLearner is GaussianNetMetaLearner


def test_save_and_load_round_trip(tmp_path, network):
    """The loaded learner gives the same posteriors, in the same column units, as the one saved."""
    learner = GaussianNetMetaLearner(network, message_channels=8)
    learner.meta_fit([10 * rows(40, seed) + 50 for seed in range(8)], steps=3, val_every=3, meta_batch_size=4,
                     query_shots=10, progress=False)
    path = learner.save(tmp_path / "gaussian.pt")
    assert torch.load(path, weights_only=True)["config"]["message_channels"] == 8
    again = GaussianNetMetaLearner.load(path)
    assert again.shots == learner.shots and again.graph == learner.graph
    support = [10 * rows(5, seed=77) + 50]
    for name, expected in learner.posterior(support).items():
        loaded = again.posterior(support)[name]
        np.testing.assert_allclose(loaded.mean, expected.mean, rtol=1e-6)
        np.testing.assert_allclose(loaded.covariance, expected.covariance, rtol=1e-6)
    assert again.adapt(support[0]).get_cpds("C").beta == pytest.approx(learner.adapt(support[0]).get_cpds("C").beta)


def test_a_corrupt_or_foreign_checkpoint_is_a_checkpoint_error_naming_the_file(tmp_path, network):
    (tmp_path / "broken.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(graphmeta.CheckpointError, match="broken.pt"):
        GaussianNetMetaLearner.load(tmp_path / "broken.pt")
    BayesNetMetaLearner("asia").save(tmp_path / "discrete.pt")
    with pytest.raises(graphmeta.CheckpointError, match="discrete.pt"):
        GaussianNetMetaLearner.load(tmp_path / "discrete.pt")
    state = torch.load(GaussianNetMetaLearner(network).save(tmp_path / "gaussian.pt"), weights_only=True)
    torch.save({**state, "column_std": state["column_std"][:2]}, tmp_path / "units.pt")
    with pytest.raises(graphmeta.CheckpointError, match="units.pt.*column units"):
        GaussianNetMetaLearner.load(tmp_path / "units.pt")
