"""The shift diagnostics: meta-training records every continuous input column's mean and spread,
and adapting to support inputs far beyond them warns once, naming the nodes and tasks."""

from __future__ import annotations

import warnings

import pytest
import torch

import graphmeta as gm
from graphmeta.adapt.input_shift import MIN_ROWS, SHIFT_LIMIT, InputStatistics
from tests.adapt.test_support_guard import chain_graph, chain_tasks, trained_chain_model


def test_the_running_statistics_are_the_pooled_ones_of_every_present_row():
    """Three batches merged one by one: each column's count, mean and spread equal those of all its
    rows at once (a value column only where its node is observed)."""
    graph = chain_graph()
    statistics = InputStatistics(graph).double()
    splits = [chain_tasks(2 + seed, 3 + seed, float(seed), seed).support.to(dtype=torch.float64) for seed in range(3)]
    splits[1].observed[0, :2, 0] = False  # u unobserved in two rows: its value column skips them
    for split in splits:
        statistics.update(split)
    rows = torch.cat([torch.cat([s.features, s.values], -1).flatten(0, 1) for s in splits])
    u_present = torch.cat([s.observed[..., 0].flatten() for s in splits])
    columns = [rows[:, :3], rows[u_present, 3:4], rows[:, 4:5]]  # the features, u's value, v's value
    pooled = [(len(c), c.mean(0), c.var(0, unbiased=False)) for c in columns]
    count = torch.cat([torch.full((c.shape[1],), float(n)) for (n, _, _), c in zip(pooled, columns)])
    torch.testing.assert_close(statistics.count, count.double())
    torch.testing.assert_close(statistics.mean, torch.cat([m for _, m, _ in pooled]))
    torch.testing.assert_close(statistics.squared_deviations / statistics.count, torch.cat([v for _, _, v in pooled]))


def test_a_task_far_beyond_the_training_inputs_warns_once_naming_its_nodes_and_task():
    model = trained_chain_model()
    held_out = chain_tasks(3, 10, 0.0, 2000)
    model.adapt(held_out)  # training-like tasks: silent (a warning would fail the test)
    shifted = chain_tasks(1, 10, 8.0, 2001)
    features = held_out.support.features.clone()
    features[1] = shifted.support.features[0]  # task 1's own features 8 deviations out
    batch = gm.TaskBatch(held_out.graph, type(held_out.support)(features, held_out.support.values,
                                                                held_out.support.observed), held_out.query)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        adapted = model.adapt(batch, steps=5)
    shift_warnings = [w for w in caught if issubclass(w.category, gm.DistributionShiftWarning)]
    assert len(shift_warnings) == 1
    message = str(shift_warnings[0].message)
    assert "node 'u' in task 1 (" in message and "node 'v' in task 1 (" in message and "task 0" not in message
    assert shift_warnings[0].filename == __file__  # attributed to the caller of adapt
    assert all(torch.isfinite(w).all() for weights in adapted.fast for w in weights.values())


def test_an_untrained_model_and_a_few_rows_judge_nothing():
    model = gm.GraphMetaLearner(chain_graph(), message_passing=False)
    far = chain_tasks(2, 5, 50.0, 3)
    model.adapt(far)  # has seen nothing: no warning
    model.train()
    model.meta_loss(chain_tasks(1, 5, 0.0, 4), metrics=False)  # 10 rows per column, fewer than MIN_ROWS
    assert 0 < float(model.input_statistics.count.max()) < MIN_ROWS
    model.adapt(far)
    model.eval()
    before = model.input_statistics.count.clone()
    model.meta_loss(chain_tasks(4, 5, 0.0, 5), metrics=False)  # evaluation mode records nothing
    assert torch.equal(model.input_statistics.count, before)


def test_the_statistics_are_saved_with_the_model_and_an_older_state_loads_without_them():
    model = trained_chain_model()
    state = model.state_dict()
    assert {"input_statistics.count", "input_statistics.mean", "input_statistics.squared_deviations"} <= set(state)
    fresh = gm.GraphMetaLearner(chain_graph(), inner_steps=1, inner_lr=0.1, message_passing=False)
    fresh.load_state_dict(state)
    far = chain_tasks(1, 10, 2 * SHIFT_LIMIT, 6)
    with pytest.warns(gm.DistributionShiftWarning, match="node 'u' in task 0"):
        fresh.adapt(far)
    older = {key: value for key, value in state.items() if not key.startswith("input_statistics.")}
    fresh.load_state_dict(older)  # a checkpoint written before the statistics: nothing seen
    assert float(fresh.input_statistics.count.sum()) == 0
    fresh.adapt(far)
