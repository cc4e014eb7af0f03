"""One outer (meta-)step: the only place the meta-parameters of a run change.

With the meta-loss ``L(theta) = mean_{tasks} L_query(U(theta, support), query)`` of a
meta-batch, the step is ``g = grad L(theta)``, ``g <- g * min(1, c / ||g||)`` (the total norm
clipped to ``c = grad_clip``), then one step of the outer optimizer (Adam) on ``g``. A
non-finite loss or gradient norm takes no step and leaves no gradient behind, so the caller can
skip it or stop.

In a data-parallel run (:mod:`.distributed`) ``batch`` is this process's share of the meta-batch
and the meta-loss runs through the model's :class:`~.distributed.Replica`: its backward leaves
the mean gradient over the processes (DDP), and the loss and metrics are averaged too, so every
process clips the same gradient and takes the same decision on a non-finite one.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..data import TaskBatch
from ..model import GraphMetaLearner
from .config import TrainConfig
from .distributed import Replica
from .schedules import build_scheduler


@dataclass(frozen=True)
class MetaUpdate:
    """What :func:`meta_update` did: the meta-``loss`` and ``metrics`` of the meta-batch, the
    total gradient norm before clipping (``None`` when the loss was not finite), and
    ``nonfinite``: what was not finite, with its value (``"meta-loss (nan)"``), when no step was taken."""

    loss: torch.Tensor
    metrics: dict[str, torch.Tensor]
    grad_norm: torch.Tensor | None = None
    nonfinite: str | None = None


def meta_update(model: GraphMetaLearner, optimizer: torch.optim.Optimizer, batch: TaskBatch,
                grad_clip: float | None, metrics: bool = True, replica: Replica | None = None) -> MetaUpdate:
    """One outer step of ``optimizer`` on the meta-loss of ``batch``, the total gradient norm
    clipped to ``grad_clip`` (``None``: no clipping). The caller steps the schedule.
    ``metrics=False`` skips the per-node metrics (and the forward pass they cost). ``replica``:
    ``model`` in a data-parallel run (see the module docstring)."""
    model.train()
    loss, metrics = (model.meta_loss if replica is None else replica.module)(batch, metrics=metrics)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # a non-finite loss too: every process of a data-parallel run joins the all-reduce
    if replica is not None:
        loss, metrics = replica.mean(loss, metrics)
    if not torch.isfinite(loss):
        optimizer.zero_grad(set_to_none=True)
        return MetaUpdate(loss, metrics, nonfinite=f"meta-loss ({float(loss.detach())})")
    clip = math.inf if grad_clip is None else grad_clip
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if not torch.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        return MetaUpdate(loss, metrics, grad_norm, nonfinite=f"gradient norm ({float(grad_norm.detach())})")
    optimizer.step()
    return MetaUpdate(loss, metrics, grad_norm)


def outer_optimizer(model: GraphMetaLearner, config: TrainConfig,
                    total_updates: int) -> tuple[torch.optim.Adam, LambdaLR]:
    """The outer optimizer of a run, Adam at ``outer_lr`` on the groups of :func:`outer_parameter_groups`,
    and its rate schedule over ``total_updates`` meta-updates (:mod:`.schedules`)."""
    # fused: one kernel for every parameter instead of a Python loop over them, several times faster
    # on the CPU for small networks
    fused = all(p.device.type in ("cpu", "cuda") for p in model.parameters())
    optimizer = torch.optim.Adam(outer_parameter_groups(model, config), lr=config.outer_lr, fused=fused)
    return optimizer, build_scheduler(optimizer, config.schedule, total_updates, config.warmup_steps,
                                      config.final_lr_ratio)


def outer_parameter_groups(model: GraphMetaLearner, config: TrainConfig) -> list[dict[str, Any]]:
    """The outer optimizer's parameter groups: every parameter at ``outer_lr``, but the algorithm's
    learned inner rates (their scales, see :mod:`graphmeta.adapt.algorithms.base`), in a group of their
    own at ``rate_lr`` (default ``outer_lr``)."""
    rates = model.algorithm.learned_rates()
    if not rates:
        return [{"params": list(model.parameters())}]
    learned = {id(rate) for rate in rates}
    rate_lr = config.outer_lr if config.rate_lr is None else config.rate_lr
    return [{"params": [p for p in model.parameters() if id(p) not in learned]}, {"params": rates, "lr": rate_lr}]
