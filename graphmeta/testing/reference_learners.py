r"""The reference's definition of every node learner, one class each, written from the definitions.

The per-node reference (:mod:`graphmeta.testing.reference`) asks the definition of a node's
learner type what differs between learners: which entries of its bank's padded parameters are
the node's own, what its output layer reads, its outputs, and, for a conjugate learner, its
closed-form update and what message passing reads of it. A definition reads the model's
parameters through ``ref`` by name only and calls nothing of the engine. A new learner is its
spec module in :mod:`graphmeta.learners`, its bank in :mod:`graphmeta.learners.banks` and its
definition here; the tests take every registered learner type and fail until it has one.

With ``y_p`` the value of parent ``p`` (one-hot for classification), parents in
``graph.parents`` order:

* MLP: ``h_0 = [x, y_p1, ..., y_pP]``, ``h_l = act(h_{l-1} W_l + b_l)`` for the hidden layers,
  ``output = h W_head + b_head``;
* GNN: for an input graph with ``A[u, v] = 1`` for every edge ``u -> v`` (self loops dropped,
  repeated edges once), ``Â = D^{-1/2} (A + I) D^{-1/2}``, ``H_l = act(Â H_{l-1} W_l + b_l)``,
  ``g = mean_u H_L[u]``, ``output = [g, y_p1, ..., y_pP] W_head + b_head``;
* Table: pseudo-counts ``beta = exp(log_counts)``, the row of parent classes ``(s_1..s_P)`` is
  ``u = sum_j s_j prod_{k > j} c_k`` (first parent slowest), ``output = log beta(u, .) / sum
  beta(u, .)``; where a parent is predicted (class probabilities ``p_j``) the mixture
  ``sum_u q(u) P(. | u)``, ``q(u) = prod_j p_j(s_j(u))``. It adapts in closed form, whatever the
  algorithm: at the first step ``beta(u, v) <- beta(u, v) + n(u, v)``, ``n`` the counting support
  shots with row ``u`` and class ``v``, and keeps it. Message passing reads ``n`` (padded like its
  head) and its correction ``c`` multiplies the prior: ``log(exp(theta + c) + n)``.
* Linear: ``z = [1, x, y_p1, ..., y_pP]``, ``output = z^T M`` (the predictive mean), and each shot's
  loss is the negative log predictive density (a Student-t per output). It adapts in closed form
  to the exact Normal-Inverse-Gamma posterior (:class:`LinearDefinition`); message passing reads
  ``[Z^T Z, Z^T Y, diag Y^T Y]`` and its correction moves the prior mean before the update. With
  task factors, each output's prior mean is ``m_o + A_o u`` for the task's factor ``u ~ N(0, I)``;
  after every node's plain update, ``u`` is placed at its posterior mean given every factored
  node's rows (:meth:`LinearDefinition.factor_evidence`) and each node redoes its update from
  the moved prior, which message passing then reads as its prior.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch

from ..learners.activations import ACTIVATIONS
from ..registry import Registry

NodeWeights = dict[str, torch.Tensor]
Slices = dict[str, tuple[slice, ...]]

#: The reference's definition of every learner type, by its registered name.
REFERENCE_LEARNERS: Registry[type[ReferenceLearner]] = Registry("reference learner")

EVERY = slice(None)


class ReferenceLearner:
    """What every learner definition says; the defaults are those of a learner with an output
    layer ``head_weight``, ``head_bias`` that adapts by the algorithm's steps."""

    name: ClassVar[str]
    #: Whether the learner adapts in closed form (:meth:`posterior`), whatever the algorithm.
    conjugate: ClassVar[bool] = False

    def slices(self, graph: Any, name: str) -> Slices:
        """Per weight, the entries of the node's row of its bank that are its own."""
        raise NotImplementedError

    def head_names(self) -> list[str]:
        """The output layer's weights (what message passing corrects)."""
        return ["head_weight", "head_bias"]

    def first_layer(self, spec: Any) -> str:
        """The name of the first layer (where CAVIA's context enters)."""
        raise NotImplementedError

    def head_input(self, ref: Any, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                   shots: int) -> torch.Tensor:
        """``[K, D_h]``: what the output layer reads."""
        raise NotImplementedError

    def forward(self, ref: Any, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                shots: int) -> torch.Tensor:
        """``[K, width]``: regression outputs or logits."""
        return self.head_input(ref, name, weights, own, parents, shots) @ weights["head_weight"] + weights["head_bias"]

    def shot_losses(self, ref: Any, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                    shots: int, y: torch.Tensor) -> torch.Tensor:
        """``[K]``: each shot's loss given its value ``y``: the squared error averaged over the
        outputs, or the cross-entropy ``-log softmax(output)[y]``."""
        outputs = self.forward(ref, name, weights, own, parents, shots)
        if ref.graph.subtask(name).kind == "classification":
            return -outputs.log_softmax(-1).gather(1, y.long().clamp(min=0)[:, None]).squeeze(1)
        return (outputs - y.to(outputs.dtype)).pow(2).mean(-1)

    # -------------------------------------------------------- conjugate learners only
    def posterior(self, ref: Any, name: str, weights: NodeWeights, data: Any, observed: Any, t: int) -> NodeWeights:
        """The exact posterior given the counting support shots of task ``t``."""
        raise NotImplementedError(f"{self.name} adapts by the algorithm's steps")

    def statistics(self, ref: Any, name: str, data: Any, observed: Any, t: int) -> torch.Tensor:
        """What message passing reads of the support shots, flattened and padded like the bank's."""
        raise NotImplementedError(f"{self.name} adapts by the algorithm's steps")

    def corrected(self, ref: Any, name: str, initial: NodeWeights, plain: NodeWeights, weight: str,
                  correction: torch.Tensor, data: Any, observed: Any, t: int) -> NodeWeights:
        """The weights that message passing's ``correction`` of head weight ``weight`` (its own
        entries) changes, corrected: here that weight alone, ``plain + correction``."""
        return {weight: plain[weight] + correction}


@REFERENCE_LEARNERS.register
class MLPDefinition(ReferenceLearner):
    name = "mlp"

    def slices(self, graph: Any, name: str) -> Slices:
        spec = graph.subtask(name)
        layers = mlp_layers(spec.learner)
        slices = {f"{layer}_{kind}": (EVERY,) * (2 if kind == "weight" else 1) for layer in layers
                  for kind in ("weight", "bias")}
        slices[f"{layers[0]}_weight"] = (slice(0, spec.in_dim + parent_width(graph, name)), EVERY)
        slices["head_weight"] = (slices["head_weight"][0], slice(0, spec.width))
        slices["head_bias"] = (slice(0, spec.width),)
        return slices

    def first_layer(self, spec: Any) -> str:
        return mlp_layers(spec.learner)[0]

    def head_input(self, ref: Any, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                   shots: int) -> torch.Tensor:
        learner = ref.graph.subtask(name).learner
        dtype = weights["head_bias"].dtype
        activation = ACTIVATIONS[learner.activation]
        columns = ([own.to(dtype)] if own is not None else []) + [p.to(dtype) for p in parents]
        hidden = torch.cat(columns, dim=-1) if columns else torch.zeros(shots, 0, dtype=dtype)
        for layer in mlp_layers(learner)[:-1]:
            hidden = activation(hidden @ weights[f"{layer}_weight"] + weights[f"{layer}_bias"])
        return hidden


@REFERENCE_LEARNERS.register
class GNNDefinition(ReferenceLearner):
    name = "gnn"

    def slices(self, graph: Any, name: str) -> Slices:
        spec = graph.subtask(name)
        learner = spec.learner
        slices = {f"conv{l}_{kind}": (EVERY,) * (2 if kind == "weight" else 1)
                  for l in range(learner.layers) for kind in ("weight", "bias")}
        slices["conv0_weight"] = (slice(0, spec.in_dim), EVERY)
        slices["head_weight"] = (slice(0, learner.hidden + parent_width(graph, name)), slice(0, spec.width))
        slices["head_bias"] = (slice(0, spec.width),)
        return slices

    def first_layer(self, spec: Any) -> str:
        return "conv0"

    def head_input(self, ref: Any, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                   shots: int) -> torch.Tensor:
        learner = ref.graph.subtask(name).learner
        dtype = weights["head_bias"].dtype
        activation = ACTIVATIONS[learner.activation]
        inputs = []
        for k in range(shots):
            hidden = own[k].x.to(dtype)
            propagate = normalised_adjacency(own[k].edge_index, hidden.shape[0], dtype)
            for l in range(learner.layers):
                hidden = activation(propagate @ hidden @ weights[f"conv{l}_weight"] + weights[f"conv{l}_bias"])
            inputs.append(torch.cat([hidden.mean(0), *[p[k].to(dtype) for p in parents]]))
        return torch.stack(inputs)


@REFERENCE_LEARNERS.register
class TableDefinition(ReferenceLearner):
    name = "table"
    conjugate = True

    def slices(self, graph: Any, name: str) -> Slices:
        rows = math.prod(graph.subtask(p).width for p in graph.parents(name))
        return {"log_counts": (slice(0, rows), slice(0, graph.subtask(name).width))}

    def head_names(self) -> list[str]:
        return ["log_counts"]

    def forward(self, ref: Any, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                shots: int) -> torch.Tensor:
        """Log-probabilities of the column of each shot's parent classes (their mixture, see the module)."""
        dtype = weights["log_counts"].dtype
        parents = [p.to(dtype) for p in parents]
        pseudo_counts = weights["log_counts"].exp()
        cpd = pseudo_counts / pseudo_counts.sum(-1, keepdim=True)
        mixture = 0
        for u in range(cpd.shape[0]):
            weight, rest = torch.ones(shots, dtype=dtype), u
            for parent in reversed(parents):  # the last parent is the fastest digit of u
                weight, rest = weight * parent[:, rest % parent.shape[-1]], rest // parent.shape[-1]
            mixture = mixture + weight[:, None] * cpd[u]
        return mixture.log()

    def posterior(self, ref: Any, name: str, weights: NodeWeights, data: Any, observed: Any, t: int) -> NodeWeights:
        """``beta + n`` with the support counts ``n`` of node ``name`` in task ``t``."""
        counts = self.counts(ref, name, data, observed, t).to(weights["log_counts"].dtype)
        return {"log_counts": (weights["log_counts"].exp() + counts).log()}

    def statistics(self, ref: Any, name: str, data: Any, observed: Any, t: int) -> torch.Tensor:
        return ref.padded(name, "log_counts", self.counts(ref, name, data, observed, t))

    def corrected(self, ref: Any, name: str, initial: NodeWeights, plain: NodeWeights, weight: str,
                  correction: torch.Tensor, data: Any, observed: Any, t: int) -> NodeWeights:
        """The prior's pseudo-counts times ``e^c``, then the counts."""
        counts = self.counts(ref, name, data, observed, t).to(correction.dtype)
        return {weight: (initial[weight] + correction).exp().add(counts).log()}

    def counts(self, ref: Any, name: str, data: Any, observed: Any, t: int) -> torch.Tensor:
        """``n [rows, classes]``: one count for each counting shot, in its row and class, one shot at a time."""
        graph = ref.graph
        rows = self.rows(ref, name, data, t)
        counts = torch.zeros(math.prod(graph.subtask(p).width for p in graph.parents(name)),
                             graph.subtask(name).width, dtype=torch.float64)
        y = ref.labels(name, data)
        for k in torch.nonzero(ref.counting_shots(name, data, observed, t)).flatten().tolist():
            counts[rows[k], int(y[t, k])] += 1
        return counts

    def rows(self, ref: Any, name: str, data: Any, t: int) -> list[int]:
        """Each shot's row ``u = sum_j s_j prod_{k > j} c_k`` over the parents' classes (first slowest)."""
        parents = ref.graph.parents(name)
        classes = [ref.graph.subtask(p).width for p in parents]
        shots = ref.labels(name, data).shape[1]
        rows = []
        for k in range(shots):
            row = 0
            for parent, count in zip(parents, classes):
                row = row * count + max(int(ref.labels(parent, data)[t, k]), 0)
            rows.append(row)
        return rows


@REFERENCE_LEARNERS.register
class LinearDefinition(ReferenceLearner):
    """Bayesian linear regression on ``z = [1, x, y_p1, ..., y_pP]`` with the Normal-Inverse-Gamma
    prior ``w_o | s_o^2 ~ N(m_o, s_o^2 Lambda^-1)``, ``s_o^2 ~ InvGamma(a_o, b_o)`` of every output ``o``."""

    name = "linear"
    conjugate = True

    def slices(self, graph: Any, name: str) -> Slices:
        size, width = design_width(graph, name), graph.subtask(name).width
        factors = graph.subtask(name).learner.task_factors
        return {"mean": (slice(0, size), slice(0, width)), "precision_factor": (slice(0, size * (size + 1) // 2),),
                "log_shape": (slice(0, width),), "log_scale": (slice(0, width),),
                **({"loadings": (slice(0, size), slice(0, width), slice(0, factors))} if factors else {})}

    def head_names(self) -> list[str]:
        return ["mean"]

    def forward(self, ref: Any, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                shots: int) -> torch.Tensor:
        """The predictive mean ``z^T M``."""
        return design_rows(own, parents, shots, weights["mean"].dtype) @ weights["mean"]

    def shot_losses(self, ref: Any, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                    shots: int, y: torch.Tensor) -> torch.Tensor:
        """``-log`` of the predictive density of each row, summed over the outputs: per output a
        Student-t with ``2 a`` degrees of freedom, location ``z^T m`` and scale^2 ``(b / a)(1 + z^T Lambda^-1 z)``."""
        z = design_rows(own, parents, shots, weights["mean"].dtype)
        spread = 1 + (z * torch.linalg.solve(precision(weights), z.T).T).sum(-1)
        shape, scale = weights["log_shape"].exp(), weights["log_scale"].exp()
        predictive = torch.distributions.StudentT(2 * shape, z @ weights["mean"],
                                                  (scale / shape * spread[:, None]).sqrt())
        return -predictive.log_prob(y.to(z.dtype)).sum(-1)

    def posterior(self, ref: Any, name: str, weights: NodeWeights, data: Any, observed: Any, t: int) -> NodeWeights:
        """``Lambda_n = Lambda + Z^T Z``, ``M_n = Lambda_n^-1 (Lambda M + Z^T Y)``, ``a_n = a + K / 2``,
        ``b_n = b + (|Y - Z M_n|^2 + (M_n - M)^T Lambda (M_n - M)) / 2`` per output, on the counting rows."""
        z, y = self.counting_rows(ref, name, data, observed, t)
        prior_precision, mean = precision(weights), weights["mean"]
        posterior_precision = prior_precision + z.T @ z
        posterior_mean = torch.linalg.solve(posterior_precision, prior_precision @ mean + z.T @ y)
        moved = posterior_mean - mean
        squares = (y - z @ posterior_mean).pow(2).sum(0) + (moved * (prior_precision @ moved)).sum(0)
        factor = torch.linalg.cholesky(posterior_precision)
        packed = [factor[i, j].log() if i == j else factor[i, j] for i in range(len(factor)) for j in range(i + 1)]
        return {"mean": posterior_mean, "precision_factor": torch.stack(packed),
                "log_shape": (weights["log_shape"].exp() + len(z) / 2).log(),
                "log_scale": (weights["log_scale"].exp() + squares / 2).log()}

    def statistics(self, ref: Any, name: str, data: Any, observed: Any, t: int) -> torch.Tensor:
        """``[Z^T Z (rows of its lower triangle), Z^T Y, diag Y^T Y]``, each padded like its weight."""
        z, y = self.counting_rows(ref, name, data, observed, t)
        gram = z.T @ z
        lower = torch.stack([gram[i, j] for i in range(len(gram)) for j in range(i + 1)])
        return torch.cat([ref.padded(name, "precision_factor", lower), ref.padded(name, "mean", z.T @ y),
                          ref.padded(name, "log_scale", y.pow(2).sum(0))])

    def corrected(self, ref: Any, name: str, initial: NodeWeights, plain: NodeWeights, weight: str,
                  correction: torch.Tensor, data: Any, observed: Any, t: int) -> NodeWeights:
        """The posterior under the prior mean moved by ``c``: every weight of the node."""
        return self.posterior(ref, name, {**initial, weight: initial[weight] + correction}, data, observed, t)

    def factor_evidence(self, ref: Any, name: str, weights: NodeWeights, data: Any, observed: Any, t: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
        """What the node's counting rows say of the task factor ``u``, in the covariance form: given
        ``u`` and the noise at ``s_o^2 = b_o / a_o``, output ``o``'s rows are ``N(Z (m_o + A_o u),
        s_o^2 S)``, ``S = I + Z Lambda^-1 Z^T``, so their log-density in ``u`` has curvature
        ``sum_o (Z A_o)^T S^-1 (Z A_o) / s_o^2`` and slope at 0 ``sum_o (Z A_o)^T S^-1 (y_o - Z m_o) / s_o^2``."""
        z, y = self.counting_rows(ref, name, data, observed, t)
        scatter = torch.eye(len(z), dtype=z.dtype) + z @ torch.linalg.solve(precision(weights), z.T)
        noise = (weights["log_scale"] - weights["log_shape"]).exp()
        curvature, slope = 0, 0
        for o in range(y.shape[1]):
            loaded = z @ weights["loadings"][:, o]  # Z A_o
            curvature = curvature + loaded.T @ torch.linalg.solve(scatter, loaded) / noise[o]
            slope = slope + loaded.T @ torch.linalg.solve(scatter, y[:, o] - z @ weights["mean"][:, o]) / noise[o]
        return curvature, slope

    def factor_moved(self, weights: NodeWeights, factor: torch.Tensor) -> NodeWeights:
        """The prior with its mean at ``m_o + A_o u`` (the first ``r`` numbers of ``factor``)."""
        loadings = weights["loadings"]
        return {**weights, "mean": weights["mean"] + loadings @ factor[:loadings.shape[-1]]}

    def counting_rows(self, ref: Any, name: str, data: Any, observed: Any, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The design rows ``Z [K', D]`` and values ``Y [K', O]`` of the counting support shots of task ``t``."""
        own, parents, shots = ref.inputs(name, data, t)
        counting = ref.counting_shots(name, data, observed, t)
        z = design_rows(own, parents, shots, torch.float64)
        return z[counting], ref.labels(name, data)[t].to(z.dtype)[counting]


def design_rows(own: Any, parents: list[torch.Tensor], shots: int, dtype: torch.dtype) -> torch.Tensor:
    """``[K, D]``: ``[1, x, y_p1, ..., y_pP]`` of every shot."""
    columns = [torch.ones(shots, 1, dtype=dtype)] + ([own.to(dtype)] if own is not None else [])
    return torch.cat(columns + [p.to(dtype) for p in parents], dim=-1)


def design_width(graph: Any, name: str) -> int:
    return 1 + graph.subtask(name).in_dim + parent_width(graph, name)


def precision(weights: NodeWeights) -> torch.Tensor:
    """``Lambda = L L^T`` from the packed rows of ``L``'s lower triangle, its diagonal stored as ``log``."""
    packed = weights["precision_factor"]
    size = weights["mean"].shape[0]
    factor = packed.new_zeros(size, size)
    position = 0
    for i in range(size):
        for j in range(i + 1):
            factor[i, j] = packed[position].exp() if i == j else packed[position]
            position += 1
    return factor @ factor.T


def mlp_layers(learner: Any) -> list[str]:
    return [f"hidden{l}" for l in range(len(learner.hidden))] + ["head"]


def parent_width(graph: Any, name: str) -> int:
    return sum(graph.subtask(p).width for p in graph.parents(name))


def normalised_adjacency(edge_index: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """``D^{-1/2} (A + I) D^{-1/2}`` with ``A[u, v] = 1`` for every edge ``u -> v``, self loops dropped."""
    adjacency = torch.zeros(size, size, dtype=dtype)
    for u, v in edge_index.t().tolist():
        if u != v:
            adjacency[u, v] = 1.0
    with_loops = adjacency + torch.eye(size, dtype=dtype)
    scale = with_loops.sum(-1).rsqrt()
    return scale[:, None] * with_loops * scale[None, :]
