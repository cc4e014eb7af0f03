"""The empirical-Bayes start of the Linear learner: on grouped rows drawn from a known random
intercept and slope, the start recovers that prior, and the learner adapted from it predicts
a new group's query rows as well as the true prior's BLUP."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import graphmeta as gm
from graphmeta.train.trainer import empirical_bayes_start
from tests.learners.test_linear import node_prior

#: w_s = [intercept, slope] ~ N(MEAN, COVARIANCE) per group; noise N(0, NOISE^2).
MEAN = np.array([1.0, -2.0])
COVARIANCE = np.array([[0.5, 0.2], [0.2, 0.3]])
NOISE = 0.5


def grouped(groups: int, rows: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``x, y [groups, rows, 1]`` of the random intercept and slope model."""
    rng = np.random.default_rng(seed)
    w = rng.multivariate_normal(MEAN, COVARIANCE, groups)
    x = rng.normal(size=(groups, rows, 1))
    y = w[:, None, :1] + x * w[:, None, 1:] + NOISE * rng.normal(size=(groups, rows, 1))
    return torch.as_tensor(x), torch.as_tensor(y)


def graph() -> gm.TaskGraph:
    return gm.TaskGraph().add_subtask("y", in_dim=1, learner="linear")


def started_model(groups: int = 400, rows: int = 30) -> gm.GraphMetaLearner:
    model = gm.GraphMetaLearner(graph(), message_passing=False).double()
    x, y = grouped(groups, rows, seed=0)
    split = gm.TaskBatch.from_tensors(graph(), {"y": (x, y)}, {"y": (x, y)}).support
    model.banks[0].empirical_bayes_start(split)
    return model


def true_prior_model() -> gm.GraphMetaLearner:
    """The generating prior as a Normal-Inverse-Gamma: ``m``, ``Lambda = NOISE^2 COVARIANCE^-1``,
    the noise variance pinned at ``NOISE^2`` by ``a = 10^4``."""
    model = gm.GraphMetaLearner(graph(), message_passing=False).double()
    bank = model.banks[0]
    with torch.no_grad():
        bank.theta["mean"][0, :, 0] = torch.as_tensor(MEAN)
        precision = torch.as_tensor(NOISE**2 * np.linalg.inv(COVARIANCE))
        bank.theta["precision_factor"][0] = bank.packed(torch.linalg.cholesky(precision))
        bank.theta["log_shape"].fill_(math.log(1e4))
        bank.theta["log_scale"].fill_(math.log(1e4 * NOISE**2))
    return model


def test_the_start_recovers_the_groups_prior():
    """400 groups of 30 rows: fixed effects within 0.1, the implied coefficient covariance
    ``(b / a) Lambda^-1`` within 0.08 of the true one and the noise variance within 5%; the
    spec's untouched prior (m = 0, Lambda = I) is far from it."""
    untouched = node_prior(gm.GraphMetaLearner(graph(), message_passing=False).double(), "y")
    prior = node_prior(started_model(), "y")
    noise = float(prior["scale"][0] / prior["shape"][0])
    covariance = noise * np.linalg.inv(prior["precision"])
    assert np.abs(prior["mean"][:, 0] - MEAN).max() < 0.1, prior["mean"]
    assert np.abs(covariance - COVARIANCE).max() < 0.08, covariance
    assert abs(noise / NOISE**2 - 1) < 0.05, noise
    assert np.abs(untouched["mean"][:, 0] - MEAN).max() > 1.5


def test_adapted_from_the_start_it_predicts_like_the_true_priors_blup():
    """New groups, 3 support rows each: the query MSE of the learner adapted from the start is
    within 2% of the true prior's (the BLUP's), far below least squares on the support alone."""
    x, y = grouped(1000, 23, seed=1)
    batch = gm.TaskBatch.from_tensors(graph(), {"y": (x[:, :3], y[:, :3])}, {"y": (x[:, 3:], y[:, 3:])})

    def query_mse(model: gm.GraphMetaLearner) -> float:
        return float(model.adapt(batch).evaluate(batch.query)["mse"].mean())

    blup, started = query_mse(true_prior_model()), query_mse(started_model())
    z = torch.cat([torch.ones_like(x[:, :3]), x[:, :3]], -1)
    own_fit = torch.linalg.lstsq(z, y[:, :3]).solution
    own = float((torch.cat([torch.ones_like(x[:, 3:]), x[:, 3:]], -1) @ own_fit - y[:, 3:]).square().mean())
    assert abs(started / blup - 1) < 0.02, (started, blup)
    assert own > 1.3 * blup, (own, blup)


def test_the_trainer_starts_a_dataframe_familys_linear_prior_and_the_spec_can_opt_out(tmp_path):
    """A family of grouped rows and one meta-step: the Trainer's start moves the prior mean's slope
    from 0 to the groups' (about -0.9 in standardised units); a spec with ``empirical_bayes=False``
    keeps its prior (one Adam step moves it by about the outer rate only)."""
    x, y = grouped(40, 15, seed=2)
    table = pd.concat([pd.DataFrame({"group": f"g{s}", "x": x[s, :, 0].numpy(), "y": y[s, :, 0].numpy()})
                       for s in range(40)])
    for learner, moved in (("linear", True), ({"type": "linear", "empirical_bayes": False}, False)):
        family = gm.DataFrameFamily(table, task_column="group", features={"y": ["x"]}, columns=("y",),
                                    graph={"subtasks": {"y": {"learner": learner}}}, seed=0)
        model = gm.GraphMetaLearner(family.graph, message_passing=False)
        gm.Trainer(model, family, steps=1, run_dir=str(tmp_path), name=str(moved), progress=False).fit()
        slope = float(node_prior(model, "y")["mean"][1, 0])
        assert (slope < -0.5) == moved, slope


def test_a_family_without_grouped_rows_leaves_the_prior_as_it_was():
    model = gm.GraphMetaLearner(graph(), message_passing=False)
    before = {key: value.clone() for key, value in model.state_dict().items()}
    empirical_bayes_start(model, gm.load_family("sinusoid"))
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())


def test_features_constant_within_each_group_keep_the_start_finite(tmp_path):
    """The RAND sample's plan features (incentive, deductible) are constant within each plan, so
    their slopes move with the intercept and the marginal likelihood is flat toward an unbounded
    between-plan variance; the precision's floor keeps the posterior solvable (without it the first
    meta-loss was NaN)."""
    root = Path(__file__).resolve().parents[2]
    table = pd.read_csv(root / "examples" / "data" / "rand_hie_sample.csv")
    family = gm.DataFrameFamily(table, task_column="plan", features={"visits": ["incentive", "deductible"]},
                                graph=str(root / "examples" / "data" / "rand_hie_graph.yaml"),
                                test_tasks=["coins95"], val_tasks=["coins50"], learner="auto")
    assert family.graph.subtask("visits").learner == gm.Linear()
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.1)
    trainer = gm.Trainer(model, family, steps=2, shots=20, query_shots=30, val_every=2, run_dir=str(tmp_path),
                         progress=False)
    trainer.fit()
    assert math.isfinite(trainer.best_loss)
