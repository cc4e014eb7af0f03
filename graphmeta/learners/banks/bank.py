r"""`LearnerBank`: the nodes sharing one learner type, run as one batched module.

A bank owns the meta-initialisation ``theta`` of its ``N_b`` nodes: a mapping from parameter
name to tensor (the ``torch.func`` convention), every tensor stacked on a leading node axis.
Fast weights are the same mapping with a leading task axis, ``[T, N_b, ...]``, so every
(task, node) pair is one slice of one batched op. The names say what a tensor is: a bank's
``head`` names its output layer (what ANIL adapts and message passing corrects) and
``first_bias`` the bias of its first layer (where a context vector enters, for CAVIA).

A fast weight matrix may be kept factored, as a :class:`~graphmeta.learners.banks.low_rank.LowRankWeight`
(theta minus the outer products that gradient steps on a linear layer add); it reads as its
dense value wherever a tensor is expected.

Widths differ between nodes; the bank pads them to its widest node:

* padded input columns read a constant 0, so their weights never contribute;
* padded regression outputs are left out of the loss;
* padded class logits are set to a large negative number, so they never win a softmax.

A regression output has a predictive distribution (:meth:`LearnerBank.predictive`), so a node is
scored by its negative log-likelihood beside its squared error (:meth:`LearnerBank.regression_scores`).
A bank whose outputs are point predictions (``learns_noise``: the MLP and GNN banks) learns a
noise scale per node and output, the meta-parameter ``log_noise_std`` ``[N_b, D_out]``: it predicts
:math:`y \sim \mathcal N(\hat y, \sigma^2)` with :math:`\sigma = \exp(\texttt{log\_noise\_std})`,
meta-trained by the Gaussian negative log-likelihood of the query residuals *taken as data*
(:meth:`LearnerBank.noise_loss`),

.. math::
    \sum_o \tfrac12 \log(2 \pi \sigma_o^2) + \frac{\operatorname{sg}(y_o - \hat y_o)^2}{2 \sigma_o^2}
    \quad (\operatorname{sg}: \text{no gradient}),

so the meta-gradient of everything that makes :math:`\hat y` is the squared error's alone; its
minimum is :math:`\sigma_o^2` = the mean squared query residual of output ``o`` after adaptation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ...data import Split
from ...taskgraph import ColumnLayout, TaskGraph
from .low_rank import LowRankWeight, OuterProducts

#: Named weights of one bank: parameter name -> tensor, node axis first (task axis first for fast
#: weights, where a weight matrix may be a :class:`LowRankWeight`).
Weights = Mapping[str, torch.Tensor | LowRankWeight]


@dataclass(frozen=True)
class GradientTaps:
    """Where one ``torch.autograd.grad`` of a bank's support loss reads its weights' gradients:
    ``tensors`` to differentiate, and ``gradients(grads of tensors) -> {name: gradient}`` (a
    tensor ``[T, N_b, ...]``, or :class:`OuterProducts` for a weight matrix)."""

    tensors: list[torch.Tensor]
    gradients: Callable[[Sequence[torch.Tensor]], dict[str, torch.Tensor | OuterProducts]]


def packed_source(split: Split) -> torch.Tensor:
    """``[T, K, F + W + 1]``: features, values and a trailing zero column that padding points at."""
    zero = split.values.new_zeros(*split.values.shape[:2], 1)
    return torch.cat([split.features, split.values, zero], dim=-1)


def gather_columns(source: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``source [T, K, S]`` gathered by ``index [N, D]`` into ``[T, N, K, D]`` in one op."""
    T, K, _ = source.shape
    N, D = index.shape
    flat = source.index_select(-1, index.reshape(-1))
    return flat.reshape(T, K, N, D).transpose(1, 2)


def uniform_(tensor: torch.Tensor, fan_in: torch.Tensor) -> None:
    """PyTorch's ``nn.Linear`` initialisation, per node: ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    ``fan_in`` has one entry per node (the node axis leads ``tensor``); a node without inputs
    uses bound 1.
    """
    bound = 1.0 / fan_in.clamp(min=1).to(tensor.dtype).sqrt()
    shape = (-1,) + (1,) * (tensor.dim() - 1)
    with torch.no_grad():
        tensor.uniform_(-1.0, 1.0).mul_(bound.reshape(shape))


class LearnerBank(nn.Module):
    """Base class of the banks: node bookkeeping, targets, masks and the per-node losses.

    Subclasses create ``self.theta`` (an ``nn.ParameterDict``, node axis first), set ``head``
    and ``first_bias``, and implement ``forward(weights, split, nodes=None) -> [T, N_b', K, D_out]``
    (regression outputs or logits) and ``reset_parameters()``.
    """

    theta: nn.ParameterDict
    # buffers (register_buffer), declared for the type checker
    target_index: torch.Tensor
    output_mask: torch.Tensor
    is_classification: torch.Tensor
    node_index: torch.Tensor
    requires_observed: torch.Tensor
    #: The names in ``theta`` of the output layer.
    head: tuple[str, ...] = ("head_weight", "head_bias")
    #: The name of the first layer's bias (``None``: the bank has no such layer).
    first_bias: str | None = None
    #: Whether the bank adapts in closed form, with :meth:`posterior`, instead of by gradient
    #: steps (see :mod:`graphmeta.adapt.inner_loop`); message passing then reads its
    #: :meth:`statistics` and applies its correction through :meth:`corrected`.
    closed_form: bool = False
    #: How many numbers per (task, node) :meth:`statistics` gives (0: a gradient bank).
    num_statistics: int = 0
    #: How many task factors the bank's prior reads (0: none). A bank with some implements
    #: ``factor_evidence(initial, adapted) -> (precision [T, r, r], information [T, r])`` and
    #: ``factor_shifted(initial, adapted, factor [T, r]) -> (moved prior, adapted under it)``
    #: (:mod:`graphmeta.adapt.task_factor`), as the Linear bank does.
    task_factors: int = 0
    #: Whether the bank learns the noise scale of its regression outputs, ``log_noise_std``
    #: (module docstring); a bank without regression nodes has none (``None``).
    learns_noise: bool = False
    #: Whether the bank finds the gradients of weights whose outputs other nodes read (a latent
    #: node's, :class:`~graphmeta.learners.banks.bank_set.BankSet`) from taps of that pass:
    #: ``row_weights(weights, index, sizes) -> [weights of a part of the rows index, ...]``,
    #: ``fed_forward(weights of rows nodes, split, nodes, names) -> (outputs, taps)`` and
    #: ``support_loss(weights, split, names, fed=[taps, ...], nodes=the other rows)``, as the MLP bank
    #: does; otherwise such a bank is tapped at its weights themselves (:func:`weight_tapped_loss`).
    taps_fed_outputs: bool = False

    def __init__(self, graph: TaskGraph, names: Sequence[str]) -> None:
        super().__init__()
        self.graph = graph
        self.layout = ColumnLayout(graph)
        self.names = list(names)
        specs = [graph.subtask(name) for name in self.names]
        self.output_width = max(s.width for s in specs)
        pad = self.layout.feature_width + self.layout.value_width
        value_index = self.layout.gather_index(
            self.names,
            lambda name: [self.layout.feature_width + c for c in range(self.layout.value_slices[name].start,
                                                                      self.layout.value_slices[name].stop)],
            self.output_width, pad)
        self.register_buffer("target_index", value_index, persistent=False)
        widths = torch.tensor([s.width for s in specs])
        self.register_buffer("output_mask", torch.arange(self.output_width) < widths[:, None], persistent=False)
        self.register_buffer("is_classification", torch.tensor([s.kind == "classification" for s in specs]),
                             persistent=False)
        self.kinds = (any(s.kind == "regression" for s in specs), any(s.kind == "classification" for s in specs))
        node_index = torch.tensor([self.layout.index[name] for name in self.names], dtype=torch.long)
        self.register_buffer("node_index", node_index, persistent=False)
        # each row: the node itself, then the observed nodes its input reads (its observed parents, and
        # through a latent parent, whose value is its prediction, that one's), padded with N (a column
        # that is always observed)
        rows = [[self.layout.index[name]] + [self.layout.index[p] for p in graph.observed_inputs(name)]
                for name in self.names]
        width = max(len(r) for r in rows)
        self.register_buffer("requires_observed", torch.tensor([r + [len(graph)] * (width - len(r)) for r in rows]),
                             persistent=False)
        self.log_noise_std = (nn.Parameter(torch.zeros(len(self.names), self.output_width))
                              if self.learns_noise and self.kinds[0] else None)

    def __len__(self) -> int:
        return len(self.names)

    # ------------------------------------------------ how adaptation and message passing read it
    def posterior(self, weights: Weights, split: Split) -> Weights:
        """A conjugate bank's exact posterior given the support ``split`` (``closed_form`` banks only)."""
        raise NotImplementedError(f"{type(self).__name__} adapts by gradient steps; it has no closed form")

    def statistics(self, initial: Weights, adapted: Weights) -> torch.Tensor | None:
        """What the node read from its support set, for message passing: a conjugate bank's
        sufficient statistics ``[T, N_b, num_statistics]`` (data, without gradient); ``None`` for a
        gradient bank, whose update ``adapted - initial`` says it."""
        return None

    def corrected(self, initial: Weights, adapted: Weights, corrections: Mapping[str, torch.Tensor],
                  statistics: torch.Tensor | None) -> Weights:
        """``adapted`` with message passing's ``corrections`` (one per head weight, shaped like it)
        applied: here added to the adapted head, ``phi^h + c``. A conjugate bank applies them to
        its prior and redoes its update from ``statistics``."""
        return {**adapted, **{name: adapted[name] + correction for name, correction in corrections.items()}}

    def expand(self, num_tasks: int) -> Weights:
        """The meta-initialisation as fast weights ``[T, N_b, ...]`` (a view, no copy)."""
        return {name: p.unsqueeze(0).expand(num_tasks, *p.shape) for name, p in self.theta.items()}

    def example_mask(self, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``[T, N_b, K]``: the node's value and every value its input reads are observed (its
        parents', or through a latent parent, predicted, that parent's inputs; a latent node counts
        nowhere); on a split whose missing inputs are filled (``split.fill_missing``) the node's value
        alone, unless the bank adapts in closed form (``closed_form``), which reads observed inputs
        only. One gather per slot of ``requires_observed`` (the node, then its parents, padded with the
        always-observed column ``N``) from the node-major mask ``[T, N + 1, K]``, laid out like the
        losses (see targets)."""
        index = self.requires_observed[:, :1] if split.fill_missing and not self.closed_form else self.requires_observed
        if nodes is None:
            return split.derived((self, "example_mask"), lambda: self._example_mask(split, index))
        return self._example_mask(split, index[nodes])

    @staticmethod
    def _example_mask(split: Split, index: torch.Tensor) -> torch.Tensor:
        observed = torch.cat([split.observed, split.observed.new_ones(*split.observed.shape[:2], 1)], dim=-1)
        by_node = observed.transpose(1, 2).contiguous()
        mask = by_node.index_select(1, index[:, 0])
        for slot in range(1, index.shape[1]):
            mask &= by_node.index_select(1, index[:, slot])
        return mask

    def predicted_values(self, outputs: torch.Tensor, nodes: torch.Tensor) -> torch.Tensor:
        """What children read of the outputs ``[T, N_b', K, D_out]`` of the bank rows ``nodes``: a
        regression node's outputs, a classification node's class probabilities (the softmax over its
        own classes) in place of a one-hot value."""
        if not self.kinds[1]:
            return outputs
        logits = outputs.masked_fill(~self.output_mask[nodes][:, None, :], float("-inf"))
        return torch.where(self.is_classification[nodes][:, None, None], logits.softmax(-1), outputs)

    def targets(self, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``[T, N_b, K, D_out]``: regression targets, or one-hot labels, padded with 0."""
        if nodes is None:
            return split.derived((self, "targets"), lambda: self._targets(split, self.target_index))
        return self._targets(split, self.target_index[nodes])

    @staticmethod
    def _targets(split: Split, index: torch.Tensor) -> torch.Tensor:
        # laid out [T, N, K] like the losses, so their gradients do not inherit the gather's order
        return gather_columns(packed_source(split), index).contiguous()

    def losses(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None, accuracy: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per (task, node) mean loss over observed shots ``[T, N_b]``, and with ``accuracy`` the
        fraction of observed shots classified right (NaN for regression nodes; no gradient).

        Regression: mean squared error over the node's ``out_dim`` columns. Classification:
        cross-entropy ``logsumexp(z) - z_y`` with padded logits masked out. A (task, node) with
        no observed shot has loss 0.
        """
        return self.output_losses(self(weights, split, nodes), split, nodes, accuracy)

    def head_inputs(self, weights: Weights, split: Split) -> torch.Tensor:
        """``[T, N_b, K, D_h]``: what the output layer reads, ``output = head_inputs @ W_head + b_head``
        (for algorithms that fit the head themselves, :mod:`graphmeta.adapt.algorithms.alpaca`);
        padded columns are 0 (see :attr:`real_head_inputs`)."""
        raise NotImplementedError(f"{type(self).__name__} has no linear output layer on features")

    @property
    def real_head_inputs(self) -> torch.Tensor:
        """``[N_b, D_h]`` bool: which columns of :meth:`head_inputs` are the node's own (not padding)."""
        raise NotImplementedError(f"{type(self).__name__} has no linear output layer on features")

    def support_loss(self, weights: Weights, split: Split, names: Sequence[str]) -> tuple[torch.Tensor, GradientTaps]:
        """The loss ``[T, N_b]`` on ``split`` and where one ``autograd.grad`` finds the gradients of
        the weights ``names``: here the weights themselves (a bank may tap a cheaper tensor)."""
        return weight_tapped_loss(self, weights, split, names)

    def output_losses(self, outputs: torch.Tensor, split: Split, nodes: torch.Tensor | None = None,
                      accuracy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`losses` of the outputs ``[T, N_b', K, D_out]`` of this bank's forward pass."""
        targets = self.targets(split, nodes)
        weight = self.shot_weights(split, nodes, outputs.dtype)
        output_mask = self.output_mask if nodes is None else self.output_mask[nodes]
        is_classification = self.is_classification if nodes is None else self.is_classification[nodes]
        # the rows' own kinds, read from a buffer; under torch.compile, which cannot read one, the bank's (a superset)
        kinds = self.kinds if nodes is None or torch.compiler.is_compiling() else (
            not bool(is_classification.all()), bool(is_classification.any()))
        loss = self.weighted_losses(outputs, targets, weight, output_mask, is_classification, kinds)
        if not accuracy:
            return loss, None
        with torch.no_grad():
            labels = (split.derived((self, "labels"), lambda: targets.argmax(-1)) if nodes is None
                      else targets.argmax(-1))
            hits = outputs.masked_fill(~output_mask[:, None, :], float("-inf")).argmax(-1) == labels
            correct = (hits.to(weight.dtype) * weight).sum(-1)
            return loss, torch.where(is_classification, correct, torch.full_like(correct, float("nan")))

    # ------------------------------------------------------------ predictive uncertainty
    def predictive(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None
                   ) -> torch.distributions.Distribution | None:
        """The predictive distribution of every output ``[T, N_b', K, D_out]``, a location-scale
        family whose ``loc`` is the bank's output (meaningful for regression nodes only); ``None``
        where the bank has no predictive variance. Here the Gaussian of the learned noise scale
        (module docstring)."""
        if self.log_noise_std is None:
            return None
        return self.noise_model(self(weights, split, nodes), nodes)

    def reset_noise_scale(self) -> None:
        r"""The learned noise scale's start, :math:`\sigma = 1` (what standardised targets have)."""
        if self.log_noise_std is not None:
            nn.init.zeros_(self.log_noise_std)

    def noise_model(self, outputs: torch.Tensor, nodes: torch.Tensor | None = None) -> torch.distributions.Normal:
        r""":math:`\mathcal N(\text{outputs}, \sigma^2)` with the learned noise scale of the bank rows ``nodes``."""
        log_std = self.log_noise_std if nodes is None else self.log_noise_std[nodes]
        return torch.distributions.Normal(outputs, log_std.exp()[:, None, :], validate_args=False)

    def losses_and_noise(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None,
                         accuracy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """:meth:`losses` and :meth:`noise_loss` from one forward pass (``None`` for the noise loss of a
        bank without a learned noise scale). A bank that learns a noise scale scores its outputs
        with :meth:`output_losses`, as :meth:`losses` does here."""
        if self.log_noise_std is None:
            return (*self.losses(weights, split, nodes, accuracy), None)
        outputs = self(weights, split, nodes)
        return (*self.output_losses(outputs, split, nodes, accuracy), self.noise_loss(outputs.detach(), split, nodes))

    def noise_loss(self, outputs: torch.Tensor, split: Split, nodes: torch.Tensor | None = None) -> torch.Tensor | None:
        """Per (task, node) ``[T, N_b']`` (of the bank rows ``nodes``) the Gaussian negative log-likelihood
        per counting row of the residuals of ``outputs`` (of this bank's forward pass on ``split``,
        detached: taken as data) under the learned noise scale (module docstring): its gradient
        reaches ``log_noise_std`` alone; 0 for classification nodes. ``None`` where the bank learns no
        noise scale."""
        if self.log_noise_std is None:
            return None
        nll = self.row_nll(self.noise_model(outputs, nodes), split, nodes)
        return nll.masked_fill(self.is_classification if nodes is None else self.is_classification[nodes], 0.0)

    def regression_scores(self, weights: Weights, split: Split, nodes: torch.Tensor | None = None
                          ) -> tuple[torch.Tensor, torch.Tensor]:
        """Per (task, node) ``[T, N_b']`` of the regression nodes, means over counting rows: the
        squared error averaged over the node's outputs (an MLP node's loss), and the negative
        log-likelihood of :meth:`predictive` summed over its outputs (NaN without a predictive).
        NaN for classification nodes, whose loss is already their negative log-likelihood."""
        predictive = self.predictive(weights, split, nodes)
        outputs = self(weights, split, nodes) if predictive is None else predictive.loc
        output_mask = (self.output_mask if nodes is None else self.output_mask[nodes])[:, None, :]
        squared = ((outputs - self.targets(split, nodes)) ** 2 * output_mask).sum(-1) / output_mask.sum(-1)
        mse = (squared * self.shot_weights(split, nodes, squared.dtype)).sum(-1)
        nll = torch.full_like(mse, math.nan) if predictive is None else self.row_nll(predictive, split, nodes)
        is_classification = self.is_classification if nodes is None else self.is_classification[nodes]
        undefined = torch.full_like(mse, math.nan)
        return torch.where(is_classification, undefined, mse), torch.where(is_classification, undefined, nll)

    def row_nll(self, predictive: torch.distributions.Distribution, split: Split,
                nodes: torch.Tensor | None = None) -> torch.Tensor:
        """``[T, N_b']``: the mean over counting rows of ``-log predictive(y)`` summed over the node's
        own outputs (padded ones left out)."""
        output_mask = self.output_mask if nodes is None else self.output_mask[nodes]
        per_row = (-predictive.log_prob(self.targets(split, nodes)) * output_mask[:, None, :]).sum(-1)
        return (per_row * self.shot_weights(split, nodes, per_row.dtype)).sum(-1)

    def shot_weights(self, split: Split, nodes: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor:
        """``[T, N_b', K]``: each counting shot's share of its node's mean, ``1 / #counting`` (0 elsewhere)."""
        def compute() -> torch.Tensor:
            mask = self.example_mask(split, nodes).to(dtype)
            return mask / mask.sum(-1, keepdim=True).clamp(min=1)

        return split.derived((self, "shot_weights", dtype), compute) if nodes is None else compute()

    def weighted_losses(self, outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor,
                        output_mask: torch.Tensor, is_classification: torch.Tensor, kinds: tuple[bool, bool]
                        ) -> torch.Tensor:
        """Per (task, node) losses ``[T, N_b']``: each shot's loss times its ``weight`` (its share of
        the node's mean), summed; :func:`node_losses`, unless a bank knows a cheaper form."""
        return node_losses(outputs, targets, weight, output_mask, is_classification, kinds)


def weight_tapped_loss(bank: LearnerBank, weights: Weights, split: Split, names: Sequence[str]
                       ) -> tuple[torch.Tensor, GradientTaps]:
    """``bank``'s loss ``[T, N_b]`` on ``split`` with the weights ``names`` themselves as the taps, so
    ``autograd.grad`` finds their whole gradient, through every use of them: the tap of a bank
    whose outputs also feed the losses of other nodes (a latent node's, :class:`BankSet`)."""
    loss, _ = bank.losses(weights, split)
    return loss, GradientTaps([weights[name] for name in names], lambda grads: dict(zip(names, grads)))


def node_losses(outputs: torch.Tensor, targets: torch.Tensor, weight: torch.Tensor, output_mask: torch.Tensor,
                is_classification: torch.Tensor, kinds: tuple[bool, bool]) -> torch.Tensor:
    """See :meth:`LearnerBank.losses`. Shapes: outputs/targets ``[T, N, K, D]``, weight ``[T, N, K]``
    (each shot's share of its node's mean), output_mask ``[N, D]``, is_classification ``[N]``;
    ``kinds``: whether any node is (regression, classification).

    A bank of one kind computes that kind's loss only, so the other's ops stay out of the
    (double-)backward graph.
    """
    output_mask = output_mask[:, None, :]
    per_example = None
    has_regression, has_classification = kinds
    if has_regression:
        per_example = ((outputs - targets) ** 2 * output_mask).sum(-1) / output_mask.sum(-1)
    if has_classification:
        logits = outputs.masked_fill(~output_mask, torch.finfo(outputs.dtype).min / 4)
        cross_entropy = torch.logsumexp(logits, dim=-1) - (logits * targets).sum(-1)
        per_example = cross_entropy if per_example is None else torch.where(
            is_classification[:, None], cross_entropy, per_example)
    return (per_example * weight).sum(-1)
