"""MAML with learn2learn and with higher, each as that library's own examples write it.

Both loop over the tasks of a meta-batch in Python (neither batches tasks), accumulate
``L_query_t / T`` gradients with ``backward`` per task, and take one Adam step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class L2LMAML:
    """``learn2learn.algorithms.MAML`` (second order), as in learn2learn's sine example."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1, outer_lr: float = 1e-3) -> None:
        from l2l_loader import load_maml

        self.maml = load_maml()(model, lr=inner_lr, first_order=False)
        self.inner_steps = inner_steps
        self.optimizer = torch.optim.Adam(self.maml.parameters(), lr=outer_lr)

    def step(self, x_support, y_support, x_query, y_query) -> torch.Tensor:
        num_tasks = x_support.shape[0]
        self.optimizer.zero_grad()
        total = 0.0
        for t in range(num_tasks):
            learner = self.maml.clone()
            for _ in range(self.inner_steps):
                learner.adapt(F.mse_loss(learner(x_support[t]), y_support[t]))
            loss = F.mse_loss(learner(x_query[t]), y_query[t]) / num_tasks
            loss.backward()
            total += loss.detach()
        self.optimizer.step()
        return total

    def parameters_as_linear(self) -> list[torch.Tensor]:
        return [p.detach() for p in self.maml.module.parameters()]


class HigherMAML:
    """``higher.innerloop_ctx`` with a differentiable SGD (second order), as in higher's
    MAML-Omniglot example."""

    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1, outer_lr: float = 1e-3) -> None:
        import higher

        self.higher = higher
        self.model = model
        self.inner_steps = inner_steps
        self.inner_optimizer = torch.optim.SGD(model.parameters(), lr=inner_lr)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=outer_lr)

    def step(self, x_support, y_support, x_query, y_query) -> torch.Tensor:
        num_tasks = x_support.shape[0]
        self.optimizer.zero_grad()
        total = 0.0
        for t in range(num_tasks):
            with self.higher.innerloop_ctx(self.model, self.inner_optimizer, copy_initial_weights=False) as (fmodel, diffopt):
                for _ in range(self.inner_steps):
                    diffopt.step(F.mse_loss(fmodel(x_support[t]), y_support[t]))
                loss = F.mse_loss(fmodel(x_query[t]), y_query[t]) / num_tasks
                loss.backward()
            total += loss.detach()
        self.optimizer.step()
        return total

    def parameters_as_linear(self) -> list[torch.Tensor]:
        return [p.detach() for p in self.model.parameters()]
