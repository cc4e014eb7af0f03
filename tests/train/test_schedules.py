"""Learning-rate schedules: the formulas of graphmeta.train.schedules, exact state round trips, and
resuming under a longer schedule."""

import math

import pytest
import torch

from graphmeta.train.schedules import LearningRateSchedule, build_scheduler, restore_scheduler


def test_constant_and_warmup():
    schedule = LearningRateSchedule("constant", steps=10, warmup_steps=4)
    assert [schedule(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


@pytest.mark.parametrize("kind", ["exponential", "cosine"])
def test_decay_from_one_to_final_ratio(kind):
    schedule = LearningRateSchedule(kind, steps=11, final_lr_ratio=0.1)
    values = [schedule(s) for s in range(11)]
    assert values[0] == pytest.approx(1.0) and values[-1] == pytest.approx(0.1)
    assert all(a > b for a, b in zip(values, values[1:]))
    middle = 0.1 ** 0.5 if kind == "exponential" else 0.1 + 0.9 * 0.5
    assert values[5] == pytest.approx(middle)


def test_cosine_after_warmup():
    schedule = LearningRateSchedule("cosine", steps=12, warmup_steps=2, final_lr_ratio=0.0)
    assert schedule(0) == 0.5 and schedule(2) == 1.0
    assert schedule(7) == pytest.approx((1 + math.cos(math.pi * 5 / 9)) / 2)


def optimizer_and_scheduler(kind: str = "cosine", steps: int = 10, warmup_steps: int = 2, taken: int = 0, **options):
    """Adam on one parameter with its schedule, after ``taken`` steps."""
    optimizer = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    scheduler = build_scheduler(optimizer, kind, steps, warmup_steps, **options)
    for _ in range(taken):
        optimizer.step()
        scheduler.step()
    return optimizer, scheduler


def test_scheduler_state_round_trip():
    optimizer, scheduler = optimizer_and_scheduler(taken=4)
    fresh_optimizer, fresh = optimizer_and_scheduler("constant", steps=1, warmup_steps=0)
    fresh.load_state_dict(scheduler.state_dict())
    assert fresh.lr_lambdas[0] == scheduler.lr_lambdas[0]
    fresh_optimizer.step()
    fresh.step()
    optimizer.step()
    scheduler.step()
    assert fresh.get_last_lr() == scheduler.get_last_lr()


def test_restore_scheduler_keeps_its_own_schedule_and_sets_its_rate():
    optimizer, scheduler = optimizer_and_scheduler(taken=4)
    longer_optimizer, longer = optimizer_and_scheduler(steps=40, warmup_steps=3, final_lr_ratio=0.5)
    longer_optimizer.load_state_dict(optimizer.state_dict())
    restore_scheduler(longer, scheduler.state_dict())
    schedule = LearningRateSchedule("cosine", steps=40, warmup_steps=3, final_lr_ratio=0.5)
    assert longer.lr_lambdas[0] == schedule and longer.last_epoch == 4
    assert longer_optimizer.param_groups[0]["lr"] == longer.get_last_lr()[0] == pytest.approx(0.1 * schedule(4))
    longer_optimizer.step()
    longer.step()
    assert longer.get_last_lr()[0] == pytest.approx(0.1 * schedule(5))

    same_optimizer, same = optimizer_and_scheduler()
    same_optimizer.load_state_dict(optimizer.state_dict())
    restore_scheduler(same, scheduler.state_dict())
    assert same_optimizer.param_groups[0]["lr"] == optimizer.param_groups[0]["lr"]  # bit for bit
    assert same.state_dict() == scheduler.state_dict()
