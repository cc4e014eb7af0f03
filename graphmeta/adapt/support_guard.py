r"""The support guard: an inner step stays only where it does not raise its (task, node)'s support loss.

For every (task ``t``, node ``n``) of a bank that takes gradient steps, with ``L`` its support loss,
the guard keeps the weights ``phi^s`` it has accepted after ``s`` steps (``phi^0``: the weights
before the first step), their gradient ``g^s = grad L(phi^s)`` and a shrink factor ``c`` (1 at the
start). Step ``s`` proposes the algorithm's step on the shrunk gradient,

.. math::
    \phi' = \phi^s - \alpha_s \, c \, g^s ,

and the guard accepts it iff :math:`L(\phi')` is finite and :math:`L(\phi') \le L(\phi^s)`:

.. math::
    \phi^{s+1} = \phi',\ c \leftarrow \min(2c, 1) \quad\text{(accepted)}, \qquad
    \phi^{s+1} = \phi^s,\ c \leftarrow c / 2 \quad\text{(refused: the next step tries half of it from the same weights)}.

So :math:`L(\phi^S) \le L(\phi^0)` for every pair after any number of steps ``S``. A pair whose
steps overshoot (a rate too large for its curvature, as on inputs far from the training ones)
halves its step until one goes down, then tries to double it again, so one overshooting step
(a large first rate, say) costs one step and a rate too large throughout settles within a factor
of 2 of one that descends; every pair that never overshoots steps exactly as unguarded (``c = 1``).
(``not L' > L`` also accepts a finite loss after a non-finite start.)

**Cost.** :math:`L(\phi')` is the loss the next step computes anyway, with the gradient there;
only the last proposal needs one more forward pass, without gradient, which meta-training skips
(:mod:`.inner_loop`): there the query loss judges the last step.

**Meta-gradient.** The decision is a constant: it reads detached losses. Where every pair of a
bank accepts (and none was ever refused), the bank's weights and gradients are the proposal's
own tensors, so the meta-gradient is the unguarded one exactly. Where a pair refuses, each
adapting weight becomes ``torch.where(accepted, proposal, kept)`` per pair (a low-rank weight
densified first), whose values and gradients on the accepted pairs are the proposal's. (In
second-order training a refused proposal whose forward pass overflowed passes a zero cotangent
through infinite derivatives, and the meta-gradient turns NaN there, as the loss would have
without the guard; the outer step skips a non-finite gradient.)

Closed-form banks (a conjugate posterior, ALPaCA's head) are exact and not guarded.

**Host reads.** Which banks refused anything is read on the host, once per review, so a bank where
every pair accepted keeps the proposal's tensors as they are. Under ``torch.compile``
(``reads_host=False``), where such a read would break the captured graph, every guarded bank
takes the ``torch.where`` selection and the shrink: the same values, and on accepted pairs the
same gradients.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import torch

from ..learners.banks.bank import Weights
from ..learners.banks.low_rank import LowRankWeight, OuterProducts

Gradients = Mapping[str, torch.Tensor | OuterProducts]


@dataclass
class SupportGuard:
    """The guard's state over the banks of one inner loop; ``guarded[b]``: bank ``b`` takes
    gradient steps. :meth:`review` every loss of proposed weights, in order. ``reads_host=False``:
    never read a tensor on the host (module docstring)."""

    guarded: Sequence[bool]
    reads_host: bool = True
    kept: list[Weights] = field(default_factory=list)
    kept_gradients: list[Gradients] = field(default_factory=list)
    kept_loss: list[torch.Tensor | None] = field(default_factory=list)
    shrink: list[torch.Tensor | None] = field(default_factory=list)

    def review(self, proposed: list[Weights], gradients: list[Gradients] | None,
               losses: Sequence[torch.Tensor | None]) -> tuple[list[Weights], list[Gradients] | None]:
        """The accepted weights after the proposal ``proposed`` with its support ``losses`` per bank
        (``[T, N_b]``, ``None`` for an unguarded bank) and, with its ``gradients``, the gradients
        the next step takes, times the shrink. The first review accepts everything (the weights
        before the first step)."""
        if not self.kept:
            self.kept, self.kept_gradients = list(proposed), list(gradients or [{}] * len(proposed))
            self.kept_loss = [None if loss is None else loss.detach() for loss in losses]
            self.shrink = [None] * len(proposed)
            return proposed, gradients
        accepted = [None if loss is None else _no_worse(loss.detach(), kept)
                    for loss, kept in zip(losses, self.kept_loss)]
        refusals = [~mask.all() for mask in accepted if mask is not None]
        if not self.reads_host:
            refused = iter([True] * len(refusals))
        else:
            refused = iter(torch.stack(refusals).tolist() if refusals else [])  # one host sync per review
        weights, steps = list(proposed), None if gradients is None else list(gradients)
        for b, mask in enumerate(accepted):
            if mask is None:
                continue
            any_refused = next(refused)
            if any_refused:
                weights[b] = _select(mask, proposed[b], self.kept[b], self.kept_gradients[b])
                if steps is not None:
                    steps[b] = _select(mask, gradients[b], self.kept_gradients[b], gradients[b])
            if any_refused or self.shrink[b] is not None:
                shrink = self.shrink[b] if self.shrink[b] is not None else torch.ones_like(self.kept_loss[b])
                self.shrink[b] = torch.where(mask, (2 * shrink).clamp(max=1.0), shrink / 2)
            self.kept_loss[b] = torch.where(mask, losses[b].detach(), self.kept_loss[b])
        self.kept = weights
        if steps is None:
            return weights, None
        self.kept_gradients = steps
        return weights, [_shrunk(grads, shrink) for grads, shrink in zip(steps, self.shrink)]


def _no_worse(loss: torch.Tensor, kept: torch.Tensor) -> torch.Tensor:
    """``[T, N_b]`` bool: the proposal's loss is finite and not above the kept one."""
    return torch.isfinite(loss) & ~(loss > kept)


def _select(accepted: torch.Tensor, proposed: Mapping, kept: Mapping, names: Mapping) -> dict:
    """``proposed`` where a pair is ``accepted``, else ``kept``, for the entries ``names``; the
    other entries are ``proposed``'s."""
    selected = dict(proposed)
    for name in names:
        new, old = _dense(proposed[name]), _dense(kept[name])
        mask = accepted.reshape(*accepted.shape, *([1] * (new.dim() - 2)))
        selected[name] = torch.where(mask, new, old)
    return selected


def _dense(value: torch.Tensor | LowRankWeight | OuterProducts) -> torch.Tensor:
    return value.dense() if isinstance(value, (LowRankWeight, OuterProducts)) else value


def _shrunk(gradients: Gradients, shrink: torch.Tensor | None) -> Gradients:
    """``c * g`` with ``c [T, N_b]`` one factor per pair (``None``: 1 everywhere, ``gradients`` themselves)."""
    if shrink is None:
        return gradients
    return {name: grad.scaled(shrink.transpose(0, 1)[:, :, None, None]) if isinstance(grad, OuterProducts)
            else grad * shrink.reshape(*shrink.shape, *([1] * (grad.dim() - 2)))
            for name, grad in gradients.items()}
