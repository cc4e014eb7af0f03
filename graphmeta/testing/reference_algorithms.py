r"""The reference's definition of every adaptation algorithm, one class each, written from the papers.

The per-node reference (:mod:`graphmeta.testing.reference`) runs one (task ``t``, node ``i``) at a
time and asks the definition of ``model.config["algorithm"]`` the few things that differ between
algorithms; everything else (the node learners, the Table learners' conjugate update, message
passing, the meta-loss of the query set) is the reference's own. A definition reads the model's
parameters by name only (``ref.parameters``, ``ref.config``, ``ref.slices(name)`` for a node's
own row and entries of a bank) and calls nothing of the engine. A new algorithm is its module in
:mod:`graphmeta.adapt.algorithms` and its definition here; the tests take every registered
algorithm and fail until it has one.

The defaults are MAML's (Finn et al. 2017). The adapted weights: every weight of the node. Step
``k`` of ``K`` is ``phi <- phi - alpha_k * grad L_support(phi)``. A fixed rate is ``inner_lr``
(``model.config``) at every step. Learned rates are ``inner_lr * u``, ``u`` the named scale
parameter, clamped into ``[min_rate, max_rate]`` (``model.config``; ``None``: no bound), trained for
``S = max(inner_steps, 1)`` steps: step ``k < S`` takes trained step ``s = k`` at its full rate,
and a step ``k >= S`` (when ``K > S``) the last trained step ``s = S - 1`` at the share ``S / K``:
with ``learn_inner_lr``, ``u = algorithm.rate_scales[s]``. The meta-loss is ``L_query(phi_S)``
(after message passing), its gradient through the inner gradients in training mode (second
order).

* ``fomaml``: first order, the inner gradients are constants.
* ``metasgd``: ``u = algorithm.rate_scales.<bank>.<weight>[node]``, one scale per entry.
* ``mamlpp``: ``u = algorithm.rate_scales.<bank>.<weight>[s, node]``, one per weight and step; the
  meta-loss is ``sum_{s=1}^S v_s L_query(phi_s)`` for ``S >= 2`` (only ``phi_S`` corrected), with
  the importances of Antoniou et al. (2019): at ``e = progress / 0.15`` (``algorithm.progress``),
  ``v_s = max((1 - e) / S, 0.03 / S)`` for ``s < S`` and ``v_S = min((1 + (S - 1) e) / S, 1 - 0.03 (S - 1) / S)``.
* ``anil``: only the output layer (``head_weight``, ``head_bias``) adapts.
* ``reptile``: first order; the meta-loss is ``1 / (2T) sum_t sum_i |theta_i - phi_{t,i}|^2`` with
  ``phi`` constant (before message passing), plus ``L_query`` of the corrected weights when
  message passing is on, which then reads constants (``phi``, ``delta`` and ``L`` detached).
* ``cavia``: the adapted weight is a context ``c in R^m``, zero before the first step, that
  enters the first layer (``hidden0``, the MLP's head when it has no hidden layer, a GNN's
  ``conv0``) as ``b + c W_c``, with ``W_c = algorithm.projections.<bank>[node]``.
* ``alpaca``: no gradient step; at the first step the output layer becomes the posterior mean of
  Bayesian linear regression on the features ``phi = [head input, 1]`` of the counting support
  shots, ``Y`` their values (one-hot for classification), under the mixture prior of component
  ``m``: mean ``mu_1 = theta_head`` (the head's rows, then the bias as the last row), ``mu_m = mu_1
  + algorithm.mean_offsets.<bank>[node, m - 2]``; precision ``P_m = L L^T`` with ``L`` the strictly
  lower part of ``algorithm.precision_factors.<bank>[node, m]`` plus ``diag(exp(its diagonal))``
  (the node's own rows and columns); noise ``s = exp(algorithm.log_noise.<bank>[node])``; mixing
  ``log_softmax(algorithm.log_mixture.<bank>[node])``. With ``A = phi^T phi / s + P_m``,
  ``R = Y - phi mu_m``, ``G = phi^T R / s``: ``w_m = mu_m + A^{-1} G``, evidence
  ``-1/2 (sum_o (R_o.R_o / s - G_o . A^{-1} G_o) + O (log det A - log det P_m))``, and the head is
  ``sum_m r_m w_m`` with ``r = softmax(log mixing + evidence)``; later steps keep it. A node of a
  bank that holds a latent node or a child of one takes MAML's step on its output layer alone
  instead, at ``inner_lr``, every step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch

from ..registry import Registry

NodeWeights = dict[str, torch.Tensor]
#: MAML++: the fraction of training over which the multi-step importances anneal, and the floor
#: of a non-final importance, times the number of steps.
ANNEAL_FRACTION, FLOOR = 0.15, 0.03

#: The reference's definition of every algorithm, by name.
REFERENCE_ALGORITHMS: Registry[type[ReferenceAlgorithm]] = Registry("reference algorithm")


class ReferenceAlgorithm:
    """MAML's definition; each algorithm below changes what differs (see the module docstring).

    ``ref`` is the reference of one model: ``ref.parameters`` (by name), ``ref.config``,
    ``ref.theta(name)``, ``ref.slices(name)`` and the node computations an algorithm needs."""

    name: ClassVar[str] = "maml"
    #: Whether the meta-gradient flows through the inner gradients in training mode.
    second_order: ClassVar[bool] = True
    #: Whether message passing reads the adaptation as constants (the meta-init learns from its own rule).
    constant_messages: ClassVar[bool] = False
    #: ``algorithm_options`` that exercise every part of the definition in the tests.
    test_options: ClassVar[dict[str, Any]] = {}
    #: Whether the step is a closed-form fit (exact, never refused) rather than a gradient step.
    closed_form: ClassVar[bool] = False

    def initial(self, ref: Any, name: str, theta: NodeWeights) -> NodeWeights:
        """Node ``name``'s weights before the first step, from its meta-initialisation ``theta``."""
        return theta

    def fits(self, ref: Any, name: str) -> bool:
        """Whether node ``name``'s step is a closed-form fit (exact, never refused): :attr:`closed_form`."""
        return self.closed_form

    def adapted_names(self, ref: Any, name: str) -> list[str]:
        """The weights of node ``name`` that adapt, in the order of the bank's parameters."""
        return list(ref.theta(name))

    def composed(self, ref: Any, name: str, weights: NodeWeights) -> NodeWeights:
        """The weights the node computes with."""
        return weights

    def rate(self, ref: Any, name: str, weight: str, step: int, steps: int) -> torch.Tensor | float:
        """``alpha`` of ``weight`` of node ``name`` at ``step`` of ``steps``."""
        if not ref.config["learn_inner_lr"]:
            return ref.config["inner_lr"]
        trained, share = trained_step(step, steps, max(ref.config["inner_steps"], 1))
        return learned_rate(ref, ref.parameters["algorithm.rate_scales"][trained]) * share

    def inner_step(self, ref: Any, name: str, weights: NodeWeights, loss: torch.Tensor, step: int, steps: int,
                   create_graph: bool, fit: Callable[[NodeWeights], NodeWeights], factor: float = 1.0
                   ) -> NodeWeights:
        """One inner step of node ``name`` from its support ``loss``, ``factor`` times its size;
        ``fit(weights)`` is the node's closed-form fit of its output layer to its support rows, for
        algorithms that use one."""
        adapted = self.adapted_names(ref, name)
        # the loss may be a task's summed loss, differentiated once per node (latent nodes: see reference)
        grads = torch.autograd.grad(loss, [weights[weight] for weight in adapted], create_graph=create_graph,
                                    retain_graph=True)
        stepped = dict(weights)
        for weight, grad in zip(adapted, grads):
            stepped[weight] = weights[weight] - factor * self.rate(ref, name, weight, step, steps) * grad
        return stepped

    def meta_loss(self, ref: Any, final: torch.Tensor, adaptation: Any,
                  query_loss: Callable[[dict[tuple[int, str], NodeWeights]], torch.Tensor]) -> torch.Tensor:
        """The meta-loss from ``final``, the query loss of the adapted weights; ``query_loss(weights)``
        gives it for other per-(task, node) weights."""
        return final


@REFERENCE_ALGORITHMS.register
class MAMLDefinition(ReferenceAlgorithm):
    name = "maml"


@REFERENCE_ALGORITHMS.register
class FOMAMLDefinition(ReferenceAlgorithm):
    name = "fomaml"
    second_order = False


@REFERENCE_ALGORITHMS.register
class MetaSGDDefinition(ReferenceAlgorithm):
    name = "metasgd"

    def rate(self, ref: Any, name: str, weight: str, step: int, steps: int) -> torch.Tensor | float:
        b, row, slices = ref.slices(name)
        _, share = trained_step(step, steps, max(ref.config["inner_steps"], 1))
        return learned_rate(ref, ref.parameters[f"algorithm.rate_scales.{b}.{weight}"][(row, *slices[weight])]) * share


@REFERENCE_ALGORITHMS.register
class MAMLPlusPlusDefinition(ReferenceAlgorithm):
    name = "mamlpp"

    def rate(self, ref: Any, name: str, weight: str, step: int, steps: int) -> torch.Tensor | float:
        b, row, _ = ref.slices(name)
        trained, share = trained_step(step, steps, max(ref.config["inner_steps"], 1))
        return learned_rate(ref, ref.parameters[f"algorithm.rate_scales.{b}.{weight}"][trained, row]) * share

    def meta_loss(self, ref: Any, final: torch.Tensor, adaptation: Any,
                  query_loss: Callable[[dict[tuple[int, str], NodeWeights]], torch.Tensor]) -> torch.Tensor:
        steps = ref.config["inner_steps"]
        if steps < 2:
            return final
        importances = mamlpp_importances(float(dict(ref.model.named_buffers())["algorithm.progress"]), steps)
        return sum(v * query_loss({key: every[s] for key, every in adaptation.steps.items()})
                   for s, v in enumerate(importances[:-1])) + importances[-1] * final


@REFERENCE_ALGORITHMS.register
class ANILDefinition(ReferenceAlgorithm):
    name = "anil"

    def adapted_names(self, ref: Any, name: str) -> list[str]:
        return [weight for weight in ref.theta(name) if weight.startswith("head_")]


@REFERENCE_ALGORITHMS.register
class ReptileDefinition(ReferenceAlgorithm):
    name = "reptile"
    second_order = False
    constant_messages = True

    def meta_loss(self, ref: Any, final: torch.Tensor, adaptation: Any,
                  query_loss: Callable[[dict[tuple[int, str], NodeWeights]], torch.Tensor]) -> torch.Tensor:
        num_tasks = 1 + max(t for t, _ in adaptation.plain)
        pull = sum(0.5 * (adaptation.initial[key][weight] - phi.detach()).pow(2).sum() / num_tasks
                   for key, weights in adaptation.plain.items() for weight, phi in weights.items())
        return pull + final if ref.config["message_passing"] and ref.config["inner_steps"] > 0 else pull


@REFERENCE_ALGORITHMS.register
class CAVIADefinition(ReferenceAlgorithm):
    name = "cavia"
    test_options = {"context_dim": 3}

    def initial(self, ref: Any, name: str, theta: NodeWeights) -> NodeWeights:
        context_dim = ref.config["algorithm_options"].get("context_dim", 4)
        return {**theta, "context": theta["head_bias"].new_zeros(context_dim).requires_grad_()}

    def adapted_names(self, ref: Any, name: str) -> list[str]:
        return ["context"]

    def composed(self, ref: Any, name: str, weights: NodeWeights) -> NodeWeights:
        """A context folded into the first layer's bias, ``b + c W_c`` (weights without one: as they are)."""
        if "context" not in weights:
            return weights
        composed = {key: w for key, w in weights.items() if key != "context"}
        bias = f"{ref.first_layer(name)}_bias"
        b, row, slices = ref.slices(name)
        projection = ref.parameters[f"algorithm.projections.{b}"][row][:, slices[bias][0]]  # cut to the own width
        composed[bias] = composed[bias] + weights["context"] @ projection
        return composed


@REFERENCE_ALGORITHMS.register
class ALPaCADefinition(ReferenceAlgorithm):
    name = "alpaca"
    test_options = {"prior_components": 3}
    closed_form = True

    def adapted_names(self, ref: Any, name: str) -> list[str]:
        return [weight for weight in ref.theta(name) if weight.startswith("head_")]

    def fits(self, ref: Any, name: str) -> bool:
        """A node of a bank holding a latent node or a child of one steps its head by gradient instead."""
        bank = next(bank for bank in ref.model.banks if name in bank.names)
        latent = set(ref.graph.latent)
        return not any(node in latent or latent & set(ref.graph.parents(node)) for node in bank.names)

    def inner_step(self, ref: Any, name: str, weights: NodeWeights, loss: torch.Tensor, step: int, steps: int,
                   create_graph: bool, fit: Callable[[NodeWeights], NodeWeights], factor: float = 1.0
                   ) -> NodeWeights:
        if not self.fits(ref, name):  # MAML's step on the head alone, at inner_lr
            return super().inner_step(ref, name, weights, loss, step, steps, create_graph, fit, factor)
        return fit(weights) if step == 0 else weights


def alpaca_head(ref: Any, name: str, weights: NodeWeights, phi: torch.Tensor, y: torch.Tensor) -> NodeWeights:
    """ALPaCA: the head replaced by the mixture posterior mean ``sum_m r_m w_m`` on the features
    ``phi [K', D]`` (the head's input and a 1) and values ``y [K', O]`` of the counting support shots."""
    head = torch.cat([weights["head_weight"], weights["head_bias"][None]])  # [D, O]
    noise = _alpaca_parameter(ref, "log_noise", name).exp()
    log_mixing = _alpaca_parameter(ref, "log_mixture", name).log_softmax(-1)
    offsets = _alpaca_head_rows(ref, "mean_offsets", name)
    raw = _alpaca_head_rows(ref, "precision_factors", name, square=True)
    posteriors, log_evidence = [], []
    for m in range(len(log_mixing)):
        mean = head if m == 0 else head + offsets[m - 1]
        factor = torch.tril(raw[m], diagonal=-1) + torch.diag(raw[m].diagonal().exp())
        precision = factor @ factor.T
        a = phi.T @ phi / noise + precision
        residual = y - phi @ mean
        g = phi.T @ residual / noise
        correction = torch.linalg.solve(a, g)
        fit = sum(residual[:, o] @ residual[:, o] / noise - g[:, o] @ correction[:, o] for o in range(y.shape[1]))
        log_evidence.append(-0.5 * (fit + y.shape[1] * (torch.logdet(a) - torch.logdet(precision))))
        posteriors.append(mean + correction)
    responsibilities = torch.softmax(log_mixing + torch.stack(log_evidence), dim=0)
    posterior = sum(r * w for r, w in zip(responsibilities, posteriors))
    return {**weights, "head_weight": posterior[:-1], "head_bias": posterior[-1]}


def _alpaca_parameter(ref: Any, kind: str, name: str) -> torch.Tensor:
    """ALPaCA's ``algorithm.<kind>.<bank>`` row of node ``name``."""
    b, row, _ = ref.slices(name)
    return ref.parameters[f"algorithm.{kind}.{b}"][row]


def _alpaca_head_rows(ref: Any, kind: str, name: str, square: bool = False) -> torch.Tensor:
    """ALPaCA's per-component ``[M', D_pad + 1, ...]`` row of node ``name`` cut to the node's own
    head inputs and the bias (the last row), and to its outputs (or, ``square``, the same rows
    again as columns)."""
    b, row, slices = ref.slices(name)
    rows, outputs = slices["head_weight"]
    full = ref.parameters[f"algorithm.{kind}.{b}"][row]
    own = list(range(full.shape[-2] - 1))[rows] + [full.shape[-2] - 1]
    return full[:, own][:, :, own] if square else full[:, own, outputs]


def learned_rate(ref: Any, scale: torch.Tensor) -> torch.Tensor:
    """``clamp(inner_lr * scale, min_rate, max_rate)`` (no bound where ``None``)."""
    rate = ref.config["inner_lr"] * scale
    low, high = ref.config["min_rate"], ref.config["max_rate"]
    return rate if low is None and high is None else rate.clamp(min=low, max=high)


def trained_step(step: int, steps: int, trained: int) -> tuple[int, float]:
    """``(s, share)``: the trained step whose learned rate step ``step`` of ``steps`` takes, and the
    share of it (see the module)."""
    if step < trained:
        return step, 1.0
    return trained - 1, trained / steps


def mamlpp_importances(progress: float, steps: int) -> list[float]:
    """MAML++'s multi-step loss importances ``v [S]`` at ``progress`` (0..1) of meta-training,
    as in the authors' ``get_per_step_loss_importance_vector`` (see the module)."""
    epochs = progress / ANNEAL_FRACTION
    floor = FLOOR / steps
    earlier = [max(1.0 / steps - epochs / steps, floor) for _ in range(steps - 1)]
    final = min(1.0 / steps + epochs * (steps - 1) / steps, 1.0 - (steps - 1) * floor)
    return earlier + [final]
