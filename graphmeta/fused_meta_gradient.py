"""The compiled meta-loss and its meta-gradient in one captured call.

``torch.compile`` of a loss captures its forward and, through AOTAutograd, a separate backward:
two compiled calls, each with its guards and Python wrapper, and the autograd engine between
them. Meta-learning steps are small and their cost is mostly that fixed overhead, so the compiled
engine (:meth:`~graphmeta.GraphMetaLearner.compile`) takes the meta-loss ``L(theta)`` and its
meta-gradient together,

.. math::  (\\nabla_\\theta L,\\; L) = \\texttt{torch.func.grad\\_and\\_value}(L)(\\theta),

in ONE captured call: the inner loop's own :func:`torch.func.grad` nests inside it, so the
meta-gradient is second order where the algorithm is. The loss comes back attached to the
parameters by :class:`_PrecomputedGradient`, whose backward hands each parameter
``grad_output * dL/dtheta``: ``loss.backward()``, an optimizer, gradient clipping and a
data-parallel replica's hooks see what they would see eagerly.

What this form gives up, and where the model keeps the plain compiled loss instead:

* the gradient is computed with the loss, asked for or not; without grad mode (validation) the
  plain compiled loss runs;
* the loss is differentiable in the model's trainable parameters only, and once (no gradient of
  the meta-gradient); :meth:`~graphmeta.GraphMetaLearner.eager` gives back the autograd graph.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.autograd.function import once_differentiable

from .data import TaskBatch


class EngineCall(nn.Module):
    """``model``'s meta-loss (without its running input statistics, which the caller updates) as a
    module's forward, for :func:`torch.func.functional_call`. Kept outside ``model``'s submodules."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch: TaskBatch, metrics: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return self.model._meta_loss_of(batch, metrics)


def loss_and_meta_gradient(engine: EngineCall, parameters: dict[str, torch.Tensor], batch: TaskBatch,
                           metrics: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """The meta-loss of ``batch``, its metrics and its gradient with respect to ``parameters``
    (detached tensors named as in ``engine``), by one :func:`torch.func.grad_and_value`: what
    :meth:`~graphmeta.GraphMetaLearner.compile` captures. In training mode the model's input
    statistics take the batch first, outside the differentiated function (it may not mutate)."""
    model = engine.model
    if model.training:
        model.input_statistics.update(batch.support, batch.query)

    def loss_of(values: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        return torch.func.functional_call(engine, values, (batch, metrics))

    gradient, (loss, found) = torch.func.grad_and_value(loss_of, has_aux=True)(parameters)
    return loss.detach(), found, gradient


def meta_loss_with_gradient(model: nn.Module, engine: Callable[..., Any], batch: TaskBatch, metrics: bool
                            ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """``model``'s meta-loss of ``batch`` and its metrics, from ``engine`` (the compiled
    :func:`loss_and_meta_gradient`), attached to the trainable parameters (module docstring)."""
    trainable = {f"model.{name}": p for name, p in model.named_parameters() if p.requires_grad}  # named in EngineCall
    loss, found, gradient = engine({name: p.detach() for name, p in trainable.items()}, batch, metrics)
    return attached(loss, list(trainable.values()), [gradient[name] for name in trainable]), found


def attached(loss: torch.Tensor, parameters: list[torch.Tensor], gradients: list[torch.Tensor]) -> torch.Tensor:
    """``loss`` as a function of ``parameters`` whose gradient is ``gradients`` (computed with it)."""
    return _PrecomputedGradient.apply(loss, len(parameters), *parameters, *gradients)


class _PrecomputedGradient(torch.autograd.Function):
    """Identity on the loss; its backward gives the ``count`` parameters after it ``grad_output``
    times the gradients after them."""

    @staticmethod
    def forward(ctx: Any, loss: torch.Tensor, count: int, *parameters_and_gradients: torch.Tensor) -> torch.Tensor:
        ctx.count = count
        ctx.save_for_backward(*parameters_and_gradients[count:])
        return loss.clone()

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        scaled = [grad_output * gradient for gradient in ctx.saved_tensors]
        return (None, None, *scaled, *([None] * ctx.count))
