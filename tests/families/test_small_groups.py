"""Tables of many small groups: every task with two rows or more trains and is evaluated, each on its own rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import graphmeta as gm
from graphmeta import DataError
from graphmeta.data import Split, TaskBatch
from graphmeta.families import DataFrameFamily
from graphmeta.train import evaluation

GRAPH = {"dependencies": [["dose", "response"], ["group", "response"]]}
#: Group sizes of the table: 2 to 40 rows, most of them small, as in real grouped tables.
SIZES = [2, 2, 3, 3, 4, 4, 5, 5, 6, 7, 8, 9, 10, 12, 14, 17, 20, 25, 32, 40]


def small_groups_table(sizes: list[int] = SIZES, seed: int = 0) -> pd.DataFrame:
    """One site per size; the response moves with the site, dose and group drive it."""
    rng = np.random.default_rng(seed)
    frames = []
    for site, rows in enumerate(sizes):
        dose = rng.normal(10.0, 2.0, rows)
        group = rng.choice(["low", "high"], rows)
        response = 0.5 * dose + 2.0 * (group == "high") + 0.3 * site + rng.normal(0.0, 0.1, rows)
        frames.append(pd.DataFrame({"site": f"s{site}", "dose": dose, "group": group, "response": response}))
    return pd.concat(frames, ignore_index=True)


def small_groups_family(**options) -> DataFrameFamily:
    return DataFrameFamily(small_groups_table(), task_column="site", graph=GRAPH, **options)


def own_rows(split: Split, task: int, rows: int) -> Split:
    """Task ``task`` of ``split`` alone, cut to its own ``rows`` (no padding)."""
    return Split(split.features[task:task + 1, :rows], split.values[task:task + 1, :rows],
                 split.observed[task:task + 1, :rows])


def alone(batch: TaskBatch, task: int) -> TaskBatch:
    return TaskBatch(batch.graph, own_rows(batch.support, task, int(batch.support.task_rows[task])),
                     own_rows(batch.query, task, int(batch.query.task_rows[task])))


# ------------------------------------------------------------------ episodes
def test_an_episode_takes_what_each_task_has_keeping_a_query_row():
    family = small_groups_family(val_tasks=["s1"], test_tasks=["s2"])
    train = family.tasks["train"]
    batch = family.sample(len(train), 10, 15, seed=0)  # every training task once
    tasks = family.task_params(len(train), "train", seed=0)["task"]
    sizes = np.array(list(family.task_sizes.values()))[tasks]
    assert sorted(sizes.tolist()) == sorted(family.task_sizes[name] for name in train)
    support = np.minimum(10, sizes - 1)
    assert batch.support.task_rows.tolist() == support.tolist()
    assert batch.query.task_rows.tolist() == np.minimum(15, sizes - support).tolist()
    assert (batch.support.shots, batch.query.shots) == (10, 15)
    for split in (batch.support, batch.query):  # rows past a task's own are padding: unobserved and zero
        padding = torch.arange(split.shots)[None, :] >= split.task_rows[:, None]
        assert not split.observed[padding].any() and not split.values[padding].any()


def test_a_task_of_one_row_is_left_out_with_one_warning_counting_them():
    table = pd.concat([small_groups_table(), small_groups_table([1, 1], seed=1).assign(site=["a", "b"])])
    with pytest.warns(UserWarning, match=r"2 task\(s\) have a single row, too few for one support and one query row"):
        family = DataFrameFamily(table, task_column="site", graph=GRAPH)
    assert "a" not in family.task_sizes and len(family.task_sizes) == len(SIZES)


def test_training_batches_hold_tasks_of_about_one_size_and_every_task_takes_its_turn():
    family = small_groups_family(val_fraction=0.0, test_fraction=0.1)
    train = family.tasks["train"]
    ranks = {name: r for r, name in enumerate(sorted(train, key=family.task_sizes.get))}
    names = list(family.task_sizes)
    for seed in range(5):
        order = [names[i] for i in family.draw_tasks(len(train), "train", seed)[0]["task"]]
        assert sorted(order) == sorted(train)  # every task once
        for start in range(0, len(order) - 3, 4):
            batch_ranks = [ranks[name] for name in order[start:start + 4]]
            assert max(batch_ranks) - min(batch_ranks) <= 7  # neighbours on the circle of sizes


def test_held_out_tasks_are_a_seeded_permutation_ordered_by_size():
    family = small_groups_family(val_fraction=0.2, test_fraction=0.3)
    test = family.tasks["test"]
    order = [list(family.task_sizes)[i] for i in family.draw_tasks(len(test), "test", 0)[0]["task"]]
    assert sorted(order) == sorted(test)
    assert [family.task_sizes[name] for name in order] == sorted(family.task_sizes[name] for name in test)


def test_frames_of_different_sizes_are_one_task_each():
    family = small_groups_family()
    table = small_groups_table()
    frames = [table[table["site"] == site] for site in ("s0", "s19", "s5")]
    batch = family.batch_from_frames(frames)
    assert batch.num_tasks == 3 and batch.support.task_rows.tolist() == [2, 40, 4]
    one = family.batch_from_frames(frames[1])
    assert one.support.values[0].equal(batch.support.values[1])
    adapted = gm.GraphMetaLearner(family.graph).adapt(batch)
    assert adapted.evaluate(batch)["loss"].isfinite().all()
    with pytest.raises(DataError, match=r"support has 3 task\(s\) but query has 1: give one query DataFrame per"):
        family.batch_from_frames(frames, frames[0])
    with pytest.raises(DataError, match=r"query must be a pandas DataFrame or a list of them \(one per task\), got "
                                        r"dict"):
        family.batch_from_frames(frames, [frames[0], {}, frames[2]])


# -------------------------------------------------------------------- losses
@pytest.fixture
def float64_family():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield small_groups_family(val_tasks=["s1"], test_tasks=["s2"])
    torch.set_default_dtype(previous)


def test_per_task_losses_equal_each_task_alone_on_its_own_rows(float64_family):
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(float64_family.graph, inner_steps=2, inner_lr=0.1).double()
    batch = float64_family.sample(8, [3, 10, 5, 7, 3, 10, 4, 6], 15, seed=1)
    assert len(set(batch.query.task_rows.tolist())) > 1  # tasks of different sizes in one batch
    batched = model.adapt(batch).evaluate(batch)["loss"]
    for t in range(batch.num_tasks):
        task = alone(batch, t)
        torch.testing.assert_close(model.adapt(task).evaluate(task)["loss"][0], batched[t], rtol=1e-13, atol=0)


@pytest.mark.parametrize("weighting", ["task", "row"])
def test_the_meta_loss_weighs_each_task_or_each_row_alike(float64_family, weighting):
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(float64_family.graph, inner_steps=1, inner_lr=0.1,
                                loss_weighting=weighting).double()
    batch = float64_family.sample(len(float64_family.tasks["train"]), 10, 15, seed=2)  # every size
    rows = batch.query.task_rows.double()
    assert rows.min() < rows.max()
    each = torch.stack([model.meta_loss(alone(batch, t), metrics=False)[0] for t in range(batch.num_tasks)])
    weight = torch.ones_like(rows) if weighting == "task" else rows
    expected = (each * weight).sum() / weight.sum()
    torch.testing.assert_close(model.meta_loss(batch, metrics=False)[0], expected, rtol=1e-12, atol=0)


# --------------------------------------------------------------- whole runs
def test_a_table_of_small_groups_trains_evaluates_and_tunes_with_the_defaults(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "POOLED_MAX_STEPS", 4)
    monkeypatch.setattr(evaluation, "POOLED_CHECK_EVERY", 2)
    monkeypatch.setattr(evaluation, "SCRATCH_STEPS", (1, 3))
    path = tmp_path / "small.csv"
    small_groups_table().to_csv(path, index=False)
    family = {"data": str(path), "task_column": "site", "graph": GRAPH}
    train = {"steps": 4, "shots": [3, 10], "val_every": 2, "val_tasks": 4, "run_dir": str(tmp_path / "runs"),
             "progress": False}
    trainer = gm.Trainer.from_config({"family": family, "train": {**train, "name": "small"},
                                      "evaluate": {"scratch_steps": 2, "ablation": False}})
    trainer.fit()
    held_out = len(trainer.family.tasks["test"])
    report = trainer.evaluate(num_tasks=held_out)
    assert report.num_tasks == held_out and list(report.methods) == ["no_adaptation", "adapted", "from_scratch",
                                                                     "pooled", "mixed_model", "group_ridge",
                                                                     "support_mean", "pooled_linear"]
    assert all(result.loss.isfinite().all() for result in report.methods.values())
    result = gm.tune({"family": family, "train": {**train, "name": "study"},
                      "evaluate": {"num_tasks": 4, "scratch_steps": 2, "ablation": False},
                      "tune": {"strategy": "random", "n_trials": 2,
                               "space": {"model.inner_lr": {"low": 0.02, "high": 0.3, "log": True}}}},
                     progress=False)
    assert len(result.study.trials) == 2


def test_evaluating_a_table_takes_every_held_out_task_and_every_row_past_its_support(tmp_path, monkeypatch):
    monkeypatch.setattr(evaluation, "POOLED_MAX_STEPS", 4)
    monkeypatch.setattr(evaluation, "POOLED_CHECK_EVERY", 2)
    held_out = ["s0", "s1", "s5", "s12", "s19"]  # 2, 2, 4, 10 and 40 rows
    family = small_groups_family(val_tasks=["s2", "s3", "s4"], test_tasks=held_out)
    model = gm.GraphMetaLearner(family.graph)
    trainer = gm.Trainer(model, family, steps=2, shots=5, query_shots=3, val_every=2, val_tasks=3, progress=False,
                         run_dir=str(tmp_path))
    trainer.fit()
    tasks = trainer.sampler.fixed("test", len(held_out), query=family.fixed_tasks("test")[1])
    rows = np.array(sorted(family.task_sizes[name] for name in held_out))
    assert tasks.support.task_rows.tolist() == np.minimum(5, rows - 1).tolist()
    assert tasks.query.task_rows.tolist() == (rows - np.minimum(5, rows - 1)).tolist()  # not capped at 3
    report = trainer.evaluate(scratch_steps=1, ablation=False)
    assert report.num_tasks == len(held_out) and report.whole_tasks and report.capped_tasks == 3
    assert "5 shots (all rows but one on the 3 smaller tasks), every other row as query" in report.table()
    assert gm.load_family("sinusoid").fixed_tasks("test") is None  # tasks drawn anew: 100 of them, as asked
