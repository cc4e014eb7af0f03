"""Learning-rate schedules of the outer optimizer, as multipliers of ``outer_lr``.

With ``W`` warmup steps, ``S`` steps in all, ``r`` the final ratio and
``u = (s - W) / max(S - W - 1, 1)`` the progress after warmup, the rate of step ``s`` (0-based) is
``outer_lr * m(s)`` with

    warmup (s < W):  m(s) = (s + 1) / W
    constant:        m(s) = 1
    exponential:     m(s) = r ** u
    cosine:          m(s) = r + (1 - r) * (1 + cos(pi * u)) / 2

so exponential and cosine fall from ``outer_lr`` to ``r * outer_lr`` at the last step.

**Exponential decay and its rate.** ``r ** u`` multiplies the rate by the same factor every step
after warmup, ``gamma = r ** (1 / (S - W - 1))`` (torch's ``ExponentialLR`` with that ``gamma``);
its half-life is ``(S - W - 1) * ln 2 / ln(1 / r)`` steps. The ratio ``r`` is the decay's one
parameter, the same whatever the run's length, so it is what a search varies, on a log scale
since its effect is multiplicative (``r = 1`` is the constant schedule, ``r`` must be above 0)::

    tune:
      space:
        train.schedule: [constant, exponential, cosine]
        train.final_lr_ratio: {low: 0.001, high: 1.0, log: true}
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

SCHEDULES = ("constant", "exponential", "cosine")


@dataclass
class LearningRateSchedule:
    """The multiplier ``m(step)`` (see the module docstring).

    A plain dataclass, so ``LambdaLR.state_dict()`` stores its fields as primitives and a
    checkpoint holds no code; :func:`restore_scheduler` keeps a resumed run's own fields.
    """

    kind: str
    steps: int
    warmup_steps: int = 0
    final_lr_ratio: float = 0.01

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return (step + 1) / self.warmup_steps
        progress = min((step - self.warmup_steps) / max(self.steps - self.warmup_steps - 1, 1), 1.0)
        if self.kind == "exponential":
            return self.final_lr_ratio ** progress
        if self.kind == "cosine":
            return self.final_lr_ratio + (1 - self.final_lr_ratio) * (1 + math.cos(math.pi * progress)) / 2
        return 1.0


def build_scheduler(optimizer: torch.optim.Optimizer, kind: str, steps: int, warmup_steps: int = 0,
                    final_lr_ratio: float = 0.01) -> LambdaLR:
    """A ``LambdaLR`` following :class:`LearningRateSchedule`; step it once per outer step."""
    return LambdaLR(optimizer, LearningRateSchedule(kind, steps, warmup_steps, final_lr_ratio))


def restore_scheduler(scheduler: LambdaLR, state: Mapping[str, Any]) -> None:
    """Move ``scheduler`` to the position saved in ``state`` (its ``state_dict()``), keeping the
    schedule it was built with, and set the optimizer's rate to that schedule's rate there; call
    it after restoring the optimizer.

    ``LambdaLR.load_state_dict`` alone would also restore the saved schedule (its ``steps``,
    warmup and final ratio), and the optimizer's state the saved rate, so a run resumed with more
    steps would keep the old schedule. Under an unchanged schedule the rate comes out as the
    same float, so an exact resume stays bit for bit.
    """
    rates = [base * schedule(state["last_epoch"]) for schedule, base in zip(scheduler.lr_lambdas, state["base_lrs"])]
    scheduler.load_state_dict({**state, "lr_lambdas": [None] * len(rates), "_last_lr": rates})
    for group, rate in zip(scheduler.optimizer.param_groups, rates):
        group["lr"] = rate
