"""The linear-Gaussian network family: standardisation, the two perturbations, regression recovery."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from graphmeta import ConfigError, GraphError
from graphmeta.families import GaussianNetFamily, batch_from_dataframes


@pytest.fixture(scope="module")
def ecoli_latent() -> GaussianNetFamily:
    return GaussianNetFamily("ecoli70", prior="latent", seed=1)


def test_graph_is_the_network_with_regression_nodes(ecoli_latent):
    graph = ecoli_latent.graph
    assert graph.name == "ecoli70" and len(graph) == 46 and len(graph.edges) == 70
    assert all(graph.subtask(n).kind == "regression" and graph.subtask(n).in_dim == 0 for n in graph.names)


@pytest.mark.parametrize("network", ["ecoli70", "magic-niab"])
def test_the_reference_network_is_standardised(network):
    values = GaussianNetFamily(network, scale=0.0).sample(4, 5000, 1, seed=0).support.values
    flat = values.reshape(-1, values.shape[-1])
    assert flat.mean(0).abs().max() < 0.1  # magic-niab's raw means reach 77
    assert (flat.std(0) - 1).abs().max() < 0.1


def test_least_squares_on_many_rows_recovers_the_task_coefficients(ecoli_latent):
    family = ecoli_latent
    x = family.sample(1, 40_000, 1, split="val", seed=2).support.values[0].double().numpy()
    truth = family.task_cpds(1, split="val", seed=2)
    index = family.layout.index
    for name in family.graph.names:
        design = np.column_stack([np.ones(len(x)), *(x[:, index[p]] for p in family.evidence[name])])
        fitted, residual, *_ = np.linalg.lstsq(design, x[:, index[name]], rcond=None)
        np.testing.assert_allclose(fitted, truth[name][0], atol=0.03, err_msg=name)
        assert np.sqrt(residual[0] / len(x)) == pytest.approx(family.noise_std[name], rel=0.03)


def test_latent_prior_shifts_all_coefficients_by_one_shared_latent(ecoli_latent):
    family = ecoli_latent
    params = family.task_params(5, seed=0)
    cpds = family.task_cpds(5, seed=0)
    for name, star in family.beta_star.items():
        shift = family.scale * np.einsum("jd,td->tj", family.latent_weights[name], params["latent"])
        np.testing.assert_allclose(cpds[name], star + shift, atol=1e-12)


def test_both_priors_perturb_each_coefficient_by_the_same_scale():
    for prior in ("independent", "latent"):
        family = GaussianNetFamily("ecoli70", prior=prior, scale=0.3)
        cpds = family.task_cpds(3000, seed=0)
        shift = np.concatenate([c - family.beta_star[name] for name, c in cpds.items()], axis=1)
        assert shift.mean() == pytest.approx(0, abs=0.02) and shift.std() == pytest.approx(0.3, rel=0.1), prior
    assert GaussianNetFamily("ecoli70").latent_weights is None


def test_dataframes_and_networks_match_the_batch(ecoli_latent):
    family = ecoli_latent
    frames = family.sample_dataframes(2, 9, seed=6)
    batch = family.sample(2, 4, 5, seed=6)
    assert list(frames[0].columns) == family.graph.names
    again = batch_from_dataframes(family.graph, [f.iloc[:4] for f in frames], [f.iloc[4:] for f in frames])
    assert torch.equal(again.support.values, batch.support.values)
    assert torch.equal(again.query.values, batch.query.values)
    networks = family.task_networks(2, seed=6)
    cpd = networks[1].get_cpds("sucA")
    assert cpd.evidence == family.evidence["sucA"]
    np.testing.assert_allclose(cpd.beta, family.task_cpds(2, seed=6)["sucA"][1])
    assert family.reference_network().check_model()


def test_bad_arguments():
    with pytest.raises(GraphError, match="DiscreteBayesianNetwork"):
        GaussianNetFamily("asia")
    with pytest.raises(ConfigError, match="did you mean 'latent'"):
        GaussianNetFamily(prior="latnt")
    with pytest.raises(ConfigError, match="scale"):
        GaussianNetFamily(scale=-0.1)
