"""Learning-rate schedules: the formulas of graphmeta.train.schedules, and exact state round trips."""

import math

import pytest
import torch

from graphmeta.train.schedules import LearningRateSchedule, build_scheduler


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


def test_scheduler_state_round_trip():
    parameter = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([parameter], lr=0.1)
    scheduler = build_scheduler(optimizer, "cosine", steps=10, warmup_steps=2)
    for _ in range(4):
        optimizer.step()
        scheduler.step()
    state = scheduler.state_dict()
    fresh_optimizer = torch.optim.Adam([parameter], lr=0.1)
    fresh = build_scheduler(fresh_optimizer, "constant", steps=1)
    fresh.load_state_dict(state)
    assert fresh.lr_lambdas[0] == scheduler.lr_lambdas[0]
    fresh_optimizer.step()
    fresh.step()
    optimizer.step()
    scheduler.step()
    assert fresh.get_last_lr() == scheduler.get_last_lr()
