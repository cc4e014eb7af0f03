"""The inner loop: every (task, node) adapts on its support set, all in one batched pass.

Each step takes ONE ``torch.autograd.grad`` of the summed support loss
``sum_{t, n} L_support(t, n)`` with respect to all adapting fast weights. The (t, n) slice of
the fast weights only touches the loss of (t, n), so the slice of that gradient is exactly
``grad L_support(t, n)``: the same as adapting each (task, node) on its own. The algorithm
says which weights adapt and how a step uses the gradient.

A bank that adapts in closed form (``bank.closed_form``, e.g. the Table learners' Dirichlet
update) takes its exact posterior ``bank.posterior(weights, support)`` at the first step and
keeps it; more steps would add nothing. Only the other banks take gradient steps.
"""

from __future__ import annotations

import torch

from ..data import Split
from ..learners.bank import Weights
from ..learners.bank_set import BankSet
from .algorithms.base import Algorithm


def inner_loop(banks: BankSet, algorithm: Algorithm, fast: list[Weights], support: Split, steps: int,
               create_graph: bool, track_meta_gradient: bool = True, keep_steps: bool = False
               ) -> tuple[list[Weights], torch.Tensor | None, list[list[Weights]]]:
    """Take ``steps`` steps from ``fast``; return the fast weights, the support losses ``[T, N]``
    before the first step (``None`` for zero steps; attached to the graph when ``create_graph``),
    and, with ``keep_steps``, the fast weights after every step.

    ``create_graph`` keeps the graph of the gradient for second-order meta-gradients; without
    it the gradient is a constant (first order). With ``track_meta_gradient=False`` (plain
    adaptation at test time) each step starts from detached weights, so memory does not grow
    with the number of steps.
    """
    adapted = [algorithm.adapted(bank) for bank in banks]
    initial_loss, every_step = None, []
    for step in range(steps):
        if not track_meta_gradient:
            fast = [{name: w.detach().requires_grad_(name in names) for name, w in weights.items()}
                    for weights, names in zip(fast, adapted)]
        with torch.enable_grad():
            loss, _ = banks.losses([algorithm.compose(b, weights) for b, weights in enumerate(fast)], support)
            targets = [(b, name) for b, (bank, names) in enumerate(zip(banks, adapted)) if not bank.closed_form
                       for name in names]
            grads = torch.autograd.grad(loss.sum(), [fast[b][name] for b, name in targets],
                                        create_graph=create_graph) if targets else ()
        if initial_loss is None:
            initial_loss = loss if create_graph else loss.detach()
        by_bank: list[dict[str, torch.Tensor]] = [{} for _ in banks]
        for (b, name), grad in zip(targets, grads):
            by_bank[b][name] = grad
        fast = [
            (bank.posterior(weights, support) if step == 0 else weights) if bank.closed_form
            else algorithm.step(b, weights, by_bank[b], step)
            for b, (bank, weights) in enumerate(zip(banks, fast))
        ]
        if keep_steps:
            every_step.append(fast)
    return fast, initial_loss, every_step
