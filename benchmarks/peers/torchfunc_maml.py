"""MAML for the sinusoid MLP written with plain ``torch.func``, as a user would without a library.

Per task ``t``: ``phi_t = theta - alpha * grad L_support_t(theta)`` (``torch.func.grad``, which
keeps the graph, so the meta-gradient is second order), then ``L_query_t(phi_t)``; the tasks
run as one ``torch.func.vmap``. Two ways to take the outer gradient are provided:

* ``outer="backward"``: ``vmap(task_loss)(...).mean().backward()`` on the module's
  parameters (the functorch MAML-Omniglot example);
* ``outer="grad"``: the whole meta-loss under ``torch.func.grad_and_value`` too (the
  functorch MAML-sinusoid example), the gradients then handed to the optimizer.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, grad_and_value, vmap


class TorchFuncMAML:
    def __init__(self, model: nn.Module, inner_lr: float = 0.01, inner_steps: int = 1, outer_lr: float = 1e-3,
                 outer: str = "backward") -> None:
        if outer not in ("backward", "grad"):
            raise ValueError(f"outer must be 'backward' or 'grad', got {outer!r}")
        self.model = model
        self.inner_lr = inner_lr
        self.inner_steps = inner_steps
        self.outer = outer
        self.names = [name for name, _ in model.named_parameters()]
        self.optimizer = torch.optim.Adam(model.parameters(), lr=outer_lr)

    # pure functions of (params, data)
    def _loss(self, params: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(functional_call(self.model, params, (x,)), y)

    def _adapt(self, params, x, y, steps):
        for _ in range(steps):
            grads = grad(self._loss)(params, x, y)
            params = {k: params[k] - self.inner_lr * grads[k] for k in params}
        return params

    def _task_loss(self, params, x_support, y_support, x_query, y_query):
        return self._loss(self._adapt(params, x_support, y_support, self.inner_steps), x_query, y_query)

    def _meta_loss(self, params, x_support, y_support, x_query, y_query):
        losses = vmap(self._task_loss, in_dims=(None, 0, 0, 0, 0))(params, x_support, y_support, x_query, y_query)
        return losses.mean()

    def step(self, x_support, y_support, x_query, y_query) -> float:
        """One meta-iteration on a meta-batch ``[T, K, 1]``; returns the meta-loss."""
        self.optimizer.zero_grad()
        params = dict(self.model.named_parameters())
        if self.outer == "backward":
            loss = self._meta_loss(params, x_support, y_support, x_query, y_query)
            loss.backward()
        else:
            detached = {k: v.detach() for k, v in params.items()}
            grads, loss = grad_and_value(self._meta_loss)(detached, x_support, y_support, x_query, y_query)
            for k, p in params.items():
                p.grad = grads[k]
        self.optimizer.step()
        return loss.detach()

    def parameters_as_linear(self) -> list[torch.Tensor]:
        """``[W_1, b_1, ...]`` in ``nn.Linear`` layout (``W: [out, in]``)."""
        return [p.detach() for p in self.model.parameters()]
