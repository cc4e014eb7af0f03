r"""An independent, slow reference of the meta-training step: one task, one node at a time.

The reference shares nothing with the engine but the task graph and the model's parameters,
which it reads by name (``model.named_parameters()``, the ``algorithm.progress`` buffer, and
``bank.names`` for which row of which bank holds a node). It calls no bank, algorithm or
message-passing module of the model, reads none of their other attributes (not which weights
an algorithm adapts, not its rates, not a bank's padding), and imports nothing from
:mod:`graphmeta.learners`, :mod:`graphmeta.adapt` or :mod:`graphmeta.model` but the table of
activation functions. What the model computes is written out again below, from the
definitions, for one (task ``t``, node ``i``) at a time, on the node's own unpadded weights:
what differs between node learners in :mod:`.reference_learners`, between algorithms in
:mod:`.reference_algorithms`, one definition of each.
Tests check the batched engine against it (float64, ``rtol=1e-6``); the throughput benchmark
times it as the per-node loop a learn2learn-style library runs.

**Data** are the ``{node: (x, y)}`` mappings of :meth:`~graphmeta.TaskBatch.from_tensors`
with a task axis (``x`` of a GNN node: a list of ``T * K`` PyG ``Data``, task-major) and
optional ``observed`` masks ``{node: [T, K] bool}``. A shot *counts* for node ``i`` when the
values of ``i`` and of all its parents are observed there (of a latent parent: the values its
own input reads, in turn).

**Latent nodes** (``observed=False``; data give them features ``(x, None)`` or nothing) count at
no shot. For task ``t`` and per-node weights, the data are *filled*: parents before children,
each latent node's value is its prediction from its own inputs and its parents' values (observed
ones as given, latent ones filled), and every loss, support and query, reads the filled data.
The inner loop then steps all nodes of a task together, each from the gradient of the task's
summed support loss ``sum_i L_i`` (a node's own loss, and for a latent node its descendants'
through its value), and the guard below compares each node's own loss; a refused node keeps its
loss and gradient as they were (only an observed node is ever refused, and nothing reads its output).
The guard: a node's proposed step stays iff its support loss after it is finite and not above the
one before, else the node keeps its weights and its next step is halved; a kept step doubles the
next (at most the full rate). In meta-training (the model in training mode) the last step is kept
as proposed.

**Missing inputs** (``fill_missing``, by default where the data have them: a node that is not a
conjugate learner observed at a shot where a value its input reads is not). The data are then
filled at every node with children, parents before children: where the node is observed its value
as given, elsewhere its prediction (class probabilities for a classification node), and a shot counts
for a node that is not a conjugate learner wherever the node itself is observed. A conjugate learner,
and a head fitted in closed form (ALPaCA's), count the shots where every value the input reads is
observed, as without filling.

**Node learners** (by the registered name of a node's learner type): their outputs, what their
output layer reads, and for a conjugate learner (Table, Linear) its closed-form update, are its
definition in :mod:`.reference_learners`.

The loss of node ``i`` is the mean over its counting shots of the squared error averaged over
its ``out_dim`` outputs, or of the cross-entropy ``-log softmax(output)[y]``, or its learner's
own (a Linear node's negative log predictive density); 0 without a shot.

**Algorithms** (``model.config["algorithm"]``): what differs between them (which weights adapt,
their rates, a closed-form head, the meta-loss) is each algorithm's definition in
:mod:`graphmeta.testing.reference_algorithms`. A conjugate learner (Table), whatever the
algorithm, takes its closed-form update at the first step and keeps it.

**No step makes a node worse.** A node that takes gradient steps (not a conjugate learner, not
an algorithm whose step is a closed-form fit) keeps the last weights ``w`` it accepted, with their
support loss ``L(w)``, and a factor ``c = 1``. Step ``s`` computes ``w' = w - c alpha_s grad L(w)``
and its support loss ``L(w')``: if ``L(w')`` is finite and not above ``L(w)``, ``w'`` is accepted and
``c`` doubles, up to 1; otherwise the node stays at ``w`` and halves ``c``. The weights after step
``s`` are the accepted ones.

**Task factor** (Linear nodes with ``task_factors``, after at least one step), per task: every such
node's rows, given the factor ``u`` and the noise at ``b / a``, are Gaussian in ``u``; ``u`` is put at
its posterior mean under ``N(0, I)`` (:meth:`_Reference.place_task`), each such node's prior mean at
``m + A u``, and its update redone from there. Message passing reads that prior as ``theta``.

**Message passing** (``message_passing=True``, after at least one step), per task, over the
task graph's adjacency ``A[j, i] = 1`` for every edge ``j -> i``. Node ``i`` of bank ``b``
has the updates ``delta_m = phi_m - theta_m`` of its adapted weights (a context's, for CAVIA),
each placed in its padded per-node parameter shape of ``P_m`` numbers, their sizes
``r_m = sqrt(|delta_m|^2 / P_m + eps)``, and the update of its output layer ``delta_h`` (the
concatenated head weights, zero where they do not adapt) with size ``r_h``; ``L_i`` is its
support loss before adaptation and ``K_i`` its number of counting support shots. Then, with
the parameters of ``message_passing`` (``y = x W^T + bias`` for each ``nn.Linear``)::

    h_i = encoders.b([delta_h / r_h, log r_1, ..., log r_M, slog(L_i), slog(K_i)]) + node_embedding[i]
    round l:  h_i <- h_i + relu( self_weight(h_i) + down(mean_{j: A[j, i]} h_j)
                                 + up(mean_{j: A[i, j]} h_j) + graph_level(mean_j h_j) )
    phi_h <- phi_h + gates.b * decoders.b(h_i)        (each head weight its own part)

with an empty mean 0 (and ``delta_h / r_h = 0`` for a head that did not move), ``eps = 1e-12`` and ``slog(x) = sign(x) log(1 + |x|)``. ``L_i`` carries its gradient when the algorithm is
second order. Where the algorithm's definition says so (Reptile, whose meta-init learns from
the pull alone), message passing reads constants: ``phi``, ``delta`` and ``L`` detached. A conjugate
node's encoder also reads its statistics ``n`` (its learner's definition says which), shrunk at the
data scales ``kappa = 1, 10, 100``: ``[..., n / (K_i + 1), n / (K_i + 10), n / (K_i + 100)]``, and its
learner's definition applies its correction ``c`` (a Table's multiplies its prior).

**Meta-loss.** ``L_query(phi)`` is the mean over the (task, node) pairs with a counting query
shot of the node's query loss (parents teacher-forced); the algorithm's definition makes the
meta-loss of it (``L_query(phi_S)`` after message passing, for most). A regression node whose bank
holds a learned noise scale ``log_noise_std`` adds, averaged over the same pairs, the gradient
(not the value) of the Gaussian negative log-likelihood of its detached query residuals ``r``:
the mean over counting shots of ``sum_o log(2 pi)/2 + s_o + r_o^2 / (2 exp(2 s_o))`` with
``s = log_noise_std[row]``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from .reference_algorithms import REFERENCE_ALGORITHMS, alpaca_head, mamlpp_importances
from .reference_learners import REFERENCE_LEARNERS

__all__ = ["mamlpp_importances", "reference_adapt", "reference_adapted_weights", "reference_evaluate",
           "reference_meta_loss", "reference_metrics", "reference_predict", "unpadded_slices"]

Data = Mapping[str, Any]
NodeWeights = dict[str, torch.Tensor]
#: Keeps ``log r`` finite for an update that is exactly zero.
EPSILON = 1e-12
#: The data scales at which message passing reads a conjugate node's statistics.
COUNT_SCALES = (1.0, 10.0, 100.0)


class FilledEntry(NamedTuple):
    """A node's data after filling: its own ``x`` and ``y`` (labels stay the node's targets) and
    ``value``, ``[T, K, width]``, what its children read."""

    x: Any
    y: Any
    value: torch.Tensor


@dataclass
class ReferenceAdaptation:
    """Per ``(t, node)``: ``initial`` weights, the weights after every step (``steps``, the last
    corrected by message passing), ``plain`` (after the inner loop), ``final`` (after message
    passing) and ``support_loss`` before adaptation (none for zero steps)."""

    initial: dict[tuple[int, str], NodeWeights]
    steps: dict[tuple[int, str], list[NodeWeights]]
    plain: dict[tuple[int, str], NodeWeights]
    final: dict[tuple[int, str], NodeWeights]
    support_loss: dict[tuple[int, str], torch.Tensor]


def reference_meta_loss(model: Any, support: Data, query: Data, support_observed: Data | None = None,
                        query_observed: Data | None = None, create_graph: bool | None = None,
                        fill_missing: bool | None = None) -> torch.Tensor:
    """The meta-loss of ``model`` on one meta-batch, task by task and node by node (see the module)."""
    reference = _Reference(model, fill_missing)
    if create_graph is None:
        create_graph = reference.algorithm.second_order and model.training
    adaptation = reference_adapt(model, support, support_observed, create_graph=create_graph,
                                 fill_missing=fill_missing, review_last_step=not model.training)

    def query_loss(weights: dict[tuple[int, str], NodeWeights]) -> torch.Tensor:
        total, pairs = 0, 0
        for t in range(_num_tasks(model.graph, query)):
            filled = reference.filled({name: weights[t, name] for name in model.graph.names}, query, query_observed, t)
            for name in model.graph.names:
                counted = bool(reference.counting_shots(name, query, query_observed, t).any())
                total = total + counted * reference.loss(name, weights[t, name], filled, query_observed, t)
                pairs += counted
        return total / max(pairs, 1)

    def noise_loss(weights: dict[tuple[int, str], NodeWeights]) -> torch.Tensor:
        total, pairs = 0, 0
        for t in range(_num_tasks(model.graph, query)):
            filled = reference.filled({name: weights[t, name] for name in model.graph.names}, query, query_observed, t)
            for name in model.graph.names:
                counting = reference.counting_shots(name, query, query_observed, t)
                pairs += bool(counting.any())
                b, row, _ = unpadded_slices(model, name)
                log_std = reference.parameters.get(f"banks.banks.{b}.log_noise_std")
                if log_std is None or not counting.any() or model.graph.subtask(name).kind != "regression":
                    continue
                log_std = log_std[row, :model.graph.subtask(name).width]
                residual = reference.outputs(name, weights[t, name], filled, t).detach() - _value(model.graph, name, query, t)
                per_shot = (0.5 * math.log(2 * math.pi) + log_std + residual ** 2 / (2 * (2 * log_std).exp())).sum(-1)
                total = total + (per_shot * counting.to(per_shot.dtype)).sum() / int(counting.sum())
        return total / max(pairs, 1)

    noise = noise_loss(adaptation.final)
    return (reference.algorithm.meta_loss(reference, query_loss(adaptation.final), adaptation, query_loss)
            + (noise - noise.detach() if torch.is_tensor(noise) else 0))


def reference_adapt(model: Any, support: Data, support_observed: Data | None = None, steps: int | None = None,
                    create_graph: bool = True, fill_missing: bool | None = None,
                    review_last_step: bool = True) -> ReferenceAdaptation:
    """The inner loop of every (task, node), then message passing when the model has it on;
    ``review_last_step=False`` keeps the last step as proposed (meta-training's rule)."""
    graph, config = model.graph, model.config
    reference = _Reference(model, fill_missing)
    steps = config["inner_steps"] if steps is None else steps
    keys = [(t, name) for t in range(_num_tasks(graph, support)) for name in graph.names]
    initial = {(t, name): reference.initial(name) for t, name in keys}
    every_step: dict[tuple[int, str], list[NodeWeights]] = {key: [] for key in keys}
    support_loss: dict[tuple[int, str], torch.Tensor] = {}
    for t in range(_num_tasks(graph, support)):
        weights = {name: initial[t, name] for name in graph.names}
        factors = dict.fromkeys(graph.names, 1.0)
        losses = reference.task_losses(weights, support, support_observed, t)
        total = sum(losses.values())
        gradient_of = dict.fromkeys(graph.names, total)  # the summed loss each node's next step differentiates
        for name in graph.names:
            if steps:
                support_loss[t, name] = losses[name] if create_graph else losses[name].detach()
        for step in range(steps):
            proposed = {name: reference.inner_step(name, weights[name], gradient_of[name], support, support_observed,
                                                   t, step, steps, create_graph, factors[name])
                        for name in graph.names}
            if not review_last_step and step == steps - 1:  # meta-training keeps its last step unread
                for name in graph.names:
                    weights[name] = proposed[name]
                    every_step[t, name].append(weights[name])
                break
            proposed_losses = reference.task_losses(proposed, support, support_observed, t)
            proposed_total = sum(proposed_losses.values())
            for name in graph.names:
                if not reference.guarded(name) or (torch.isfinite(proposed_losses[name])
                                                   and proposed_losses[name] <= losses[name]):
                    weights[name], losses[name], gradient_of[name] = proposed[name], proposed_losses[name], proposed_total
                    factors[name] = min(2 * factors[name], 1.0)
                else:  # refused: the same weights, loss and gradient; half the step
                    factors[name] /= 2
                every_step[t, name].append(weights[name])
    plain = {key: every[-1] if every else initial[key] for key, every in every_step.items()}
    start = initial
    if reference.factored and steps > 0:
        start, plain = dict(initial), dict(plain)
        for t in range(_num_tasks(graph, support)):
            reference.place_task(t, start, plain, support, support_observed)
        for key, every in every_step.items():
            every[-1] = plain[key]
    final = plain
    if config["message_passing"] and steps > 0:
        final = {}
        for t in range(_num_tasks(graph, support)):
            final.update(reference.message_passing(t, start, plain, support_loss, support, support_observed,
                                                   reference.algorithm.constant_messages))
        for key, every in every_step.items():
            every[-1] = final[key]
    return ReferenceAdaptation(initial, every_step, plain, final, support_loss)


def reference_adapted_weights(model: Any, support: Data, support_observed: Data | None = None,
                              steps: int | None = None, fill_missing: bool | None = None
                              ) -> dict[tuple[int, str], NodeWeights]:
    """The weights every (task, node) predicts with after ``model.adapt`` (detached, unpadded;
    a CAVIA context folded into the first layer's bias as ``b + c W_c``)."""
    adaptation = reference_adapt(model, support, support_observed, steps, create_graph=False,
                                 fill_missing=fill_missing)
    reference = _Reference(model)
    return {(t, name): {key: w.detach() for key, w in reference.composed(name, weights).items()}
            for (t, name), weights in adaptation.final.items()}


def reference_evaluate(model: Any, weights: Mapping[tuple[int, str], NodeWeights], data: Data,
                       observed: Data | None = None, fill_missing: bool | None = None) -> dict[str, torch.Tensor]:
    """What ``AdaptedGraph.evaluate`` gives for the per-(task, node) ``weights`` (e.g. of
    :func:`reference_adapted_weights`): the query ``loss`` and ``accuracy`` ``[T, N]`` with parents
    teacher-forced; accuracy is the fraction of counting shots whose largest output is the
    label, NaN for regression and where a node has no counting shot."""
    graph = model.graph
    reference = _Reference(model, fill_missing)
    num_tasks = _num_tasks(graph, data)
    loss = torch.zeros(num_tasks, len(graph), dtype=torch.float64)
    accuracy = torch.full_like(loss, math.nan)
    for t in range(num_tasks):
        filled = reference.filled({name: weights[t, name] for name in graph.names}, data, observed, t)
        for n, name in enumerate(graph.names):
            loss[t, n] = reference.loss(name, weights[t, name], filled, observed, t).detach()
            if not graph.subtask(name).observed:
                loss[t, n] = math.nan  # not scored
            counting = reference.counting_shots(name, data, observed, t)
            if graph.subtask(name).kind == "classification" and counting.any():
                outputs = reference.outputs(name, weights[t, name], filled, t).detach()
                hits = outputs.argmax(-1) == _unpack(data[name])[1][t].long()
                accuracy[t, n] = hits[counting].double().mean()
    return {"loss": loss, "accuracy": accuracy}


def reference_metrics(model: Any, support: Data, query: Data, support_observed: Data | None = None,
                      query_observed: Data | None = None, fill_missing: bool | None = None) -> dict[str, torch.Tensor]:
    """The metrics of ``model.meta_loss``, ``[N]`` each: ``loss_before`` and ``loss_after`` (the query
    loss of the initial and of the adapted weights) and ``accuracy_after``, each node's mean over
    the tasks where it has a counting query shot (NaN where it has none, and for regression accuracy)."""
    adaptation = reference_adapt(model, support, support_observed, create_graph=False, fill_missing=fill_missing,
                                 review_last_step=not model.training)
    before = reference_evaluate(model, adaptation.initial, query, query_observed, fill_missing)
    after = reference_evaluate(model, adaptation.final, query, query_observed, fill_missing)
    graph = model.graph
    reference = _Reference(model, fill_missing)
    counted = torch.tensor([[bool(reference.counting_shots(name, query, query_observed, t).any()) for name in graph.names]
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
            own = reference.own_inputs(name, inputs.get(name), t, shots)
            parents = [_value(graph, p, {p: observed[p]}, t) if p in observed else predictions[p][t]
                       for p in graph.parents(name)]
            outputs = reference.forward(name, weights[t, name], own, parents, shots).detach()
            per_task.append(outputs.softmax(-1) if spec.kind == "classification" else outputs)
        predictions[name] = torch.stack(per_task)
    return predictions


def unpadded_slices(model: Any, name: str) -> tuple[int, int, dict[str, tuple[slice, ...]]]:
    """``(bank index, row, slices)``: node ``name``'s row in its bank's parameters and, per
    weight, the part of that row that is its own (the rest pads it to the bank's widest node),
    as its learner's definition lays it out (outputs are the first ``width`` columns)."""
    b, row = _location(model, name)
    return b, row, _learner(model.graph, name).slices(model.graph, name)


# --------------------------------------------------------------------- the computation
class _Reference:
    """The formulas of the module docstring for one model, reading its parameters by name."""

    def __init__(self, model: Any, fill_missing: bool | None = None) -> None:
        self.model = model
        self.fill_missing = fill_missing
        self.graph = model.graph
        self.config = model.config
        name = model.config["algorithm"]
        if name not in REFERENCE_ALGORITHMS:
            raise NotImplementedError(f"the reference does not define algorithm {name!r}: write its update, rates "
                                      "and meta-loss in graphmeta/testing/reference_algorithms.py, from its paper, "
                                      "before testing the engine's")
        self.algorithm = REFERENCE_ALGORITHMS[name]()
        self.learners = {node: _learner(self.graph, node) for node in self.graph.names}
        self.parameters = dict(model.named_parameters())

    # ---------------------------------------------------------------- weights
    def theta(self, name: str) -> NodeWeights:
        """Node ``name``'s own (unpadded) meta-initialisation."""
        b, row, slices = unpadded_slices(self.model, name)
        prefix = f"banks.banks.{b}.theta."
        return {key[len(prefix):]: parameter[(row, *slices[key[len(prefix):]])]
                for key, parameter in self.parameters.items() if key.startswith(prefix)}

    def slices(self, name: str) -> tuple[int, int, dict[str, tuple[slice, ...]]]:
        """The bank and row of node ``name`` and its own entries of each weight (:func:`unpadded_slices`)."""
        return unpadded_slices(self.model, name)

    def initial(self, name: str) -> NodeWeights:
        """The weights before the first step: theta, and what the algorithm adds (a conjugate learner's are theta)."""
        theta = self.theta(name)
        return theta if self.conjugate(name) else self.algorithm.initial(self, name, theta)

    def conjugate(self, name: str) -> bool:
        return self.learners[name].conjugate

    def adapted_names(self, name: str) -> list[str]:
        """The weights of node ``name`` that adapt, in the order of the bank's parameters."""
        return self.head_names(name) if self.conjugate(name) else self.algorithm.adapted_names(self, name)

    def head_names(self, name: str) -> list[str]:
        """The output layer's weights (what message passing corrects)."""
        return self.learners[name].head_names()

    def first_layer(self, name: str) -> str:
        return self.learners[name].first_layer(self.graph.subtask(name))

    def composed(self, name: str, weights: NodeWeights) -> NodeWeights:
        """The weights the node computes with (a conjugate learner's are its own)."""
        return weights if self.conjugate(name) else self.algorithm.composed(self, name, weights)

    # ----------------------------------------------------------------- steps
    def inner_step(self, name: str, weights: NodeWeights, loss: torch.Tensor, data: Data, observed: Data | None,
                   t: int, step: int, steps: int, create_graph: bool, factor: float = 1.0) -> NodeWeights:
        """One inner step of node ``name`` in task ``t``: for a conjugate learner its closed-form
        update at step 0 and nothing after; else the algorithm's step, ``factor`` times its size."""
        if self.conjugate(name):
            return self.learners[name].posterior(self, name, weights, data, observed, t) if step == 0 else weights
        return self.algorithm.inner_step(self, name, weights, loss, step, steps, create_graph,
                                         lambda current: self.fitted_head(name, current, data, observed, t), factor)

    def guarded(self, name: str) -> bool:
        """Whether node ``name`` keeps only the steps that do not raise its support loss: those that
        are gradient steps (not a conjugate learner's or a closed-form fit)."""
        return not self.conjugate(name) and not self.algorithm.fits(self, name)

    def fitted_head(self, name: str, weights: NodeWeights, data: Data, observed: Data | None,
                    t: int) -> NodeWeights:
        """The output layer fitted in closed form to the counting support shots (ALPaCA's)."""
        own, parents, shots = self.inputs(name, data, t)
        counting = self.counting_shots(name, data, observed, t, strict=True)
        features = self.head_input(name, weights, own, parents, shots)[counting]
        phi = torch.cat([features, features.new_ones(features.shape[0], 1)], dim=1)  # [K', D]
        y = _value(self.graph, name, data, t)[counting].to(phi.dtype)  # [K', O]
        return alpaca_head(self, name, weights, phi, y)

    # ------------------------------------------------------------------ loss
    def fills(self, observed: Data | None) -> bool:
        """Whether data with the masks ``observed`` are filled where a value is missing (module
        docstring): ``fill_missing`` where given, else whether a node that is not a conjugate learner
        is observed at a shot where a value its input reads is not."""
        if self.fill_missing is not None:
            return self.fill_missing
        if not observed:
            return False
        for name in self.graph.names:
            if self.conjugate(name) or not self.graph.subtask(name).observed:
                continue
            own = torch.as_tensor(observed[name], dtype=torch.bool) if name in observed else True
            for read in _read_nodes(self.graph, name):
                if read in observed and bool((own & ~torch.as_tensor(observed[read], dtype=torch.bool)).any()):
                    return True
        return False

    def counting_shots(self, name: str, data: Data, observed: Data | None, t: int, strict: bool = False
                       ) -> torch.Tensor:
        """``[K]`` bool: the shots of task ``t`` that count for node ``name`` (module docstring); with
        ``strict``, only those where every value its input reads is observed, as for a conjugate learner."""
        relaxed = not strict and not self.conjugate(name) and self.fills(observed)
        return _counting_shots(self.graph, name, data, observed, t, relaxed)

    def filled(self, weights: Mapping[str, NodeWeights], data: Data, observed: Data | None, t: int) -> Data:
        """``data`` with task ``t``'s values filled from ``weights`` (by node), parents before children:
        each latent node's, and where the data are filled (:meth:`fills`) each missing value of a node
        with children, its prediction (0 in the other tasks); ``data`` itself where nothing is filled."""
        fill = self.fills(observed)
        names = [name for name in self.graph.names  # graph.names is topological
                 if not self.graph.subtask(name).observed or (fill and self.graph.children(name))]
        if not names:
            return data
        labels = _unpack(data[_first_observed(self.graph)])[1]
        num_tasks, shots = labels.shape[:2]
        filled = dict(data)
        for name in names:
            spec = self.graph.subtask(name)
            x = data[name][0] if name in data else None  # (x, None): features without labels
            parents = [_value(self.graph, p, filled, t) for p in self.graph.parents(name)]
            prediction = self.forward(name, weights[name], self.own_inputs(name, x, t, shots), parents, shots)
            if spec.kind == "classification":
                prediction = prediction.softmax(-1)
            if not spec.observed:
                value = _in_task(prediction, t, num_tasks)
                filled[name] = FilledEntry(x, value, value)  # no labels: its loss counts no shot
                continue
            kept = (torch.as_tensor(observed[name][t], dtype=torch.bool) if observed and name in observed
                    else torch.ones(shots, dtype=torch.bool))
            value = torch.where(kept[:, None], _value(self.graph, name, data, t), prediction)
            filled[name] = FilledEntry(x, _unpack(data[name])[1], _in_task(value, t, num_tasks))
        return filled

    def task_losses(self, weights: Mapping[str, NodeWeights], data: Data, observed: Data | None,
                    t: int) -> dict[str, torch.Tensor]:
        """Every node's loss in task ``t`` on the data filled from ``weights`` (by node)."""
        filled = self.filled(weights, data, observed, t)
        return {name: self.loss(name, weights[name], filled, observed, t) for name in self.graph.names}

    def outputs(self, name: str, weights: NodeWeights, data: Data, t: int) -> torch.Tensor:
        """``[K, width]`` of task ``t`` with its parents' values teacher-forced from ``data``."""
        return self.forward(name, weights, *self.inputs(name, data, t))

    def inputs(self, name: str, data: Data, t: int) -> tuple[Any, list[torch.Tensor], int]:
        """Node ``name``'s own inputs in task ``t``, its parents' values (teacher-forced) and the shot count."""
        x, y = _unpack(data[name])
        shots = y.shape[1]
        return self.own_inputs(name, x, t, shots), [_value(self.graph, p, data, t) for p in self.graph.parents(name)], shots

    def own_inputs(self, name: str, x: Any, t: int, shots: int) -> Any:
        """Task ``t``'s own inputs of node ``name`` from ``x``: its ``K`` graphs (task-major) where its
        learner takes graphs, its features ``[K, in_dim]``, or ``None`` without features."""
        if isinstance(x, (list, tuple)):
            return x[t * shots: (t + 1) * shots]
        return torch.as_tensor(x[t]) if self.graph.subtask(name).in_dim else None

    def labels(self, name: str, data: Data) -> torch.Tensor:
        """Node ``name``'s values ``[T, K, ...]`` in ``data`` (class indices for classification)."""
        return _unpack(data[name])[1]

    def forward(self, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                shots: int) -> torch.Tensor:
        """``[K, width]``: regression outputs, logits, or a Table's log-probabilities, from the
        node's own inputs and its parents' values ``[K, width_p]`` (one-hot, or class probabilities
        where a parent is predicted)."""
        return self.learners[name].forward(self, name, self.composed(name, weights), own, parents, shots)

    def head_input(self, name: str, weights: NodeWeights, own: Any, parents: list[torch.Tensor],
                   shots: int) -> torch.Tensor:
        """``[K, D_h]``: what the output layer of node ``name`` reads."""
        return self.learners[name].head_input(self, name, weights, own, parents, shots)

    def loss(self, name: str, weights: NodeWeights, data: Data, observed: Data | None, t: int) -> torch.Tensor:
        """The node's mean loss over its counting shots (0 without one); each shot's is its learner's."""
        counting = self.counting_shots(name, data, observed, t)
        per_shot = self.learners[name].shot_losses(self, name, self.composed(name, weights),
                                                   *self.inputs(name, data, t), self.labels(name, data)[t])
        return (per_shot * counting.to(per_shot.dtype)).sum() / max(int(counting.sum()), 1)

    # ------------------------------------------------------------ task factor
    @property
    def factored(self) -> list[str]:
        """The nodes whose prior reads the task factor."""
        return [name for name in self.graph.names if getattr(self.graph.subtask(name).learner, "task_factors", 0)]

    def place_task(self, t: int, initial: dict[tuple[int, str], NodeWeights], plain: dict[tuple[int, str], NodeWeights],
                   data: Data, observed: Data | None) -> None:
        """Task ``t``'s factor ``u``: its posterior mean ``(I + sum H)^-1 sum g`` given every factored
        node's rows (each node's curvature ``H`` and slope ``g``, padded to the most factors); each
        such node's prior moved to ``m + A u`` in ``initial`` and its update redone from it in ``plain``."""
        size = max(self.graph.subtask(name).learner.task_factors for name in self.factored)
        precision = torch.eye(size, dtype=torch.float64)
        information = torch.zeros(size, dtype=torch.float64)
        for name in self.factored:
            curvature, slope = self.learners[name].factor_evidence(self, name, initial[t, name], data, observed, t)
            r = len(slope)
            precision = precision + torch.nn.functional.pad(curvature, (0, size - r, 0, size - r))
            information = information + torch.nn.functional.pad(slope, (0, size - r))
        factor = torch.linalg.solve(precision, information)
        for name in self.factored:
            initial[t, name] = self.learners[name].factor_moved(initial[t, name], factor)
            plain[t, name] = self.learners[name].posterior(self, name, initial[t, name], data, observed, t)

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
            shots = self.counting_shots(name, support, observed, t).sum().to(statistic.dtype)
            if constant:
                phi, theta, statistic = ({k: w.detach() for k, w in phi.items()},
                                         {k: w.detach() for k, w in theta.items()}, statistic.detach())
            adapted = self.adapted_names(name)
            deltas = {weight: self.padded(name, weight, phi[weight] - theta[weight]) for weight in adapted}
            sizes = [(d.pow(2).sum() / d.numel() + EPSILON).sqrt() for d in deltas.values()]
            head = torch.cat([deltas[weight] if weight in deltas else self.padded(name, weight, torch.zeros_like(theta[weight]))
                              for weight in self.head_names(name)])
            head_size = (head.pow(2).sum() / head.numel() + EPSILON).sqrt()
            node_statistics = torch.stack([statistic, shots])
            direction = head / head_size if bool((head != 0).any()) else torch.zeros_like(head)
            features = [direction, torch.stack(sizes).log(), node_statistics.sign() * node_statistics.abs().log1p()]
            if self.conjugate(name):
                statistics = self.learners[name].statistics(self, name, support, observed, t)
                features += [statistics / (shots + scale) for scale in COUNT_SCALES]
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
                weights.update(self.learners[name].corrected(self, name, initial[t, name], weights, weight, part,
                                                             support, observed, t))
                offset += math.prod(shape)
            corrected[t, name] = weights
        return corrected

    def padded_shape(self, name: str, weight: str) -> tuple[int, ...]:
        """The shape of one node's row of ``weight`` in its bank (a weight of the algorithm's own,
        such as a context, is its own shape)."""
        if weight not in self.theta(name):
            return tuple(self.initial(name)[weight].shape)
        b, _, _ = unpadded_slices(self.model, name)
        return tuple(self.parameters[f"banks.banks.{b}.theta.{weight}"].shape[1:])

    def padded(self, name: str, weight: str, own: torch.Tensor) -> torch.Tensor:
        """Node ``name``'s own part of ``weight`` in its padded row, zero elsewhere, flattened."""
        if weight not in self.theta(name):
            return own.flatten()
        _, _, slices = unpadded_slices(self.model, name)
        row = own.new_zeros(self.padded_shape(name, weight))
        row[slices[weight]] = own
        return row.flatten()


# ------------------------------------------------------------------------- helpers
def _linear(x: torch.Tensor, parameters: Mapping[str, torch.Tensor], prefix: str) -> torch.Tensor:
    """``x W^T + bias`` of the ``nn.Linear`` named ``prefix``."""
    return x @ parameters[f"{prefix}.weight"].T + parameters[f"{prefix}.bias"]


def _learner(graph: Any, name: str) -> Any:
    """The reference's definition of node ``name``'s learner type."""
    kind = graph.subtask(name).learner.type
    if kind not in REFERENCE_LEARNERS:
        raise NotImplementedError(f"the reference does not define learner {kind!r}: write its outputs (and its "
                                  "closed-form update, if any) in graphmeta/testing/reference_learners.py, from "
                                  "its definition, before testing the engine's")
    return REFERENCE_LEARNERS[kind]()


def _location(model: Any, name: str) -> tuple[int, int]:
    """Which bank holds node ``name``'s parameters, and in which row."""
    for b, bank in enumerate(model.banks):
        if name in bank.names:
            return b, bank.names.index(name)
    raise KeyError(f"no bank of the model holds node {name!r}")


def _num_tasks(graph: Any, data: Data) -> int:
    return int(_unpack(data[_first_observed(graph)])[1].shape[0])


def _first_observed(graph: Any) -> str:
    """The first node that has labels in the data (a latent one has none)."""
    return next(name for name in graph.names if graph.subtask(name).observed)


def _unpack(entry: Any) -> tuple[Any, torch.Tensor]:
    return (entry[0], torch.as_tensor(entry[1])) if isinstance(entry, (tuple, list)) else (None, torch.as_tensor(entry))


def _value(graph: Any, name: str, data: Data, t: int) -> torch.Tensor:
    """Node ``name``'s value in task ``t`` as its children read it: ``[K, width]``, one-hot for
    classification, or what filling gave it (:class:`FilledEntry`)."""
    if isinstance(data[name], FilledEntry):
        return data[name].value[t]
    _, y = _unpack(data[name])
    spec = graph.subtask(name)
    if spec.kind == "classification":
        return F.one_hot(y[t].long().clamp(min=0), spec.num_classes).double()
    return y[t].double()


def _in_task(value: torch.Tensor, t: int, num_tasks: int) -> torch.Tensor:
    """``value`` ``[K, width]`` of task ``t`` as ``[T, K, width]``, 0 in the other tasks."""
    return torch.stack([value if s == t else torch.zeros_like(value) for s in range(num_tasks)])


def _read_nodes(graph: Any, name: str) -> list[str]:
    """The observed nodes whose values node ``name``'s input reads: its observed parents, and a latent
    parent's, in turn."""
    read, frontier = [], list(graph.parents(name))
    while frontier:
        parent = frontier.pop()
        if graph.subtask(parent).observed:
            read.append(parent)
        else:
            frontier += graph.parents(parent)
    return read


def _counting_shots(graph: Any, name: str, data: Data, observed: Data | None, t: int,
                    relaxed: bool = False) -> torch.Tensor:
    """``[K]`` bool: the shots of task ``t`` where ``name`` and all the observed values its input reads
    (:func:`_read_nodes`) are observed (none for a latent node); ``relaxed``: where ``name`` is."""
    counting = torch.full((_unpack(data[_first_observed(graph)])[1].shape[1],), graph.subtask(name).observed)
    for node in [name] if relaxed else [name, *_read_nodes(graph, name)]:
        if observed is not None and node in observed:
            counting &= torch.as_tensor(observed[node][t], dtype=torch.bool)
    return counting
