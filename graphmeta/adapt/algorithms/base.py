"""What every adaptation algorithm is: the few methods :class:`~graphmeta.GraphMetaLearner` calls.

An algorithm takes every (task, node) from its meta-initialisation ``theta`` to adapted fast
weights ``phi`` in ``S`` inner steps on the support set, and says which loss trains the
meta-parameters. The model asks it, without knowing which algorithm it has:

* :meth:`Algorithm.adapting_names`: which named weights of a bank adapt;
* :meth:`Algorithm.initial`: the fast weights before the first step (``theta``, plus any
  per-task state the algorithm adapts instead, such as CAVIA's context);
* :meth:`Algorithm.compose`: the weights the bank computes with, from the fast weights;
* :meth:`Algorithm.step`: one inner step ``phi <- phi - alpha_s * grad L_support(phi)``;
* :meth:`Algorithm.solves` / :meth:`Algorithm.solve`: instead of steps, a closed-form adaptation
  at the first step: a conjugate bank's own posterior, or (with :attr:`Algorithm.closed_form_head`)
  the output layer fitted exactly (:mod:`.alpaca`);
* :meth:`Algorithm.outer_loss`: the meta-loss, from the query loss of the adapted weights.

**What the engine needs to know** is declared as class settings, never inferred:
:attr:`~Algorithm.second_order`, :attr:`~Algorithm.query_trains_theta`,
:attr:`~Algorithm.uses_every_step`, :attr:`~Algorithm.closed_form_head` and
:attr:`~Algorithm.low_rank_step` (whether :meth:`~Algorithm.step` is the plain step that a
low-rank weight can take on its factors).

**Options.** What only one algorithm reads (CAVIA's ``context_dim``, ALPaCA's
``prior_components``) is a keyword-only parameter of its constructor after ``banks`` and
``settings``; ``GraphMetaLearner(..., algorithm_options={...})`` (``model.algorithm_options`` in
YAML) passes them, checked against that signature (:func:`~graphmeta.adapt.algorithms.build_algorithm`).
What every algorithm shares is :class:`InnerLoopSettings`.

**Learned rates** (:meth:`Algorithm.learned_rates`: ``rate_scales`` with ``learn_inner_lr``,
Meta-SGD's and MAML++'s ``rate_scales``) are meta-trained for the ``S`` steps of training. Each
is parametrised relative to the initial rate, ``alpha = inner_lr * u`` with ``u = 1`` at the
start, so an outer optimizer moves it in proportion to its size: Adam at ``lr`` changes ``u`` by
about ``lr`` per step, as it changes a weight of size 1, whatever ``inner_lr`` is (a rate of
0.001 trained directly at Adam's 0.001 would move by its own size in one step, and diverge).
The rate a trained step applies is ``inner_lr * u`` projected into ``[min_rate, max_rate]``. Two
rules keep them usable, and the algorithm owns both, so any training loop gets them:

* *range*: a step reads ``clamp(rate, min_rate, max_rate)`` (:meth:`Algorithm.bounded`), so a
  rate never turns into gradient ascent (a negative rate) unless asked (``min_rate=None``),
  whatever an outer optimizer does to the parameter; inside the range this is the parameter
  itself, value and gradient. A training loop may also project the parameters themselves
  after each outer step (:meth:`Algorithm.project_rates_`, as the run loop does), so that a rate
  pushed past a bound keeps a gradient that can bring it back;
* *more steps than trained* (:func:`trained_step`): adapting with ``K > S`` steps takes the
  ``S`` trained steps as trained, then ``K - S`` more at the last trained rate times
  ``S / K``. The adaptation up to step ``S`` is the one meta-training optimised; the extra
  steps go on down the support loss, each ``K / S`` times smaller than a trained step, so
  along a direction of curvature ``L`` they contract wherever ``alpha L < 2 K / S`` (a
  reused rate needs ``alpha L < 2``, and a rate learned for a few steps may overshoot: reused,
  Meta-SGD's 1-step sinusoid rates diverge on many tasks at 10 steps), and together
  they move less than the last trained step times ``S``. A fixed rate (``learn_inner_lr=False``)
  is the protocol's rate at every step and is not shrunk. ``K <= S`` takes the first ``K``
  trained rates.

Its learnable state (inner learning rates, context projections) lives in the algorithm, an
``nn.Module`` inside the model, so the outer optimizer trains it with everything else. A new
algorithm is one file with a subclass that names itself (``name = "..."``), registered with
:func:`~graphmeta.adapt.algorithms.register`, and its independent definition in
:mod:`graphmeta.testing.reference_algorithms`; the tests find it in the registry.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from ...data import Split
from ...errors import ConfigError
from ...learners.banks.bank import LearnerBank, Weights
from ...learners.banks.bank_set import BankSet
from ...registry import Registry
from ...validation import check_arguments


@dataclass(frozen=True)
class InnerLoopSettings:
    """The model's settings that every algorithm reads: ``inner_lr`` (``alpha``, or its initial
    value where it is learned), ``inner_steps`` (``S`` during meta-training), ``learn_inner_lr``
    (learn one rate per step) and the range ``[min_rate, max_rate]`` of learned rates (``None``:
    no bound on that side)."""

    inner_lr: float
    inner_steps: int
    learn_inner_lr: bool = False
    min_rate: float | None = 0.0
    max_rate: float | None = None


@dataclass(frozen=True)
class Adaptation:
    """What the inner loop and message passing produced for T tasks, per bank.

    ``initial``: the fast weights before the first step; ``steps[s]``: after inner step
    ``s + 1`` (kept only for algorithms whose meta-loss reads them, see
    :attr:`Algorithm.uses_every_step`); ``plain``: after the inner loop; ``final``: after
    message passing (``plain`` itself when it is off), what the model predicts with;
    ``support_loss``: the support loss ``[T, N]`` before adaptation (``None`` for zero steps).
    """

    initial: list[Weights]
    steps: list[list[Weights]]
    plain: list[Weights]
    final: list[Weights]
    support_loss: torch.Tensor | None

    @property
    def corrected(self) -> bool:
        """Whether message passing corrected the plain adaptation."""
        return self.final is not self.plain


class Algorithm(nn.Module):
    """Base class: plain gradient steps on every weight, one rate per step (see :mod:`.maml`)."""

    name: ClassVar[str]
    #: Whether the meta-gradient flows through the inner loop's gradients (``create_graph``).
    second_order: ClassVar[bool] = True
    #: Whether theta's meta-gradient comes from the query loss (Reptile's does not).
    query_trains_theta: ClassVar[bool] = True
    #: Whether :meth:`outer_loss` reads the weights after every inner step.
    uses_every_step: ClassVar[bool] = False
    #: Whether the output layer of a gradient bank is fitted in closed form (:meth:`solve`) instead of stepped.
    closed_form_head: ClassVar[bool] = False
    #: Whether :meth:`step` is the plain ``phi - alpha * grad`` with one rate per (task, node) or
    #: coarser, which a low-rank weight can take on its factors (an algorithm with another step says False).
    low_rank_step: ClassVar[bool] = True

    def __init__(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        super().__init__()
        self.inner_lr = float(settings.inner_lr)
        self.min_rate, self.max_rate = settings.min_rate, settings.max_rate
        self.build_rates(banks, settings)

    def build_rates(self, banks: BankSet, settings: InnerLoopSettings) -> None:
        """One rate per step, ``inner_lr * rate_scales [max(S, 1)]``, learned with ``learn_inner_lr``;
        otherwise ``inner_lr`` itself at every step (a Python number, exact in any dtype)."""
        if settings.learn_inner_lr:
            self.rate_scales = nn.Parameter(torch.ones(max(settings.inner_steps, 1)))

    def adapting_names(self, bank: LearnerBank) -> tuple[str, ...]:
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
        if not hasattr(self, "rate_scales"):
            return self.inner_lr
        trained, share = trained_step(step, steps, len(self.rate_scales))
        return share_of(self.bounded(self.rate_scales[trained]), share)

    def bounded(self, scale: torch.Tensor) -> torch.Tensor:
        """The learned rate of ``scale`` as a step applies it: ``clamp(inner_lr * scale, min_rate,
        max_rate)``, which inside the range is ``inner_lr * scale`` (value and gradient)."""
        rate = self.inner_lr * scale
        if self.min_rate is None and self.max_rate is None:
            return rate
        return rate.clamp(min=self.min_rate, max=self.max_rate)

    def step(self, index: int, fast: Weights, grads: Mapping[str, torch.Tensor], step: int, steps: int) -> Weights:
        """``phi <- phi - alpha * grad`` for the weights in ``grads`` at ``step`` of ``steps``; the others stay."""
        return {name: _descend(weight, grads[name], self.rate(index, name, step, steps)) if name in grads else weight
                for name, weight in fast.items()}

    def solves(self, bank: LearnerBank) -> bool:
        """Whether ``bank`` adapts in closed form (:meth:`solve`) instead of by gradient steps: a
        conjugate bank always does, a gradient bank's head where :attr:`closed_form_head`."""
        return bank.closed_form or self.closed_form_head

    def solve(self, index: int, bank: LearnerBank, fast: Weights, support: Split) -> Weights:
        """Bank ``index``'s fast weights adapted to ``support`` in closed form, for the banks it
        :meth:`solves`; the inner loop calls it at the first step and keeps the result. Here: a
        conjugate bank's exact posterior."""
        return bank.posterior(fast, support)

    def learned_rates(self) -> list[nn.Parameter]:
        """The parameters that set learned inner rates (their scales ``u``, trained by the outer
        loop): ``rate_scales`` with ``learn_inner_lr``."""
        return [self.rate_scales] if hasattr(self, "rate_scales") else []

    @torch.no_grad()
    def project_rates_(self) -> None:
        """Project every learned rate into ``[min_rate, max_rate]`` in place, through its scale
        (projected gradient descent); the run loop calls it after each outer step. Steps read the
        rates :meth:`bounded` whether or not a loop calls it."""
        if self.min_rate is None and self.max_rate is None:
            return
        low = None if self.min_rate is None else self.min_rate / self.inner_lr
        high = None if self.max_rate is None else self.max_rate / self.inner_lr
        for scales in self.learned_rates():
            scales.clamp_(min=low, max=high)

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
        bounds = f", rates in [{self.min_rate}, {self.max_rate}]" if self.learned_rates() else ""
        return f"name={self.name!r}, second_order={self.second_order}{bounds}"


#: Every adaptation algorithm by name; each algorithm's module registers its class (``@ALGORITHMS.register``).
ALGORITHMS: Registry[type[Algorithm]] = Registry("algorithm")


def build_algorithm(name: str, banks: BankSet, settings: InnerLoopSettings,
                    options: Mapping[str, Any] | None = None) -> Algorithm:
    """The algorithm ``name`` for ``banks``: its class from :data:`ALGORITHMS`, built with the
    shared ``settings`` and its own ``options`` (checked against the keyword-only parameters of
    its constructor: an unknown option, or a value of the wrong type, is a one-line
    :class:`~graphmeta.ConfigError` naming it and the closest valid one)."""
    algorithm = ALGORITHMS.lookup(name, "GraphMetaLearner(algorithm=...)")
    where = f"the options of algorithm {name!r} (algorithm_options)"
    if options and not algorithm_options(algorithm):
        raise ConfigError(f"{where}: {name} takes no options, got {sorted(options)}")
    options = check_arguments(algorithm, dict(options or {}), where, exclude=("banks", "settings"))
    return algorithm(banks, settings, **options)


def algorithm_options(algorithm: type[Algorithm]) -> dict[str, Any]:
    """``{option: default}``: the keyword-only parameters of ``algorithm``'s constructor."""
    parameters = inspect.signature(algorithm.__init__).parameters.values()
    return {p.name: p.default for p in parameters if p.kind is p.KEYWORD_ONLY}


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
