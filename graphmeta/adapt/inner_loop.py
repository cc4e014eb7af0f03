"""The inner loop: every (task, node) adapts on its support set, all in one batched pass.

Each step takes ONE ``torch.autograd.grad`` of the summed support loss
``sum_{t, n} L_support(t, n)`` with respect to all fast weights. The (t, n) slice of the fast
weights only touches the loss of (t, n), so the slice of that gradient is exactly
``grad L_support(t, n)``: the same as adapting each (task, node) on its own.

A bank that adapts in closed form (``bank.conjugate``, e.g. the Table learners' Dirichlet
update) takes its exact posterior ``bank.posterior(theta, support)`` at the first step and
keeps it; more steps would add nothing. Only the other banks take gradient steps.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ..data import Split
from ..learners.bank import Weights
from ..learners.bank_set import BankSet


def inner_loop(
    banks: BankSet,
    fast: list[Weights],
    support: Split,
    learning_rates: Sequence[Sequence[torch.Tensor | float]],
    adaptable: Sequence[Sequence[bool]],
    create_graph: bool,
    track_meta_gradient: bool = True,
) -> tuple[list[Weights], torch.Tensor | None]:
    """Take ``len(learning_rates)`` steps ``phi <- phi - alpha_s * grad``; return the fast weights
    and the support losses ``[T, N]`` before the first step (``None`` for zero steps; attached
    to the graph when ``create_graph``).

    ``learning_rates[s][b]`` is the step-``s`` rate of bank ``b``: a float, a scalar tensor, or
    a tensor per parameter (Meta-SGD, a tuple aligned with the bank's tensors; empty for a
    conjugate bank).
    ``adaptable[b][i]`` says whether tensor ``i`` of bank ``b`` adapts (ANIL adapts the head
    only). ``create_graph`` keeps the graph of the gradient for second-order meta-gradients;
    without it the gradient is a constant (first order). With ``track_meta_gradient=False``
    (plain adaptation at test time) each step starts from detached weights, so memory does
    not grow with the number of steps.
    """
    initial_loss = None
    for step, step_rates in enumerate(learning_rates):
        if not track_meta_gradient:
            fast = [tuple(w.detach().requires_grad_(a) for w, a in zip(weights, flags))
                    for weights, flags in zip(fast, adaptable)]
        with torch.enable_grad():
            loss, _ = banks.losses(fast, support)
            targets = [w for bank, weights, flags in zip(banks, fast, adaptable) if not bank.conjugate
                       for w, a in zip(weights, flags) if a]
            grads = iter(torch.autograd.grad(loss.sum(), targets, create_graph=create_graph) if targets else ())
        if initial_loss is None:
            initial_loss = loss if create_graph else loss.detach()
        fast = [
            (bank.posterior(weights, support) if step == 0 else weights) if bank.conjugate else
            tuple(_step(w, next(grads), rate, i) if a else w for i, (w, a) in enumerate(zip(weights, flags)))
            for bank, weights, flags, rate in zip(banks, fast, adaptable, step_rates)
        ]
    return fast, initial_loss


def _step(weight: torch.Tensor, grad: torch.Tensor, rate: torch.Tensor | float | Sequence[torch.Tensor],
          index: int) -> torch.Tensor:
    if isinstance(rate, (tuple, list)):
        rate = rate[index]
    if isinstance(rate, float):
        return torch.add(weight, grad, alpha=-rate)  # one fused pass when the rate is a constant
    return torch.addcmul(weight, rate, grad, value=-1)
