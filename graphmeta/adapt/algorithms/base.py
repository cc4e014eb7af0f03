"""What every adaptation algorithm is: the few methods :class:`~graphmeta.GraphMetaLearner` calls.

An algorithm takes every (task, node) from its meta-initialisation ``theta`` to adapted fast
weights ``phi`` in ``S`` inner steps on the support set, and says which loss trains the
meta-parameters. The model asks it, without knowing which algorithm it has:

* :meth:`Algorithm.adapted`: which named weights of a bank adapt;
* :meth:`Algorithm.initial`: the fast weights before the first step (``theta``, plus any
  per-task state the algorithm adapts instead, such as CAVIA's context);
* :meth:`Algorithm.compose`: the weights the bank computes with, from the fast weights;
* :meth:`Algorithm.step`: one inner step ``phi <- phi - alpha_s * grad L_support(phi)``;
* :meth:`Algorithm.fits_head` / :meth:`Algorithm.fit_head`: instead of steps, the output layer
  fitted in closed form at the first step (:mod:`.alpaca`);
* :meth:`Algorithm.outer_loss`: the meta-loss, from the query loss of the adapted weights.

**Learned rates** (:meth:`Algorithm.learned_rates`: ``inner_lrs`` with ``learn_inner_lr``,
Meta-SGD's and MAML++'s ``rates``) are meta-trained for the ``S`` steps of training; the rate a
trained step applies is the parameter's value. Two rules keep them usable:

* *range*: the run loop trains them at their own outer rate and projects them back into
  ``[min_rate, max_rate]`` after every outer step (:meth:`Algorithm.clamp_rates_`), so a
  rate never turns into gradient ascent (a negative rate) unless asked;
* *more steps than trained* (:func:`trained_step`): adapting with ``K > S`` steps takes the
  ``S`` trained steps as trained, then ``K - S`` more at the last trained rate times
  ``S / K``. The adaptation up to step ``S`` is the one meta-training optimised; the extra
  steps go on down the support loss, each ``K / S`` times smaller than a trained step, so
  along a direction of curvature ``L`` they contract wherever ``alpha L < 2 K / S`` (a
  reused rate needs ``alpha L < 2``, and a rate learned for a few steps may overshoot: reused,
  Meta-SGD's 1-step rates diverged on 410 of 1,000 sinusoid tasks at 10 steps), and together
  they move less than the last trained step times ``S``. A fixed rate (``learn_inner_lr=False``)
  is the protocol's rate at every step and is not shrunk. ``K <= S`` takes the first ``K``
  trained rates.

Its learnable state (inner learning rates, context projections) lives in the algorithm, an
``nn.Module`` inside the model, so the outer optimizer trains it with everything else. A new
algorithm is one file with a subclass and one line in :data:`~graphmeta.adapt.algorithms.ALGORITHMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from ...data import Split
from ...learners.banks.bank import LearnerBank, Weights
from ...learners.banks.bank_set import BankSet


@dataclass(frozen=True)
class InnerLoopSettings:
    """The model's settings that algorithms read: ``inner_lr`` (``alpha``, or its initial
    value where it is learned), ``inner_steps`` (``S`` during meta-training), ``learn_inner_lr``
    (learn one rate per step), ``context_dim`` (CAVIA's context size) and ``prior_components``
    (the size of ALPaCA's mixture prior)."""

    inner_lr: float
    inner_steps: int
    learn_inner_lr: bool = False
    context_dim: int = 4
    prior_components: int = 1


@dataclass(frozen=True)
class Adaptation:
    """What the inner loop and message passing produced for T tasks, per bank.

    ``initial``: the fast weights before the first step; ``steps[s]``: after inner step
    ``s + 1`` (kept only for algorithms whose meta-loss reads them, see
    :attr:`Algorithm.uses_every_step`); ``plain``: after the inner loop; ``adapted``: after
    message passing (``plain`` itself when it is off); ``support_loss``: the support loss
    ``[T, N]`` before adaptation (``None`` for zero steps).
    """

    initial: list[Weights]
    steps: list[list[Weights]]
    plain: list[Weights]
    adapted: list[Weights]
    support_loss: torch.Tensor | None

    @property
    def corrected(self) -> bool:
        """Whether message passing corrected the plain adaptation."""
        return self.adapted is not self.plain


class Algorithm(nn.Module):
    """Base class: plain gradient steps on every weight, one rate per step (see :mod:`.maml`)."""

    name: ClassVar[str]
    #: Whether the meta-gradient flows through the inner loop's gradients (``create_graph``).
    second_order: ClassVar[bool] = True
    #: Whether theta's meta-gradient comes from the query loss (Reptile's does not).
    query_trains_theta: ClassVar[bool] = True
    #: Whether :meth:`outer_loss` reads the weights after every inner step.
    uses_every_step: ClassVar[bool] = False

    def __init__(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        super().__init__()
        self.build_rates(banks, settings)

    def build_rates(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        """One rate per step, ``inner_lrs [max(S, 1)]``: learned with ``learn_inner_lr``, else fixed."""
        rates = torch.full((max(settings.inner_steps, 1),), float(settings.inner_lr))
        if settings.learn_inner_lr:
            self.inner_lrs = nn.Parameter(rates)
        else:
            self.register_buffer("inner_lrs", rates)

    def adapted(self, bank: LearnerBank) -> tuple[str, ...]:
        """The names of ``bank``'s fast weights that adapt (a closed-form bank adapts its head)."""
        return bank.head if bank.closed_form else tuple(bank.theta)

    def initial(self, index: int, bank: LearnerBank, num_tasks: int) -> Weights:
        """Bank ``index``'s fast weights ``[T, N_b, ...]`` before the first inner step."""
        return bank.expand(num_tasks)

    def compose(self, index: int, fast: Weights) -> Weights:
        """The weights bank ``index`` computes with, from its fast weights (here: themselves)."""
        return fast

    def rate(self, index: int, name: str, step: int, steps: int) -> torch.Tensor | float:
        """``alpha`` of weight ``name`` of bank ``index`` at ``step`` of an adaptation of ``steps``
        steps: a number, or a tensor that broadcasts against ``[T, N_b, ...]``. Learned rates
        follow :func:`trained_step` past the trained steps; a fixed rate is the same at every step."""
        if not self.inner_lrs.requires_grad:
            return float(self.inner_lrs[min(step, len(self.inner_lrs) - 1)])
        trained, share = trained_step(step, steps, len(self.inner_lrs))
        return share_of(self.inner_lrs[trained], share)

    def step(self, index: int, fast: Weights, grads: Mapping[str, torch.Tensor], step: int, steps: int) -> Weights:
        """``phi <- phi - alpha * grad`` for the weights in ``grads`` at ``step`` of ``steps``; the others stay."""
        return {name: _descend(weight, grads[name], self.rate(index, name, step, steps)) if name in grads else weight
                for name, weight in fast.items()}

    def fits_head(self, bank: LearnerBank) -> bool:
        """Whether ``bank``'s head is fitted in closed form (:meth:`fit_head`) instead of stepped."""
        return False

    def fit_head(self, index: int, bank: LearnerBank, fast: Weights, support: Split) -> Weights:
        """Bank ``index``'s fast weights with its head fitted to ``support``, for banks that
        :meth:`fits_head`; the inner loop calls it at the first step and keeps the result."""
        raise NotImplementedError(f"{self.name} steps every head; it fits none in closed form")

    def learned_rates(self) -> list[nn.Parameter]:
        """The parameters that are inner rates (trained by the outer loop): ``inner_lrs`` with ``learn_inner_lr``."""
        return [self.inner_lrs] if isinstance(self.inner_lrs, nn.Parameter) else []

    @torch.no_grad()
    def clamp_rates_(self, min_rate: float | None = 0.0, max_rate: float | None = None) -> None:
        """Project every learned rate into ``[min_rate, max_rate]`` in place (``None``: no bound on
        that side); the run loop calls it after each outer step (projected gradient descent)."""
        if min_rate is None and max_rate is None:
            return
        for rates in self.learned_rates():
            rates.clamp_(min=min_rate, max=max_rate)

    def set_progress(self, fraction: float) -> None:
        """How far meta-training has come, from 0 to 1, for algorithms whose meta-loss changes
        over training (:mod:`.mamlpp`); the others ignore it. Training loops call it."""

    def outer_loss(self, query_loss: torch.Tensor, adaptation: Adaptation,
                   query_loss_of: Callable[[Sequence[Weights]], torch.Tensor]) -> torch.Tensor:
        """The meta-loss: the query loss of the adapted weights, ``L_query(phi)``.

        ``query_loss`` is that loss (already computed); ``query_loss_of(fast)`` computes it for
        other fast weights (e.g. after each inner step)."""
        return query_loss

    def extra_repr(self) -> str:
        return f"name={self.name!r}, second_order={self.second_order}"


def trained_step(step: int, steps: int, trained: int) -> tuple[int, float]:
    """``(s, share)``: step ``step`` of an adaptation of ``steps`` steps takes ``share`` times the
    learned rate of trained step ``s``, for rates trained for ``trained`` steps ``S``.

    Steps ``k < S`` are the trained steps, at their full rates; steps ``k >= S`` (only when
    ``K = steps > S``) take the last trained rate times ``S / K`` (see the module docstring).
    """
    if step < trained:
        return step, 1.0
    return trained - 1, trained / steps


def share_of(rate: torch.Tensor, share: float) -> torch.Tensor:
    """``share * rate``; at a full share (a trained step) the learned rate itself."""
    return rate if share == 1.0 else rate * share


def _descend(weight: torch.Tensor, grad: torch.Tensor, rate: torch.Tensor | float) -> torch.Tensor:
    if isinstance(rate, float):
        return torch.add(weight, grad, alpha=-rate)  # one fused pass when the rate is a constant
    return torch.addcmul(weight, rate, grad, value=-1)
