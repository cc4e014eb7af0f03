r"""An independent, slow reference of the meta-training step: one task, one node at a time.

The reference shares nothing with the engine but the task graph and the model's parameters,
which it reads by name (``model.named_parameters()``, the ``algorithm.progress`` buffer, and
``bank.names`` for which row of which bank holds a node). It calls no bank, algorithm or
message-passing module of the model, reads none of their other attributes (not which weights
an algorithm adapts, not its rates, not a bank's padding), and imports nothing from
:mod:`graphmeta.learners`, :mod:`graphmeta.adapt` or :mod:`graphmeta.model` but the learner
specs of the task graph. What the model computes is written out again below, from the
definitions, for one (task ``t``, node ``i``) at a time, on the node's own unpadded weights.
Tests check the batched engine against it (float64, ``rtol=1e-6``); the throughput benchmark
times it as the per-node loop a learn2learn-style library runs.

**Data** are the ``{node: (x, y)}`` mappings of :meth:`~graphmeta.TaskBatch.from_tensors`
with a task axis (``x`` of a GNN node: a list of ``T * K`` PyG ``Data``, task-major) and
optional ``observed`` masks ``{node: [T, K] bool}``. A shot *counts* for node ``i`` when the
values of ``i`` and of all its parents are observed there.

**Node learners.** With ``y_p`` the value of parent ``p`` (one-hot for classification),
parents in ``graph.parents`` order:

* MLP: ``h_0 = [x, y_p1, ..., y_pP]``, ``h_l = act(h_{l-1} W_l + b_l)`` for the hidden layers,
  ``output = h W_head + b_head``;
* GNN: for an input graph with ``A[u, v] = 1`` for every edge ``u -> v`` (self loops dropped,
  repeated edges once), ``Â = D^{-1/2} (A + I) D^{-1/2}``, ``H_l = act(Â H_{l-1} W_l + b_l)``,
  ``g = mean_u H_L[u]``, ``output = [g, y_p1, ..., y_pP] W_head + b_head``;
* Table: pseudo-counts ``beta = exp(log_counts)``, the row of parent classes ``(s_1..s_P)`` is
  ``u = sum_j s_j prod_{k > j} c_k`` (first parent slowest), ``output = log beta(u, .) / sum beta(u, .)``.

The loss of node ``i`` is the mean over its counting shots of the squared error averaged over
its ``out_dim`` outputs, or of the cross-entropy ``-log softmax(output)[y]``; 0 without a shot.

**Algorithms** (``model.config["algorithm"]``). The adapted weights: every weight of the node
for ``maml``, ``fomaml``, ``metasgd``, ``mamlpp`` and ``reptile``; the output layer
(``head_weight``, ``head_bias``) for ``anil`` and ``alpaca``; for ``cavia`` a context ``c in R^m``, zero before
the first step, that enters the first layer (``hidden0``, the MLP's head when it has no
hidden layer, a GNN's ``conv0``) as ``b + c W_c``, with ``W_c = algorithm.projections.<bank>[node]``.
Step ``k`` of ``K`` is ``phi <- phi - alpha_k * grad L_support(phi)``. A fixed rate is
``inner_lr`` (``model.config``) at every step. Learned rates are trained for ``S = max(inner_steps, 1)``
steps: step ``k < S`` takes trained step ``s = k`` at its full rate, and a step ``k >= S`` (when
``K > S``) the last trained step ``s = S - 1`` at the share ``S / K``:

* ``learn_inner_lr``: ``alpha_k = share * algorithm.inner_lrs[s]``;
* Meta-SGD: ``alpha_k = share * algorithm.rates.<bank>.<weight>[node]``, one rate per entry;
* MAML++: ``alpha_k = share * algorithm.rates.<bank>.<weight>[s, node]``, one per weight and step.

``alpaca`` takes no gradient step: at the first step the output layer becomes the posterior mean
of Bayesian linear regression on the features ``phi = [head input, 1]`` of the counting support
shots, ``Y`` their values (one-hot for classification), under the mixture prior of component
``m``: mean ``mu_1 = theta_head`` (the head's rows, then the bias as the last row), ``mu_m =
mu_1 + algorithm.mean_offsets.<bank>[node, m - 2]``; precision ``P_m = L L^T`` with ``L`` the
strictly lower part of ``algorithm.precision_factors.<bank>[node, m]`` plus ``diag(exp(its
diagonal))`` (the node's own rows and columns); noise ``s = exp(algorithm.log_noise.<bank>[node])``;
mixing ``log_softmax(algorithm.log_mixture.<bank>[node])``. With ``A = phi^T phi / s + P_m``,
``R = Y - phi mu_m``, ``G = phi^T R / s``: ``w_m = mu_m + A^{-1} G``, evidence
``-1/2 (sum_o (R_o.R_o / s - G_o . A^{-1} G_o) + O (log det A - log det P_m))``, and the head is
``sum_m r_m w_m`` with ``r = softmax(log mixing + evidence)``; later steps keep it.

The meta-gradient flows through the inner gradients (second order) for ``maml``, ``metasgd``,
``anil``, ``mamlpp`` and ``cavia`` in training mode (``alpaca``'s through its solve); ``fomaml``
and ``reptile`` take them as constants. A Table node, whatever the algorithm, takes the conjugate Dirichlet update at the
first step, ``beta(u, v) <- beta(u, v) + #{counting shots with row u and class v}``, and keeps it.

**Message passing** (``message_passing=True``, after at least one step), per task, over the
task graph's adjacency ``A[j, i] = 1`` for every edge ``j -> i``. Node ``i`` of bank ``b``
has the updates ``delta_m = phi_m - theta_m`` of its adapted weights (its context's for
CAVIA), each placed in its padded per-node parameter shape of ``P_m`` numbers, their sizes
``r_m = sqrt(|delta_m|^2 / P_m + eps)``, and the update of its output layer ``delta_h`` (the
concatenated head weights, zero where they do not adapt) with size ``r_h``; ``L_i`` is its
support loss before adaptation and ``K_i`` its number of counting support shots. Then, with
the parameters of ``message_passing`` (``y = x W^T + bias`` for each ``nn.Linear``)::

    h_i = encoders.b([delta_h / r_h, log r_1, ..., log r_M, log(1 + L_i), log(1 + K_i)]) + node_embedding[i]
    round l:  h_i <- h_i + relu( self_weight(h_i) + down(mean_{j: A[j, i]} h_j)
                                 + up(mean_{j: A[i, j]} h_j) + graph_level(mean_j h_j) )
    phi_h <- phi_h + gates.b * decoders.b(h_i)        (each head weight its own part)

with an empty mean 0 and ``eps = 1e-12``. ``L_i`` carries its gradient when the algorithm is
second order. For Reptile, whose meta-init learns from the pull alone, message passing reads
constants: ``phi``, ``delta`` and ``L`` detached. A Table node's encoder also reads its support
counts ``n`` (padded like its head), shrunk at the data scales ``kappa = 1, 10, 100``:
``[..., n / (K_i + 1), n / (K_i + 10), n / (K_i + 100)]``, and its correction ``c`` multiplies its
prior instead of moving its posterior: ``beta' = beta e^c + n``, i.e. ``phi_h = log(exp(theta_h + c) + n)``.

**Meta-loss.** ``L_query(phi)`` is the mean over the (task, node) pairs with a counting query
shot of the node's query loss (parents teacher-forced). The meta-loss is ``L_query(phi_S)``
(after message passing), except

* MAML++: ``sum_{s=1}^S v_s L_query(phi_s)`` for ``S >= 2`` (only ``phi_S`` corrected), with the
  importances of Antoniou et al. (2019): at ``e = progress / 0.15`` (``algorithm.progress``),
  ``v_s = max((1 - e) / S, 0.03 / S)`` for ``s < S`` and ``v_S = min((1 + (S - 1) e) / S, 1 - 0.03 (S - 1) / S)``;
* Reptile: ``1 / (2T) sum_t sum_i |theta_i - phi_{t,i}|^2`` with ``phi`` constant (before message
  passing), plus ``L_query`` of the corrected weights when message passing is on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from ..learners import GNN, MLP, Table
from ..learners.activations import ACTIVATIONS

Data = Mapping[str, Any]
NodeWeights = dict[str, torch.Tensor]
#: Keeps ``log r`` finite for an update that is exactly zero.
EPSILON = 1e-12
#: The algorithms the reference defines, and those whose meta-gradient flows through the inner gradients.
DEFINED = ("maml", "fomaml", "metasgd", "anil", "reptile", "mamlpp", "cavia", "alpaca")
SECOND_ORDER = ("maml", "metasgd", "anil", "mamlpp", "cavia", "alpaca")
#: The data scales at which message passing reads a Table node's support counts.
COUNT_SCALES = (1.0, 10.0, 100.0)
#: MAML++: the fraction of training over which the multi-step importances anneal, and the floor
#: of a non-final importance, times the number of steps.
ANNEAL_FRACTION, FLOOR = 0.15, 0.03


@dataclass
class ReferenceAdaptation:
    """Per ``(t, node)``: ``initial`` weights, the weights after every step (``steps``, the last
    corrected by message passing), ``plain`` (after the inner loop), ``adapted`` (after message
    passing) and ``support_loss`` before adaptation (none for zero steps)."""

    initial: dict[tuple[int, str], NodeWeights]
    steps: dict[tuple[int, str], list[NodeWeights]]
    plain: dict[tuple[int, str], NodeWeights]
    adapted: dict[tuple[int, str], NodeWeights]
    support_loss: dict[tuple[int, str], torch.Tensor]


def reference_meta_loss(model: Any, support: Data, query: Data, support_observed: Data | None = None,
                        query_observed: Data | None = None, create_graph: bool | None = None) -> torch.Tensor:
    """The meta-loss of ``model`` on one meta-batch, task by task and node by node (see the module)."""
    config = model.config
    algorithm = config["algorithm"]
    if create_graph is None:
        create_graph = algorithm in SECOND_ORDER and model.training
    adaptation = reference_adapt(model, support, support_observed, create_graph=create_graph)
    reference = _Reference(model)

    def query_loss(weights: dict[tuple[int, str], NodeWeights]) -> torch.Tensor:
        total, pairs = 0, 0
        for t in range(_num_tasks(model.graph, query)):
            for name in model.graph.names:
                counted = bool(_counting_shots(model.graph, name, query, query_observed, t).any())
                total = total + counted * reference.loss(name, weights[t, name], query, query_observed, t)
                pairs += counted
        return total / max(pairs, 1)

    final = query_loss(adaptation.adapted)
    steps = config["inner_steps"]
    if algorithm == "mamlpp" and steps >= 2:
        importances = mamlpp_importances(float(dict(model.named_buffers())["algorithm.progress"]), steps)
        return sum(v * query_loss({key: every[s] for key, every in adaptation.steps.items()})
                   for s, v in enumerate(importances[:-1])) + importances[-1] * final
    if algorithm == "reptile":
        num_tasks = _num_tasks(model.graph, support)
        pull = sum(0.5 * (adaptation.initial[key][weight] - phi.detach()).pow(2).sum() / num_tasks
                   for key, weights in adaptation.plain.items() for weight, phi in weights.items())
        return pull + final if config["message_passing"] and steps > 0 else pull
    return final


def mamlpp_importances(progress: float, steps: int) -> list[float]:
    """MAML++'s multi-step loss importances ``v [S]`` at ``progress`` (0..1) of meta-training,
    as in the authors' ``get_per_step_loss_importance_vector`` (see the module)."""
    epochs = progress / ANNEAL_FRACTION
    floor = FLOOR / steps
    earlier = [max(1.0 / steps - epochs / steps, floor) for _ in range(steps - 1)]
    final = min(1.0 / steps + epochs * (steps - 1) / steps, 1.0 - (steps - 1) * floor)
    return earlier + [final]


def trained_step(step: int, steps: int, trained: int) -> tuple[int, float]:
    """``(s, share)``: the trained step whose learned rate step ``step`` of ``steps`` takes, and the
    share of it (see the module)."""
    if step < trained:
        return step, 1.0
    return trained - 1, trained / steps


def reference_adapt(model: Any, support: Data, support_observed: Data | None = None, steps: int | None = None,
                    create_graph: bool = True) -> ReferenceAdaptation:
    """The inner loop of every (task, node), then message passing when the model has it on."""
    graph, config = model.graph, model.config
    reference = _Reference(model)
    steps = config["inner_steps"] if steps is None else steps
    keys = [(t, name) for t in range(_num_tasks(graph, support)) for name in graph.names]
    initial = {(t, name): reference.initial(name) for t, name in keys}
    every_step: dict[tuple[int, str], list[NodeWeights]] = {key: [] for key in keys}
    support_loss: dict[tuple[int, str], torch.Tensor] = {}
    for t, name in keys:
        weights = initial[t, name]
        for step in range(steps):
            loss = reference.loss(name, weights, support, support_observed, t)
            if step == 0:
                support_loss[t, name] = loss if create_graph else loss.detach()
            weights = reference.inner_step(name, weights, loss, support, support_observed, t, step, steps,
                                           create_graph)
            every_step[t, name].append(weights)
    plain = {key: every[-1] if every else initial[key] for key, every in every_step.items()}
    adapted = plain
    if config["message_passing"] and steps > 0:
        constant = config["algorithm"] == "reptile"
        adapted = {}
        for t in range(_num_tasks(graph, support)):
            adapted.update(reference.message_passing(t, initial, plain, support_loss, support, support_observed,
                                                     constant))
        for key, every in every_step.items():
            every[-1] = adapted[key]
    return ReferenceAdaptation(initial, every_step, plain, adapted, support_loss)


def reference_adapted_weights(model: Any, support: Data, support_observed: Data | None = None,
                              steps: int | None = None) -> dict[tuple[int, str], NodeWeights]:
    """The weights every (task, node) predicts with after ``model.adapt`` (detached, unpadded;
    a CAVIA context folded into the first layer's bias as ``b + c W_c``)."""
    adaptation = reference_adapt(model, support, support_observed, steps, create_graph=False)
    reference = _Reference(model)
    return {(t, name): {key: w.detach() for key, w in reference.composed(name, weights).items()}
            for (t, name), weights in adaptation.adapted.items()}


def reference_evaluate(model: Any, weights: Mapping[tuple[int, str], NodeWeights], data: Data,
                       observed: Data | None = None) -> dict[str, torch.Tensor]:
    """What ``AdaptedGraph.evaluate`` gives for the per-(task, node) ``weights`` (e.g. of
    :func:`reference_adapted_weights`): the query ``loss`` and ``accuracy`` ``[T, N]`` with parents
    teacher-forced; accuracy is the fraction of counting shots whose largest output is the
    label, NaN for regression and where a node has no counting shot."""
    graph = model.graph
    reference = _Reference(model)
    num_tasks = _num_tasks(graph, data)
    loss = torch.zeros(num_tasks, len(graph), dtype=torch.float64)
    accuracy = torch.full_like(loss, math.nan)
    for t in range(num_tasks):
        for n, name in enumerate(graph.names):
            loss[t, n] = reference.loss(name, weights[t, name], data, observed, t).detach()
            counting = _counting_shots(graph, name, data, observed, t)
            if graph.subtask(name).kind == "classification" and counting.any():
                outputs = reference.outputs(name, weights[t, name], data, t).detach()
                hits = outputs.argmax(-1) == _unpack(data[name])[1][t].long()
                accuracy[t, n] = hits[counting].double().mean()
    return {"loss": loss, "accuracy": accuracy}


def reference_metrics(model: Any, support: Data, query: Data, support_observed: Data | None = None,
                      query_observed: Data | None = None) -> dict[str, torch.Tensor]:
    """The metrics of ``model.meta_loss``, ``[N]`` each: ``loss_before`` and ``loss_after`` (the query
    loss of the initial and of the adapted weights) and ``accuracy_after``, each node's mean over
    the tasks where it has a counting query shot (NaN where it has none, and for regression accuracy)."""
    adaptation = reference_adapt(model, support, support_observed, create_graph=False)
    before = reference_evaluate(model, adaptation.initial, query, query_observed)
    after = reference_evaluate(model, adaptation.adapted, query, query_observed)
    graph = model.graph
    counted = torch.tensor([[bool(_counting_shots(graph, name, query, query_observed, t).any()) for name in graph.names]
                            for t in range(_num_tasks(graph, query))])

    def task_mean(values: torch.Tensor) -> torch.Tensor:
        return torch.stack([values[counted[:, n], n].mean() for n in range(len(graph))])

    return {"loss_before": task_mean(before["loss"]), "loss_after": task_mean(after["loss"]),
            "accuracy_after": task_mean(after["accuracy"])}


def reference_predict(model: Any, weights: Mapping[tuple[int, str], NodeWeights], inputs: Data,
                      observed: Data | None = None) -> dict[str, torch.Tensor]:
    """What ``AdaptedGraph.predict`` gives: every node's prediction ``[T, K, width]`` (regression
    outputs, class probabilities), parents before children; a child reads an ``observed`` parent's
    value (labels for classification, ``[T, K]``) and otherwise the parent's prediction."""
    graph = model.graph
    observed = dict(observed or {})
    reference = _Reference(model)
    num_tasks = 1 + max(t for t, _ in weights)
    shots = next(len(x) // num_tasks if isinstance(x, (list, tuple)) else torch.as_tensor(x).shape[1]
                 for x in [*inputs.values(), *observed.values()])
    order: list[str] = []
    while len(order) < len(graph):  # parents before children, in graph order where free
        order += [name for name in graph.names if name not in order and all(p in order for p in graph.parents(name))]
    predictions = {}
    for name in order:
        spec = graph.subtask(name)
        per_task = []
        for t in range(num_tasks):
            x = inputs.get(name)
            own = x[t * shots: (t + 1) * shots] if isinstance(spec.learner, GNN) else (
                torch.as_tensor(x[t]) if spec.in_dim else None)
            parents = [_value(graph, p, {p: observed[p]}, t) if p in observed else predictions[p][t]
                       for p in graph.parents(name)]
            outputs = reference.forward(name, weights[t, name], own, parents, shots).detach()
            per_task.append(outputs.softmax(-1) if spec.kind == "classification" else outputs)
        predictions[name] = torch.stack(per_task)
    return predictions


def unpadded_slices(model: Any, name: str) -> tuple[int, int, dict[str, tuple[slice, ...]]]:
    """``(bank index, row, slices)``: node ``name``'s row in its bank's parameters and, per
    weight, the part of that row that is its own (the rest pads it to the bank's widest node).

    A node's weights are laid out from its spec: an MLP's first layer reads its own features
    then its parents' values (``graph.input_width`` rows), a GNN's first convolution its
    ``in_dim`` features and its head the pooled ``hidden`` then the parents' values; outputs
    are the first ``width`` columns; a Table has one row per joint parent configuration.
    """
    graph = model.graph
    spec = graph.subtask(name)
    learner = spec.learner
    b, row = _location(model, name)
    every = slice(None)
    outputs = slice(0, spec.width)
    parent_width = sum(graph.subtask(p).width for p in graph.parents(name))
    if isinstance(learner, Table):
        rows = math.prod(graph.subtask(p).width for p in graph.parents(name))
        return b, row, {"log_counts": (slice(0, rows), outputs)}
    if isinstance(learner, GNN):
        slices = {f"conv{l}_{kind}": (every,) * (2 if kind == "weight" else 1)
                  for l in range(learner.layers) for kind in ("weight", "bias")}
        slices["conv0_weight"] = (slice(0, spec.in_dim), every)
        slices["head_weight"] = (slice(0, learner.hidden + parent_width), outputs)
        slices["head_bias"] = (outputs,)
        return b, row, slices
    layers = _mlp_layers(learner)
    slices = {f"{layer}_{kind}": (every,) * (2 if kind == "weight" else 1) for layer in layers
              for kind in ("weight", "bias")}
    slices[f"{layers[0]}_weight"] = (slice(0, spec.in_dim + parent_width), every)
    slices["head_weight"] = (slices["head_weight"][0], outputs)
    slices["head_bias"] = (outputs,)
    return b, row, slices


# --------------------------------------------------------------------- the computation
class _Reference:
    """The formulas of the module docstring for one model, reading its parameters by name."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.graph = model.graph
        self.config = model.config
        self.algorithm = model.config["algorithm"]
        if self.algorithm not in DEFINED:
            raise NotImplementedError(f"the reference does not define algorithm {self.algorithm!r}: write its "
                                      "update, rates and meta-loss here, from its paper, before testing the engine's")
        self.parameters = dict(model.named_parameters())

    # ---------------------------------------------------------------- weights
    def theta(self, name: str) -> NodeWeights:
        """Node ``name``'s own (unpadded) meta-initialisation."""
        b, row, slices = unpadded_slices(self.model, name)
        prefix = f"banks.banks.{b}.theta."
        return {key[len(prefix):]: parameter[(row, *slices[key[len(prefix):]])]
                for key, parameter in self.parameters.items() if key.startswith(prefix)}

    def initial(self, name: str) -> NodeWeights:
        """The weights before the first step: theta, and CAVIA's zero context."""
        weights = self.theta(name)
        if self.algorithm == "cavia" and not self.is_table(name):
            weights["context"] = weights["head_bias"].new_zeros(self.config["context_dim"]).requires_grad_()
        return weights

    def is_table(self, name: str) -> bool:
        return isinstance(self.graph.subtask(name).learner, Table)

    def adapted_names(self, name: str) -> list[str]:
        """The weights of node ``name`` that the algorithm adapts, in the order of the bank's parameters."""
        every = list(self.theta(name))
        if self.is_table(name):
            return every
        if self.algorithm in ("anil", "alpaca"):
            return [weight for weight in every if weight.startswith("head_")]
        if self.algorithm == "cavia":
            return ["context"]
        return every

    def head_names(self, name: str) -> list[str]:
        """The output layer's weights (what message passing corrects)."""
        return ["log_counts"] if self.is_table(name) else ["head_weight", "head_bias"]

    def first_layer(self, name: str) -> str:
        learner = self.graph.subtask(name).learner
        return "conv0" if isinstance(learner, GNN) else _mlp_layers(learner)[0]

    def composed(self, name: str, weights: NodeWeights) -> NodeWeights:
        """The weights the node computes with: a CAVIA context folded into the first bias."""
        if "context" not in weights:
            return weights
        composed = {key: w for key, w in weights.items() if key != "context"}
        bias = f"{self.first_layer(name)}_bias"
        composed[bias] = composed[bias] + weights["context"] @ self.context_projection(name)
        return composed

    def context_projection(self, name: str) -> torch.Tensor:
        """CAVIA's ``W_c [m, H]`` of node ``name``, cut to the first layer's own width."""
        b, row, slices = unpadded_slices(self.model, name)
        own_width = slices[f"{self.first_layer(name)}_bias"][0]
        return self.parameters[f"algorithm.projections.{b}"][row][:, own_width]

    def rate(self, name: str, weight: str, step: int, steps: int) -> torch.Tensor | float:
        """``alpha`` of ``weight`` of node ``name`` at ``step`` of ``steps`` (see the module)."""
        b, row, slices = unpadded_slices(self.model, name)
        trained, share = trained_step(step, steps, max(self.config["inner_steps"], 1))
        if self.algorithm == "metasgd":
            return self.parameters[f"algorithm.rates.{b}.{weight}"][(row, *slices[weight])] * share
        if self.algorithm == "mamlpp":
            return self.parameters[f"algorithm.rates.{b}.{weight}"][trained, row] * share
        if self.config["learn_inner_lr"]:
            return self.parameters["algorithm.inner_lrs"][trained] * share
        return self.config["inner_lr"]

    # ----------------------------------------------------------------- steps
    def inner_step(self, name: str, weights: NodeWeights, loss: torch.Tensor, data: Data, observed: Data | None,
                   t: int, step: int, steps: int, create_graph: bool) -> NodeWeights:
        """One inner step of node ``name`` in task ``t``: a gradient step on its adapted weights,
        or for a Table the conjugate update at step 0 and nothing after."""
        if self.is_table(name):
            return self.dirichlet_posterior(name, weights, data, observed, t) if step == 0 else weights
        if self.algorithm == "alpaca":
            return self.alpaca_head(name, weights, data, observed, t) if step == 0 else weights
        adapted = self.adapted_names(name)
        grads = torch.autograd.grad(loss, [weights[weight] for weight in adapted], create_graph=create_graph)
        stepped = dict(weights)
        for weight, grad in zip(adapted, grads):
            stepped[weight] = weights[weight] - self.rate(name, weight, step, steps) * grad
        return stepped

    def dirichlet_posterior(self, name: str, weights: NodeWeights, data: Data, observed: Data | None,
                            t: int) -> NodeWeights:
        """``beta + n`` with the support counts ``n`` of node ``name`` in task ``t``."""
        counts = self.support_counts(name, data, observed, t).to(weights["log_counts"].dtype)
        return {"log_counts": (weights["log_counts"].exp() + counts).log()}

    def alpaca_head(self, name: str, weights: NodeWeights, data: Data, observed: Data | None,
                    t: int) -> NodeWeights:
        """ALPaCA: the head replaced by the mixture posterior mean ``sum_m r_m w_m`` (see the module)."""
        own, parents, shots = self.inputs(name, data, t)
        counting = _counting_shots(self.graph, name, data, observed, t)
        features = self.head_input(name, weights, own, parents, shots)[counting]
        phi = torch.cat([features, torch.ones_like(features[:, :1])], dim=1)  # [K', D]
        y = _value(self.graph, name, data, t)[counting].to(phi.dtype)  # [K', O]
        head = torch.cat([weights["head_weight"], weights["head_bias"][None]])  # [D, O]
        noise = self.alpaca_parameter("log_noise", name).exp()
        log_mixing = self.alpaca_parameter("log_mixture", name).log_softmax(-1)
        offsets = self.alpaca_head_rows("mean_offsets", name)
        raw = self.alpaca_head_rows("precision_factors", name, square=True)
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

    def alpaca_parameter(self, kind: str, name: str) -> torch.Tensor:
        """ALPaCA's ``algorithm.<kind>.<bank>`` row of node ``name``."""
        b, row, _ = unpadded_slices(self.model, name)
        return self.parameters[f"algorithm.{kind}.{b}"][row]

    def alpaca_head_rows(self, kind: str, name: str, square: bool = False) -> torch.Tensor:
        """ALPaCA's per-component ``[M', D_pad + 1, ...]`` row of node ``name`` cut to the node's own
        head inputs and the bias (the last row), and to its outputs (or, ``square``, the same rows
        again as columns)."""
        b, row, slices = unpadded_slices(self.model, name)
        rows, outputs = slices["head_weight"]
        full = self.parameters[f"algorithm.{kind}.{b}"][row]
        own = list(range(full.shape[-2] - 1))[rows] + [full.shape[-2] - 1]
        return full[:, own][:, :, own] if square else full[:, own, outputs]

    def support_counts(self, name: str, data: Data, observed: Data | None, t: int) -> torch.Tensor:
        """``n [rows, classes]``: one count for each counting shot, in its row and class, one shot at a time."""
        spec = self.graph.subtask(name)
        rows = self.table_rows(name, data, t)
        counts = torch.zeros(math.prod(self.graph.subtask(p).width for p in self.graph.parents(name)), spec.width,
                             dtype=torch.float64)
        _, y = _unpack(data[name])
        for k in torch.nonzero(_counting_shots(self.graph, name, data, observed, t)).flatten().tolist():
            counts[rows[k], int(y[t, k])] += 1
        return counts

    def table_rows(self, name: str, data: Data, t: int) -> list[int]:
        """Each shot's row ``u = sum_j s_j prod_{k > j} c_k`` over the parents' classes (first slowest)."""
        parents = self.graph.parents(name)
        classes = [self.graph.subtask(p).width for p in parents]
        shots = _unpack(data[name])[1].shape[1]
        rows = []
        for k in range(shots):
            row = 0
            for parent, count in zip(parents, classes):
                row = row * count + max(int(_unpack(data[parent])[1][t, k]), 0)
            rows.append(row)
        return rows

    # ------------------------------------------------------------------ loss
    def outputs(self, name: str, weights: NodeWeights, data: Data, t: int) -> torch.Tensor:
        """``[K, width]`` of task ``t`` with its parents' values teacher-forced from ``data``."""
        return self.forward(name, weights, *self.inputs(name, data, t))

    def inputs(self, name: str, data: Data, t: int) -> tuple[Any, list[torch.Tensor], int]:
        """Node ``name``'s own inputs in task ``t``, its parents' values (teacher-forced) and the shot count."""
        x, y = _unpack(data[name])
        shots = y.shape[1]
        own = x[t * shots: (t + 1) * shots] if isinstance(self.graph.subtask(name).learner, GNN) else (
            torch.as_tensor(x[t]) if self.graph.subtask(name).in_dim else None)
        return own, [_value(self.graph, p, data, t) for p in self.graph.parents(name)], shots

    def forward(self, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                shots: int) -> torch.Tensor:
        """``[K, width]``: regression outputs, logits, or a Table's log-probabilities, from the
        node's own inputs (features ``[K, in_dim]``, or ``K`` PyG graphs) and its parents'
        values ``[K, width_p]`` (one-hot, or class probabilities where a parent is predicted:
        a Table then predicts the mixture ``sum_u q(u) P(. | u)``, ``q(u) = prod_j p_j(s_j(u))``)."""
        weights = self.composed(name, weights)
        learner = self.graph.subtask(name).learner
        dtype = weights["log_counts" if self.is_table(name) else "head_bias"].dtype
        parents = [p.to(dtype) for p in parents]
        if isinstance(learner, Table):
            pseudo_counts = weights["log_counts"].exp()
            cpd = pseudo_counts / pseudo_counts.sum(-1, keepdim=True)
            mixture = 0
            for u in range(cpd.shape[0]):
                weight, rest = torch.ones(shots, dtype=dtype), u
                for parent in reversed(parents):  # the last parent is the fastest digit of u
                    weight, rest = weight * parent[:, rest % parent.shape[-1]], rest // parent.shape[-1]
                mixture = mixture + weight[:, None] * cpd[u]
            return mixture.log()
        head_input = self.head_input(name, weights, own, parents, shots)
        return head_input @ weights["head_weight"] + weights["head_bias"]

    def head_input(self, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                   shots: int) -> torch.Tensor:
        """``[K, D_h]``: what the output layer of an MLP or GNN node reads (see :meth:`forward`)."""
        learner = self.graph.subtask(name).learner
        dtype = weights["head_bias"].dtype
        parents = [p.to(dtype) for p in parents]
        activation = ACTIVATIONS[learner.activation]
        if isinstance(learner, GNN):
            inputs = []
            for k in range(shots):
                hidden = own[k].x.to(dtype)
                propagate = _normalised_adjacency(own[k].edge_index, hidden.shape[0], dtype)
                for l in range(learner.layers):
                    hidden = activation(propagate @ hidden @ weights[f"conv{l}_weight"] + weights[f"conv{l}_bias"])
                inputs.append(torch.cat([hidden.mean(0), *[p[k] for p in parents]]))
            return torch.stack(inputs)
        columns = ([own.to(dtype)] if own is not None else []) + parents
        hidden = torch.cat(columns, dim=-1) if columns else torch.zeros(shots, 0, dtype=dtype)
        for layer in _mlp_layers(learner)[:-1]:
            hidden = activation(hidden @ weights[f"{layer}_weight"] + weights[f"{layer}_bias"])
        return hidden

    def loss(self, name: str, weights: NodeWeights, data: Data, observed: Data | None, t: int) -> torch.Tensor:
        """The node's mean loss over its counting shots (0 without one)."""
        outputs = self.outputs(name, weights, data, t)
        counting = _counting_shots(self.graph, name, data, observed, t)
        _, y = _unpack(data[name])
        if self.graph.subtask(name).kind == "classification":
            per_shot = -outputs.log_softmax(-1).gather(1, y[t].long().clamp(min=0)[:, None]).squeeze(1)
        else:
            per_shot = (outputs - y[t].to(outputs.dtype)).pow(2).mean(-1)
        return (per_shot * counting.to(per_shot.dtype)).sum() / max(int(counting.sum()), 1)

    # ------------------------------------------------------- message passing
    def message_passing(self, t: int, initial: dict[tuple[int, str], NodeWeights],
                        plain: dict[tuple[int, str], NodeWeights], support_loss: dict[tuple[int, str], torch.Tensor],
                        support: Data, observed: Data | None, constant: bool) -> dict[tuple[int, str], NodeWeights]:
        """The corrected weights of every node of task ``t`` (the dense formula of the module)."""
        names = self.graph.names
        parameter = self.parameters
        hidden = []
        for i, name in enumerate(names):
            b, _, _ = unpadded_slices(self.model, name)
            phi, theta = plain[t, name], initial[t, name]
            statistic = support_loss[t, name]
            shots = _counting_shots(self.graph, name, support, observed, t).sum().to(statistic.dtype)
            if constant:
                phi, theta, statistic = ({k: w.detach() for k, w in phi.items()},
                                         {k: w.detach() for k, w in theta.items()}, statistic.detach())
            adapted = self.adapted_names(name)
            deltas = {weight: self.padded(name, weight, phi[weight] - theta[weight]) for weight in adapted}
            sizes = [(d.pow(2).sum() / d.numel() + EPSILON).sqrt() for d in deltas.values()]
            head = torch.cat([deltas[weight] if weight in deltas else self.padded(name, weight, torch.zeros_like(theta[weight]))
                              for weight in self.head_names(name)])
            head_size = (head.pow(2).sum() / head.numel() + EPSILON).sqrt()
            features = [head / head_size, torch.stack(sizes).log(), torch.stack([statistic, shots]).log1p()]
            if self.is_table(name):
                counts = self.padded(name, "log_counts", self.support_counts(name, support, observed, t))
                features += [counts / (shots + scale) for scale in COUNT_SCALES]
            hidden.append(_linear(torch.cat(features), parameter, f"message_passing.encoders.{b}")
                          + parameter["message_passing.node_embedding"][i])
        hidden = torch.stack(hidden)
        adjacency = hidden.new_zeros(len(names), len(names))
        for child in names:
            for parent in self.graph.parents(child):
                adjacency[names.index(parent), names.index(child)] = 1.0
        in_degree = adjacency.sum(0).clamp(min=1)[:, None]
        out_degree = adjacency.sum(1).clamp(min=1)[:, None]
        for l in range(self.config["message_rounds"]):
            prefix = f"message_passing.rounds.{l}"
            from_parents = adjacency.T @ hidden / in_degree
            from_children = adjacency @ hidden / out_degree
            readout = hidden.mean(0, keepdim=True)
            hidden = hidden + torch.relu(_linear(hidden, parameter, f"{prefix}.self_weight")
                                         + from_parents @ parameter[f"{prefix}.down.weight"].T
                                         + from_children @ parameter[f"{prefix}.up.weight"].T
                                         + readout @ parameter[f"{prefix}.graph_level.weight"].T)
        corrected = {}
        for i, name in enumerate(names):
            b, _, slices = unpadded_slices(self.model, name)
            correction = parameter[f"message_passing.gates.{b}"] * _linear(hidden[i], parameter,
                                                                         f"message_passing.decoders.{b}")
            weights = {k: w.detach() for k, w in plain[t, name].items()} if constant else dict(plain[t, name])
            offset = 0
            for weight in self.head_names(name):
                shape = self.padded_shape(name, weight)
                part = correction[offset: offset + math.prod(shape)].reshape(shape)[slices[weight]]
                if self.is_table(name):  # the prior's pseudo-counts times e^c, then the counts
                    counts = self.support_counts(name, support, observed, t).to(part.dtype)
                    weights[weight] = (initial[t, name][weight] + part).exp().add(counts).log()
                else:
                    weights[weight] = weights[weight] + part
                offset += math.prod(shape)
            corrected[t, name] = weights
        return corrected

    def padded_shape(self, name: str, weight: str) -> tuple[int, ...]:
        """The shape of one node's row of ``weight`` in its bank (a context: ``[m]``)."""
        if weight == "context":
            return (self.config["context_dim"],)
        b, _, _ = unpadded_slices(self.model, name)
        return tuple(self.parameters[f"banks.banks.{b}.theta.{weight}"].shape[1:])

    def padded(self, name: str, weight: str, own: torch.Tensor) -> torch.Tensor:
        """Node ``name``'s own part of ``weight`` in its padded row, zero elsewhere, flattened."""
        if weight == "context":
            return own.flatten()
        _, _, slices = unpadded_slices(self.model, name)
        row = own.new_zeros(self.padded_shape(name, weight))
        row[slices[weight]] = own
        return row.flatten()


# ------------------------------------------------------------------------- helpers
def _mlp_layers(learner: MLP) -> list[str]:
    return [f"hidden{l}" for l in range(len(learner.hidden))] + ["head"]


def _linear(x: torch.Tensor, parameters: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """``x W^T + bias`` of the ``nn.Linear`` named ``prefix``."""
    return x @ parameters[f"{prefix}.weight"].T + parameters[f"{prefix}.bias"]


def _normalised_adjacency(edge_index: torch.Tensor, size: int, dtype: torch.dtype) -> torch.Tensor:
    """``D^{-1/2} (A + I) D^{-1/2}`` with ``A[u, v] = 1`` for every edge ``u -> v``, self loops dropped."""
    adjacency = torch.zeros(size, size, dtype=dtype)
    for u, v in edge_index.t().tolist():
        if u != v:
            adjacency[u, v] = 1.0
    with_loops = adjacency + torch.eye(size, dtype=dtype)
    scale = with_loops.sum(-1).rsqrt()
    return scale[:, None] * with_loops * scale[None, :]


def _location(model: Any, name: str) -> tuple[int, int]:
    """Which bank holds node ``name``'s parameters, and in which row."""
    for b, bank in enumerate(model.banks):
        if name in bank.names:
            return b, bank.names.index(name)
    raise KeyError(f"no bank of the model holds node {name!r}")


def _num_tasks(graph: Any, data: Data) -> int:
    return int(_unpack(data[graph.names[0]])[1].shape[0])


def _unpack(entry: Any) -> tuple[Any, torch.Tensor]:
    return (entry[0], torch.as_tensor(entry[1])) if isinstance(entry, (tuple, list)) else (None, torch.as_tensor(entry))


def _value(graph: Any, name: str, data: Data, t: int) -> torch.Tensor:
    """Node ``name``'s value in task ``t`` as its children read it: ``[K, width]``, one-hot for classification."""
    _, y = _unpack(data[name])
    spec = graph.subtask(name)
    if spec.kind == "classification":
        return F.one_hot(y[t].long().clamp(min=0), spec.num_classes).double()
    return y[t].double()


def _counting_shots(graph: Any, name: str, data: Data, observed: Data | None, t: int) -> torch.Tensor:
    """``[K]`` bool: the shots of task ``t`` where ``name`` and all its parents are observed."""
    _, y = _unpack(data[name])
    counting = torch.ones(y.shape[1], dtype=torch.bool)
    for node in [name, *graph.parents(name)]:
        if observed is not None and node in observed:
            counting &= torch.as_tensor(observed[node][t], dtype=torch.bool)
    return counting
