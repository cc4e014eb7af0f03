"""The statistician's baselines for a table: the BLUP is the mixed model's, group effects are used, masks kept."""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import graphmeta as gm
from graphmeta.data import Split, TaskBatch
from graphmeta.families import DataFrameFamily
from graphmeta.train.classical_baselines import (
    CLASSICAL_METHODS,
    classical_baselines,
    fit_mixed_model,
    gaussian_deviation,
    independent_columns,
    logistic_fit,
)
from graphmeta.train.evaluation import METHODS, evaluate_methods

GRAPH = {"dependencies": [["dose", "response"], ["arm", "response"]]}


def grouped_table(groups: int = 40, rows: int = 20, intercept_sd: float = 3.0, slope_sd: float = 1.0,
                  seed: int = 0) -> pd.DataFrame:
    """Sites whose response has its own intercept and dose slope (strong group effects), plus an arm effect."""
    rng = np.random.default_rng(seed)
    frames = []
    for site in range(groups):
        dose = rng.normal(0.0, 1.0, rows)
        arm = rng.choice(["a", "b"], rows)
        response = (rng.normal(0.0, intercept_sd) + (1.0 + rng.normal(0.0, slope_sd)) * dose
                    + 0.5 * (arm == "b") + rng.normal(0.0, 0.5, rows))
        frames.append(pd.DataFrame({"site": f"s{site}", "dose": dose, "arm": arm, "response": response}))
    return pd.concat(frames, ignore_index=True)


@pytest.fixture(scope="module")
def family() -> DataFrameFamily:
    return DataFrameFamily(grouped_table(), task_column="site", graph=GRAPH, seed=0)


@pytest.fixture(scope="module")
def batches(family) -> tuple[TaskBatch, TaskBatch]:
    count, rows = family.fixed_tasks("test")
    val_count, _ = family.fixed_tasks("val")
    return family.sample(count, 5, rows, "test", seed=1), family.sample(val_count, 5, rows, "val", seed=2)


def test_the_blup_is_the_mixed_models_random_effects_of_a_training_group():
    from statsmodels.regression.mixed_linear_model import MixedLM

    table = grouped_table(groups=20, rows=10, seed=3)
    design = np.column_stack([np.ones(len(table)), table["dose"]])
    groups = table["site"].str[1:].astype(int).to_numpy()
    target = table["response"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = MixedLM(target, design, groups, exog_re=design).fit(reml=True, method=["powell", "lbfgs"])
    beta, covariance, noise, random, note = fit_mixed_model(design, target, groups, [0, 1])
    assert random == [0, 1] and note == "random intercept + 1 slope"
    np.testing.assert_allclose(covariance, fit.cov_re, rtol=1e-3, atol=1e-4)
    for group in (0, 7, 19):
        rows = groups == group
        deviation, spread = gaussian_deviation(design[rows][None], (target - design @ beta)[rows][None],
                                               np.ones((1, rows.sum()), dtype=bool), covariance, noise)
        np.testing.assert_allclose(deviation[0], fit.random_effects[group].to_numpy(), rtol=1e-3, atol=1e-4)
        # the closed form with G^-1, written out for this group
        precision = np.linalg.inv(covariance) + design[rows].T @ design[rows] / noise
        expected = np.linalg.solve(precision, design[rows].T @ (target - design @ beta)[rows] / noise)
        np.testing.assert_allclose(deviation[0], expected, rtol=1e-8)
        np.testing.assert_allclose(spread[0], np.linalg.inv(precision), rtol=1e-8)


def test_a_singular_covariance_needs_no_inverse():
    """G = 0 (no group effect): the deviation is 0 whatever the rows say."""
    rows = np.random.default_rng(0).normal(size=(3, 4, 2))
    deviation, spread = gaussian_deviation(rows, np.ones((3, 4)), np.ones((3, 4), dtype=bool), np.zeros((2, 2)), 1.0)
    assert np.all(deviation == 0) and np.all(spread == 0)


def test_the_mixed_model_beats_pooled_least_squares_on_strong_group_effects(family, batches):
    tasks, validation = batches
    scores, settings = classical_baselines(family.graph, family.grouped_rows("train"), tasks, validation)
    response = family.graph.names.index("response")
    mse = {method: scores[method]["mse"][:, response] for method in CLASSICAL_METHODS}
    nll = {method: scores[method]["nll"][:, response] for method in CLASSICAL_METHODS}
    assert mse["mixed_model"].mean() < 0.5 * mse["pooled_linear"].mean()
    assert nll["mixed_model"].mean() < nll["pooled_linear"].mean()
    assert (mse["mixed_model"] < mse["pooled_linear"]).float().mean() > 0.8
    assert torch.equal(scores["mixed_model"]["loss"][:, response], mse["mixed_model"])
    assert "response: random intercept + 1 slope" in settings["mixed_model"]
    arm = family.graph.names.index("arm")  # a classification node: cross-entropy and accuracy, no MSE
    for method in CLASSICAL_METHODS:
        assert scores[method]["mse"][:, arm].isnan().all() and not scores[method]["accuracy"][:, arm].isnan().any()


def with_support_cell(batch: TaskBatch, task: int, shot: int, node: int, column: int, value: float | None,
                      observed: bool) -> TaskBatch:
    """``batch`` with one support cell (node ``node``, value column ``column``) changed."""
    values, mask = batch.support.values.clone(), batch.support.observed.clone()
    if value is not None:
        values[task, shot, column] = value
    mask[task, shot, node] = observed
    support = Split(batch.support.features, values, mask)
    return dataclasses.replace(batch, support=support)


def test_a_missing_cell_is_not_used(family, batches):
    tasks, validation = batches
    training = family.grouped_rows("train")
    response = family.graph.names.index("response")
    column = family.layout.value_slices["response"].start
    assert tasks.support.observed[0, 0, response]
    missing = with_support_cell(tasks, 0, 0, response, column, None, observed=False)
    garbage = with_support_cell(tasks, 0, 0, response, column, 1e6, observed=False)
    scores = [classical_baselines(family.graph, training, batch, validation)[0] for batch in (tasks, missing, garbage)]
    for method in CLASSICAL_METHODS:
        for key in ("loss", "accuracy", "mse", "nll"):
            torch.testing.assert_close(scores[1][method][key], scores[2][method][key], rtol=0, atol=0, equal_nan=True)
    assert scores[0]["mixed_model"]["mse"][0, response] != scores[1]["mixed_model"]["mse"][0, response]
    # the other tasks never see task 0's rows
    torch.testing.assert_close(scores[0]["mixed_model"]["mse"][1:], scores[1]["mixed_model"]["mse"][1:], rtol=0,
                               atol=0, equal_nan=True)


def test_a_task_without_query_rows_of_a_node_scores_nan(family, batches):
    tasks, validation = batches
    mask = tasks.query.observed.clone()
    mask[2, :, family.graph.names.index("response")] = False
    hidden = dataclasses.replace(tasks, query=Split(tasks.query.features, tasks.query.values, mask))
    scores, _ = classical_baselines(family.graph, family.grouped_rows("train"), hidden, validation)
    response = family.graph.names.index("response")
    for method in CLASSICAL_METHODS:
        assert scores[method]["mse"][2, response].isnan() and not scores[method]["mse"][3, response].isnan()


def test_dependent_design_columns_are_dropped():
    """A one-hot parent's states sum to the constant: its last state is left out."""
    states = np.eye(3)[np.random.default_rng(0).integers(0, 3, 50)]
    design = np.column_stack([np.ones(50), np.random.default_rng(1).normal(size=50), states])
    assert independent_columns(design) == [0, 1, 2, 3]


def test_logistic_regression_recovers_the_state_frequencies():
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=4000, p=[0.2, 0.3, 0.5])
    weights = logistic_fit(np.ones((1, 4000, 1)), labels[None], np.ones((1, 4000), dtype=bool),
                           np.zeros((1, 1, 3)), 1e-3)
    probabilities = np.exp(weights[0, 0]) / np.exp(weights[0, 0]).sum()
    np.testing.assert_allclose(probabilities, np.bincount(labels) / 4000, atol=1e-6)


def test_the_evaluation_of_a_table_shows_the_classical_rows(family, batches):
    tasks, validation = batches
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph)
    report = evaluate_methods(model, tasks, 1, validation, 64, 0, "grouped", "test", scratch_steps=1,
                              scratch_lr=0.01, grouped_rows=family.grouped_rows("train"))
    for method in CLASSICAL_METHODS:
        assert method in report.methods and method in METHODS
        assert report.methods[method].loss.shape == (tasks.num_tasks, len(family.graph))
    assert "random intercept" in report.label("mixed_model")
    assert "linear mixed model" in report.table()
