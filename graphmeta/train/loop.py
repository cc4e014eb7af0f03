"""The pieces of a meta-training loop that :class:`~graphmeta.train.Trainer` and
:class:`~graphmeta.train.OnlineMetaLearner` share: :func:`set_up_run` (device, run directory,
optimizer, schedule), :func:`meta_update`, one outer step, and :func:`start_run`, which begins
or resumes a run directory."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.optim.lr_scheduler import LambdaLR

from ..data import TaskBatch
from ..errors import ConfigError
from ..graph import TaskGraph
from ..model import GraphMetaLearner
from .checkpoint import seed_everything
from .config import TrainConfig
from .run_dir import RunDirectory
from .sampler import Family
from .schedules import build_scheduler


def set_up_run(model: GraphMetaLearner, family: Family, config: TrainConfig, steps: int, kind: str = ""
               ) -> tuple[RunDirectory, torch.optim.Adam, LambdaLR]:
    """Move ``model`` to ``config.device`` (when set) and return the run directory
    (``config.name``, or ``<graph>-<kind>-<timestamp>``), Adam at ``outer_lr`` on every
    parameter, and the learning-rate schedule over ``steps`` outer steps."""
    if config.device is not None:
        model.to(config.device)
    name = config.name or "-".join(filter(None, [family.graph.name or "run", kind, time.strftime("%Y%m%d-%H%M%S")]))
    optimizer = torch.optim.Adam(model.parameters(), lr=config.outer_lr)
    scheduler = build_scheduler(optimizer, config.schedule, steps, config.warmup_steps, config.final_lr_ratio)
    return RunDirectory(Path(config.run_dir) / name), optimizer, scheduler


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
                grad_clip: float | None, metrics: bool = True) -> MetaUpdate:
    """One outer step of ``optimizer`` on the meta-loss of ``batch``, the total gradient norm
    clipped to ``grad_clip`` (``None``: no clipping); the outer step of :class:`Trainer` and
    :class:`~graphmeta.train.OnlineMetaLearner`. When the loss or the gradient norm is not
    finite, no step is taken and the gradients are cleared. The caller steps the schedule.
    ``metrics=False`` skips the per-node metrics (and the forward pass they cost)."""
    model.train()
    loss, metrics = model.meta_loss(batch, metrics=metrics)
    optimizer.zero_grad(set_to_none=True)
    if not torch.isfinite(loss):
        return MetaUpdate(loss, metrics, nonfinite=f"meta-loss ({float(loss.detach())})")
    loss.backward()
    clip = math.inf if grad_clip is None else grad_clip
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    if not torch.isfinite(grad_norm):
        optimizer.zero_grad(set_to_none=True)
        return MetaUpdate(loss, metrics, grad_norm, nonfinite=f"gradient norm ({float(grad_norm.detach())})")
    optimizer.step()
    return MetaUpdate(loss, metrics, grad_norm)


def start_run(run: RunDirectory, resume: bool, restore: Callable[[Path], int], seed: int,
              config: Mapping[str, Any], graph: TaskGraph) -> None:
    """Begin the run in ``run``, or resume it: where ``checkpoints/last.pt`` exists, ``restore(path)``
    loads it and returns its step, and the metrics recorded after that step are dropped (the
    resumed run writes them again); without ``resume`` that is a ConfigError, so no run is
    overwritten. A new run seeds every generator with ``seed``. Either way ``config`` and
    ``graph`` are (re)written into ``run``."""
    if run.last.exists():
        if not resume:
            raise ConfigError(f"{run.path} already holds a run: resume it (resume=True, graphmeta train "
                              "--resume) or choose another name (train.name)")
        run.truncate_metrics(restore(run.last))
    else:
        seed_everything(seed)
    run.write_config(config)
    graph.save(run.graph)
