"""TaskBuffer: the bound, the reservoir and FIFO policies, meta-batches, weights-only state."""

import pytest
import torch

import graphmeta as gm
from graphmeta.train import TaskBuffer
from graphmeta.train.checkpoint import load_checkpoint, save_checkpoint


@pytest.fixture(scope="module")
def stream(family):
    """20 tasks, one at a time, as they would arrive."""
    tasks = family.sample(20, 3, 4, seed=7)
    return [tasks.select([t]) for t in range(tasks.num_tasks)]


def arrivals(buffer: TaskBuffer, stream) -> list[int]:
    """Which arrivals (indices into ``stream``) the buffer holds, in slot order."""
    stored = buffer.tasks().support.values
    return [next(i for i, task in enumerate(stream) if torch.equal(task.support.values[0], values))
            for values in stored]


def test_the_buffer_never_holds_more_than_its_capacity(family, stream):
    buffer = TaskBuffer(family.graph, 5)
    for count, task in enumerate(stream, 1):
        buffer.add(task)
        assert len(buffer) == min(count, 5) and buffer.seen == count
    assert repr(buffer) == "TaskBuffer(5/5 tasks, policy='reservoir', seen=20)"


def test_fifo_keeps_the_latest_tasks(family, stream):
    buffer = TaskBuffer(family.graph, 5, "fifo")
    for task in stream[:13]:
        buffer.add(task)
    assert sorted(arrivals(buffer, stream)) == list(range(8, 13))


def test_reservoir_keeps_every_arrival_with_the_same_probability(family, stream):
    """After n arrivals each is stored with probability capacity / n (algorithm R)."""
    runs, capacity = 300, 5
    counts = torch.zeros(len(stream))
    for seed in range(runs):
        buffer = TaskBuffer(family.graph, capacity, "reservoir", seed=seed)
        for task in stream:
            buffer.add(task)
        counts[arrivals(buffer, stream)] += 1
    frequency = counts / runs
    assert torch.allclose(frequency, torch.full_like(frequency, capacity / len(stream)), atol=0.1), frequency


def test_adding_a_batch_is_adding_its_tasks_in_order(family, stream):
    one_by_one, at_once = TaskBuffer(family.graph, 4, seed=3), TaskBuffer(family.graph, 4, seed=3)
    for task in stream:
        one_by_one.add(task)
    at_once.add(family.sample(20, 3, 4, seed=7))
    assert torch.equal(one_by_one.tasks().query.values, at_once.tasks().query.values)


def test_meta_batches_are_distinct_stored_tasks(family, stream):
    buffer = TaskBuffer(family.graph, 6)
    buffer.add(stream[0])
    assert buffer.sample(4).num_tasks == 1
    for task in stream[1:]:
        buffer.add(task)
    batch = buffer.sample(4)
    assert batch.num_tasks == 4 and batch.shots == 3 and batch.query_shots == 4
    rows = {tuple(values.flatten().tolist()) for values in batch.support.values}
    stored = {tuple(values.flatten().tolist()) for values in buffer.tasks().support.values}
    assert len(rows) == 4 and rows <= stored
    assert buffer.draws == 2


def test_state_round_trips_through_a_weights_only_checkpoint(family, stream, tmp_path):
    buffer = TaskBuffer(family.graph, 5, seed=1)
    for task in stream[:12]:
        buffer.add(task)
    buffer.sample(3)
    save_checkpoint({"buffer": buffer.state_dict()}, tmp_path / "buffer.pt")
    restored = TaskBuffer(family.graph, 5, seed=1)
    restored.load_state_dict(load_checkpoint(tmp_path / "buffer.pt")["buffer"])
    for task in stream[12:]:
        buffer.add(task)
        restored.add(task)
        assert torch.equal(buffer.sample(3).support.values, restored.sample(3).support.values)
    assert torch.equal(buffer.tasks().support.values, restored.tasks().support.values)
    assert (restored.seen, restored.draws) == (20, 9)


def test_errors_name_what_is_wrong(family, stream):
    buffer = TaskBuffer(family.graph, 5)
    with pytest.raises(gm.TrainingError, match="empty task buffer"):
        buffer.sample(2)
    buffer.add(stream[0])
    with pytest.raises(gm.DataError, match="5 support / 4 query shots offered to a buffer of tasks with 3 / 4"):
        buffer.add(family.sample(1, 5, 4, seed=0))
    with pytest.raises(gm.CheckpointError, match="capacity 5, this run 6"):
        TaskBuffer(family.graph, 6).load_state_dict(buffer.state_dict())
    with pytest.raises(gm.ConfigError, match="one of reservoir, fifo"):
        TaskBuffer(family.graph, 5, "lifo")
    with pytest.raises(gm.ConfigError, match="capacity must be an integer >= 1, got 0"):
        TaskBuffer(family.graph, 0)
