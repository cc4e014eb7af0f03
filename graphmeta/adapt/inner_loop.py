"""The inner loop: every (task, node) adapts on its support set, all in one batched pass.

Each step takes ONE ``torch.autograd.grad`` of the summed support loss
``sum_{t, n} L_support(t, n)`` with respect to all adapting fast weights. The (t, n) slice of
the fast weights only touches the loss of (t, n), so the slice of that gradient is exactly
``grad L_support(t, n)``: the same as adapting each (task, node) on its own. The algorithm
says which weights adapt and how a step uses the gradient.

A bank may hand a weight's gradient over in a cheaper form (:meth:`LearnerBank.support_loss`):
an MLP layer's is ``sum_k h_k^T dL/dz_k`` over its support rows, read at the pre-activations.
With the plain step ``phi <- phi - alpha * grad`` and one rate per (task, node), a low-rank
weight then stays low-rank, ``phi - alpha * sum_k h_k^T dL/dz_k`` (its rank grows by K), as long
as that is the cheaper form (:func:`_low_rank_cheaper`) and the algorithm's step is that plain
step (its declared ``low_rank_step``); otherwise the step is taken on dense tensors. In
first-order algorithms the gradient, factors included, is a constant.

A bank the algorithm adapts in closed form (``algorithm.solves(bank)``: a conjugate bank, such as
the Table learners' Dirichlet update or the Linear learners' Normal-Inverse-Gamma one, or every
bank's head under an algorithm with ``closed_form_head``, ALPaCA) takes ``algorithm.solve(...)``
at the first step and keeps it; more steps would add nothing. Only the other banks take
gradient steps.

A step never raises a (task, node)'s support loss: the :mod:`.support_guard` reads each step's
loss (the next step computes it anyway) and keeps the previous weights, with half the step to try
next, for the pairs whose loss went up or stopped being finite; with ``guarded=False`` (to see what
it prevents) every step is taken as it is. The last step's loss costs one more forward pass, so it
is read only where the adapted weights are used as they are (``review_last_step``: adaptation,
evaluation, validation). In meta-training the query loss judges the last step, and its
meta-gradient teaches the initialisation and rates not to overshoot; with one inner step (the
usual training setting) that review would be the only one, and it cost about 12% of a step.

**Under** ``torch.compile`` (``model.compile()``; :func:`torch.compiler.is_compiling`) the loop
takes the same steps in the form the compiler captures: dense fast weights, and each step's
gradient from :func:`torch.func.grad` of the summed support loss as a function of the adapting
weights, instead of ``torch.autograd.grad`` over taps (AOTAutograd cannot differentiate a graph
that calls ``autograd.grad(create_graph=True)``, and would silently drop the second-order term
where it ran). ``torch.func.grad`` returns the gradient as a differentiable function of the
weights, so the outer backward through it is second order; a first-order algorithm detaches it.
Values and meta-gradients equal the eager loop's to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch

from ..data import Split
from ..learners.banks.bank import Weights
from ..learners.banks.bank_set import BankSet
from ..learners.banks.low_rank import LowRankWeight, OuterProducts, dense_weights
from .algorithms.base import Algorithm
from .support_guard import Gradients, SupportGuard


def inner_loop(banks: BankSet, algorithm: Algorithm, fast: list[Weights], support: Split, steps: int,
               create_graph: bool, track_meta_gradient: bool = True, keep_steps: bool = False,
               guarded: bool = True, review_last_step: bool = True
               ) -> tuple[list[Weights], torch.Tensor | None, list[list[Weights]]]:
    """Take ``steps`` steps from ``fast``; return the fast weights, the support losses ``[T, N]``
    before the first step (``None`` for zero steps; attached to the graph when ``create_graph``),
    and, with ``keep_steps``, the fast weights after every step.

    ``create_graph`` keeps the graph of the gradient for second-order meta-gradients; without
    it the gradient is a constant (first order). With ``track_meta_gradient=False`` (plain
    adaptation at test time) each step starts from detached weights, so memory does not grow
    with the number of steps. ``guarded=False`` turns the support guard off, and
    ``review_last_step=False`` takes the last step unreviewed (module docstring).
    """
    solved = [algorithm.solves(bank) for bank in banks]
    adapting = [() if closed else algorithm.adapting_names(bank) for bank, closed in zip(banks, solved)]
    compiling = torch.compiler.is_compiling()
    if compiling:  # the compiler's form (module docstring): dense weights, gradients from torch.func
        fast = [dense_weights(weights) for weights in fast]
    gradients = _functional_gradients if compiling else _tapped_gradients
    guard = SupportGuard([bool(names) for names in adapting], reads_host=not compiling) if guarded else None
    initial_loss, every_step = None, []
    for step in range(steps):
        if not track_meta_gradient:
            fast = [_detached(weights, () if compiling else names) for weights, names in zip(fast, adapting)]
        with torch.enable_grad():
            loss, by_bank = gradients(banks, algorithm, fast, adapting, support, create_graph)
        if initial_loss is None:
            initial_loss = loss if create_graph else loss.detach()
        if guard is not None:
            fast, by_bank = guard.review(fast, by_bank, _bank_losses(banks, guard, loss))
        if keep_steps and step:
            every_step.append(fast)
        fast = [
            (algorithm.solve(b, bank, weights, support) if step == 0 else weights) if solved[b]
            else _step(algorithm, b, weights, by_bank[b], step, steps, create_graph)
            for b, (bank, weights) in enumerate(zip(banks, fast))
        ]
    if guard is not None and steps and any(guard.guarded) and review_last_step:
        with torch.no_grad():
            # every bank's losses at once: with latent nodes, a node's loss reads its latent parents' predictions
            loss, _ = banks.losses([algorithm.compose(b, weights) for b, weights in enumerate(fast)], support)
        fast, _ = guard.review(fast, None, _bank_losses(banks, guard, loss))
    if keep_steps and steps:
        every_step.append(fast)
    return fast, initial_loss, every_step


def _tapped_gradients(banks: BankSet, algorithm: Algorithm, fast: list[Weights], adapting: list[tuple[str, ...]],
                      support: Split, create_graph: bool) -> tuple[torch.Tensor, list[Gradients]]:
    """The support losses ``[T, N]`` and, per bank, the gradients of its ``adapting`` weights, from
    ONE ``torch.autograd.grad`` over the banks' taps (a low-rank weight's gradient read at its
    layer's pre-activations) and the weights no bank taps."""
    composed = [algorithm.compose(b, weights) for b, weights in enumerate(fast)]
    # the bank taps the weights it computes with as they are; the others (e.g. a context that
    # compose turns into a bias) are differentiated where they are
    tapped = [[name for name in names if name in used and used[name] is weights[name]]
              for names, used, weights in zip(adapting, composed, fast)]
    direct = [[name for name in names if name not in bank_tapped] for names, bank_tapped in zip(adapting, tapped)]
    loss, taps = banks.support_losses(composed, support, tapped)
    tensors = [t for bank_taps in taps for t in bank_taps.tensors]
    tensors += [fast[b][name] for b, names in enumerate(direct) for name in names]
    grads = list(torch.autograd.grad(loss.sum(), tensors, create_graph=create_graph)) if tensors else []
    by_bank = []
    for bank_taps in taps:
        count = len(bank_taps.tensors)
        by_bank.append(bank_taps.gradients(grads[:count]))
        grads = grads[count:]
    for b, names in enumerate(direct):
        by_bank[b].update(zip(names, grads[:len(names)]))
        grads = grads[len(names):]
    return loss, by_bank


def _functional_gradients(banks: BankSet, algorithm: Algorithm, fast: list[Weights],
                          adapting: list[tuple[str, ...]], support: Split, create_graph: bool
                          ) -> tuple[torch.Tensor, list[Gradients]]:
    """What :func:`_tapped_gradients` returns, in the form ``torch.compile`` captures:
    :func:`torch.func.grad` of ``sum_{t, n} L_support(t, n)`` as a function of the dense adapting
    weights (differentiable in them, so second order unless ``create_graph`` is off)."""

    def summed_loss(adapted: list[dict[str, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
        weights = [{**bank_weights, **bank_adapted} for bank_weights, bank_adapted in zip(fast, adapted)]
        loss, _ = banks.losses([algorithm.compose(b, w) for b, w in enumerate(weights)], support)
        return loss.sum(), loss

    adapted = [{name: fast[b][name] for name in names} for b, names in enumerate(adapting)]
    grads, loss = torch.func.grad(summed_loss, has_aux=True)(adapted)
    if not create_graph:
        grads = [{name: grad.detach() for name, grad in bank_grads.items()} for bank_grads in grads]
    return loss, grads


def _bank_losses(banks: BankSet, guard: SupportGuard, loss: torch.Tensor) -> list[torch.Tensor | None]:
    """The support losses ``[T, N]`` of the graph as ``[T, N_b]`` per guarded bank (``None`` for the others)."""
    return [loss[:, bank.node_index] if guarded else None for bank, guarded in zip(banks, guard.guarded)]


def _step(algorithm: Algorithm, index: int, weights: Weights, grads: Mapping[str, torch.Tensor | OuterProducts],
          step: int, steps: int, create_graph: bool) -> Weights:
    """``phi <- phi - alpha * grad`` for bank ``index`` at ``step`` of ``steps``: low-rank where it
    can stay so (see the module docstring), the rest by ``algorithm.step`` on dense tensors."""
    low_rank, dense = {}, {}
    for name, grad in grads.items():
        weight = weights[name]
        if not create_graph:  # first order: a constant, also where the guard densified its factors
            grad = grad.detach()
        if isinstance(grad, OuterProducts):
            if algorithm.low_rank_step and isinstance(weight, LowRankWeight) and _low_rank_cheaper(weight, grad):
                rate = _per_pair(algorithm.rate(index, name, step, steps), weight.shape)
                if rate is not None:
                    low_rank[name] = weight.stepped(grad, rate)
                    continue
            grad = grad.dense()
        dense[name] = grad
    weights = {name: w.dense() if name in dense and isinstance(w, LowRankWeight) else w for name, w in weights.items()}
    return {**algorithm.step(index, weights, dense, step, steps), **low_rank}


def _per_pair(rate: torch.Tensor | float, shape: torch.Size) -> torch.Tensor | float | None:
    """The rate of a weight ``[T, N, d_in, d_out]`` as one number per (node, task), ``[N, T, 1, 1]``
    (or one number); ``None`` when it varies within a (task, node)'s matrix."""
    if isinstance(rate, float) or rate.dim() == 0:
        return rate
    if rate.dim() < 2 or rate.shape[-2:] != (1, 1):
        return None
    per_pair = torch.broadcast_to(rate.reshape(rate.shape[:-2]), shape[:2])
    return per_pair.transpose(0, 1)[:, :, None, None]


def _low_rank_cheaper(weight: LowRankWeight, grad: OuterProducts) -> bool:
    """Whether the step's weight is cheaper to use low-rank. Its factors are tensors the step holds
    anyway (a layer's input rows and ``dL/dz``), so the question is compute: on ``K`` rows the
    low-rank form costs ``K R (d_in + d_out)``, the dense one ``R d_in d_out`` to form and
    ``K d_in d_out`` to apply, so with rank ``R`` up to about ``K`` it is the cheaper while
    ``R (d_in + d_out) <= 2 d_in d_out`` (a one-column head is dense from the first step)."""
    d_in, d_out = weight.initial.shape[-2:]
    return (weight.rank + grad.rank) * (d_in + d_out) <= 2 * d_in * d_out


def _detached(weights: Weights, names: tuple[str, ...]) -> dict[str, torch.Tensor | LowRankWeight]:
    """``weights`` cut from the graph; the tensors of ``names`` start a new one (a low-rank
    weight's gradient is read from the bank's pre-activations instead)."""
    return {name: w.detach() if isinstance(w, LowRankWeight) else w.detach().requires_grad_(name in names)
            for name, w in weights.items()}
