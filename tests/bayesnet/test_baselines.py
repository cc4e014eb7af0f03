"""The classical estimates: Dirichlet posterior (against pgmpy), pooled empirical Bayes, the latent posterior."""

from __future__ import annotations

import numpy as np
import pandas as pd

import graphmeta
from graphmeta.bayesnet import NetworkStructure
from graphmeta.bayesnet.baselines import PooledEmpiricalBayes, dirichlet_posterior, latent_posterior


def test_dirichlet_posterior_matches_pgmpy(tiny, tiny_structure):
    from pgmpy.models import DiscreteBayesianNetwork
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator

    frame = pd.DataFrame({"A": ["lo", "hi", "hi"], "B": ["no", "yes", "yes"], "C": ["x", "z", "y"]})
    counts = tiny_structure.counts(tiny_structure.encode([frame]))[0]
    ours = dirichlet_posterior(counts, 0.5 * ~tiny_structure.table.padding())
    fitted = DiscreteBayesianNetwork(tiny.edges()).fit(frame, estimator=DiscreteBayesianEstimator(
        state_names=tiny_structure.states, prior_type="dirichlet", pseudo_counts=0.5))
    np.testing.assert_allclose(ours, tiny_structure.pack_network(fitted))


def test_pooled_empirical_bayes_finds_the_family_concentration():
    family = graphmeta.load_family("asia-dirichlet", alpha=30.0)
    structure = NetworkStructure.from_pgmpy("asia")
    train = structure.encode(family.sample_dataframes(60, 400, "train", seed=0))
    fitted = PooledEmpiricalBayes.fit(structure, train[:40], train[40:], shots=10)
    assert 10 < fitted.concentration < 100
    reference = structure.table.pack(family.theta_star)
    assert np.abs(fitted.frequencies - reference).max() < 0.1  # rare configurations are seen a few times only
    # over several support sizes the family's one concentration still fits them all
    several = PooledEmpiricalBayes.fit(structure, train[:40], train[40:], shots=[1, 10, 100])
    assert 10 < several.concentration < 100
    assert PooledEmpiricalBayes.fit(structure, train[:40], train[40:], shots=[10]).concentration == fitted.concentration


def test_latent_posterior_recovers_the_task():
    family = graphmeta.load_family("asia-latent")
    structure = NetworkStructure.from_pgmpy("asia")
    codes = structure.encode(family.sample_dataframes(8, 3000, "test", seed=0))
    truth = structure.table.pack(family.task_cpds(8, "test", 0))
    theta_star = structure.table.pack(family.theta_star)
    weights = np.moveaxis(structure.table.pack({v: np.moveaxis(w, -1, 0) for v, w in family.latent_weights.items()}),
                          0, -1)
    with np.errstate(divide="ignore"):
        log_theta_star = np.where(structure.table.padding(), -np.inf, np.log(theta_star))
    tables = latent_posterior(log_theta_star, weights, family.scale, structure.counts(codes))
    np.testing.assert_allclose(tables.sum(-1), 1.0)
    assert np.abs(tables - truth).max() < 0.05
