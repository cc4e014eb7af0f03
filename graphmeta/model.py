"""`GraphMetaLearner`: task graph + learner banks + adaptation algorithm + message passing.

One meta-training step on a :class:`~graphmeta.data.TaskBatch` of T tasks:

1. the algorithm's initial fast weights (``theta`` for every (task, node)), then
   ``inner_steps`` batched steps ``phi <- phi - alpha * grad L_support(phi)`` (see
   :mod:`graphmeta.adapt.inner_loop` and :mod:`graphmeta.adapt.algorithms`);
2. where priors read a task factor, every factored node's prior moved to where the task's
   support rows place it (see :mod:`graphmeta.adapt.task_factor`); with message passing on,
   ``phi <- phi + g * MP(phi - theta)`` along the task graph (see :mod:`graphmeta.adapt.message_passing`);
3. the algorithm's meta-loss from the query loss of ``phi`` (observed parents teacher-forced,
   latent ones predicted level by level: :mod:`graphmeta.learners.banks.bank_set`),
   averaged over tasks and nodes (``loss_weighting``). Where a bank learns the noise scale of
   its regression outputs, the gradient of the Gaussian negative log-likelihood of the query
   residuals taken as data, averaged alike, joins it: it reaches the noise scales alone, so every
   other meta-gradient is the query loss's, and the meta-loss's value stays the query loss's
   (see :mod:`graphmeta.learners.banks.bank`).

Each (task, node) loss :math:`L_{tn}` is the mean over that task's own query rows
:math:`Q_{tn}` (the rows where the node and its parents are observed), so padding a batch of
tasks of different sizes weighs nothing. The meta-loss averages them over the pairs with a
query row, :math:`\\sum_{tn} w_{tn} L_{tn} / \\sum_{tn} w_{tn}`, weighted

* ``"task"`` (the default): :math:`w_{tn} = 1`; every task counts alike, however few its rows,
  which is what adapting to a new task is scored on;
* ``"row"``: :math:`w_{tn} = |Q_{tn}|`; every query row counts alike, the mean over all rows of
  the batch, so a large task weighs as much as its rows.

The model composes these three; it knows no algorithm and no learner type by name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Annotated, Any

import torch
from torch import nn

from .adapt.algorithms import ALGORITHMS, Adaptation, InnerLoopSettings, build_algorithm
from .adapt.inner_loop import inner_loop
from .adapt.input_shift import InputStatistics
from .adapt.message_passing import ParameterMessagePassing
from .adapt.task_factor import shared_task_factor, task_factor_size
from .adapted_graph import AdaptedGraph
from .allocator import reuse_large_allocations_once
from .data import Split, TaskBatch
from .errors import ConfigError, DataError
from .fused_meta_gradient import EngineCall, loss_and_meta_gradient, meta_loss_with_gradient
from .learners.banks.bank import Weights
from .learners.banks.bank_set import BankSet
from .learners.banks.low_rank import dense_weights
from .taskgraph import TaskGraph
from .taskgraph.comparison import graph_differences
from .validation import NonNegativeFloat, NonNegativeInt, OneOf, PositiveFloat, PositiveInt, checked

#: How the meta-loss weighs its (task, node) losses (module docstring).
LOSS_WEIGHTINGS = ("task", "row")
#: Keywords that were the model's and are now options of one algorithm.
MOVED_TO_ALGORITHM_OPTIONS = {
    key: f"it is an option of the {algorithm} algorithm now: pass algorithm_options={{{key!r}: ...}} "
         f"(model.algorithm_options.{key} in a run config)"
    for key, algorithm in (("context_dim", "cavia"), ("prior_components", "alpaca"))}


@checked(moved=MOVED_TO_ALGORITHM_OPTIONS)
class GraphMetaLearner(nn.Module):
    """A graph meta-learner for ``graph``.

    Args:
        graph: the task decomposition.
        algorithm: ``"maml"``, ``"fomaml"``, ``"metasgd"``, ``"anil"``, ``"reptile"``,
            ``"mamlpp"`` (MAML++), ``"cavia"`` or ``"alpaca"`` (see :mod:`graphmeta.adapt.algorithms`; Table
            learners always adapt by their closed-form update; not with Reptile).
        inner_steps: inner-loop steps during meta-training (``adapt`` may use more).
        inner_lr: the inner learning rate ``alpha`` (the initial value where it is learned).
        message_passing: pass adapted parameters along the graph; ``False`` is the
            independent-node ablation.
        learn_inner_lr: learn one rate per inner step (Meta-SGD and MAML++ always learn theirs).
        min_rate, max_rate: the range of every learned inner rate (``None``: no bound on that
            side); a step reads a learned rate clamped into it, whatever trains it.
        message_channels, message_rounds: width and depth of the message passing.
        algorithm_options: the options of the chosen algorithm alone, checked against its
            constructor (CAVIA's ``context_dim``, ALPaCA's ``prior_components``; see
            :mod:`graphmeta.adapt.algorithms`).
        loss_weighting: ``"task"`` (every task's mean query loss counts alike) or ``"row"`` (every
            query row counts alike): how the meta-loss weighs tasks of different sizes (module
            docstring). In a data-parallel run only ``"task"`` makes the mean of the shares' gradients
            the whole meta-batch's exactly (its shares hold as many tasks, not as many rows).
    """

    def __init__(self, graph: TaskGraph, algorithm: Annotated[str, OneOf(tuple(ALGORITHMS))] = "maml",
                 inner_steps: NonNegativeInt = 1, inner_lr: PositiveFloat = 0.01, message_passing: bool = True,
                 learn_inner_lr: bool = False, min_rate: NonNegativeFloat | None = 0.0,
                 max_rate: PositiveFloat | None = None, message_channels: PositiveInt = 32,
                 message_rounds: NonNegativeInt = 2, algorithm_options: Mapping[str, Any] | None = None,
                 loss_weighting: Annotated[str, OneOf(LOSS_WEIGHTINGS)] = "task") -> None:
        super().__init__()
        if min_rate is not None and max_rate is not None and min_rate > max_rate:
            raise ConfigError(f"GraphMetaLearner.min_rate ({min_rate}) is above max_rate ({max_rate}): learned "
                              "inner rates are clamped into [min_rate, max_rate]; give min_rate <= max_rate")
        self.graph = graph.validate()
        self.inner_steps = inner_steps
        self.loss_weighting = loss_weighting
        options = dict(algorithm_options or {})
        self.config = {"algorithm": algorithm, "inner_steps": inner_steps, "inner_lr": float(inner_lr),
                       "message_passing": bool(message_passing), "learn_inner_lr": bool(learn_inner_lr),
                       "min_rate": min_rate, "max_rate": max_rate,
                       "message_channels": message_channels, "message_rounds": message_rounds,
                       "algorithm_options": options, "loss_weighting": loss_weighting}
        self.banks = BankSet(graph)
        self.input_statistics = InputStatistics(graph)
        settings = InnerLoopSettings(float(inner_lr), inner_steps, bool(learn_inner_lr), min_rate, max_rate)
        self.algorithm = build_algorithm(algorithm, self.banks, settings, options)
        for bank, reading in zip(self.banks, self.banks.latent_readers):
            if reading and self.algorithm.solves(bank):
                raise ConfigError(f"subtask(s) {', '.join(map(repr, reading))} cannot adapt in closed form "
                                  f"({algorithm!r} with {type(bank).__name__}): a closed-form fit needs the node's "
                                  "own targets and observed inputs, and these are or read a latent subtask; use a "
                                  "gradient algorithm (e.g. 'maml') and a gradient learner (e.g. MLP) there")
        #: How many task factors the Linear priors share (:mod:`graphmeta.adapt.task_factor`; 0: none).
        self.task_factors = task_factor_size(self.banks)
        self.message_passing = None
        if message_passing:
            self.message_passing = ParameterMessagePassing(
                graph, self.banks, [self.algorithm.adapting_names(bank) for bank in self.banks],
                channels=message_channels, rounds=message_rounds)

    # ------------------------------------------------------------------ verbs
    def meta_loss(self, batch: TaskBatch, metrics: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The meta-training loss of ``batch`` and, with ``metrics``, per-node metrics (means over
        tasks, ``[N]``): ``loss_before`` / ``loss_after`` (query loss without / with adaptation)
        and ``accuracy_after`` (NaN for regression nodes). ``metrics=False`` skips the extra
        forward pass they cost and returns ``{}``. In training mode it also records the batch's
        inputs, against which :meth:`adapt` judges a task's (:mod:`graphmeta.adapt.input_shift`)."""
        self.check_graph(batch.graph)
        batch = self._on_device(batch)
        self._check_packing(batch.support)
        # decided here, on the host, so that a compiled engine branches on a constant
        batch = replace(batch, support=self.banks.resolved(batch.support), query=self.banks.resolved(batch.query))
        compiled = self.__dict__.get("_compiled", {})
        if "meta_gradient" in compiled and torch.is_grad_enabled():  # loss and meta-gradient in one call
            return meta_loss_with_gradient(self, compiled["meta_gradient"], batch, metrics)
        return self._engine("meta_loss")(batch, metrics)

    def compile(self, *args: Any, adapt: bool = True, **kwargs: Any) -> None:
        """Compile the engine with ``torch.compile(..., *args, **kwargs)`` (e.g. ``mode="reduce-overhead"``
        on CUDA): from the next call, :meth:`meta_loss` (so calling the module) and, with ``adapt``,
        :meth:`adapt` run it compiled, the inner loop in the form the compiler captures
        (:mod:`graphmeta.adapt.inner_loop`), with the same values and meta-gradients. With grad mode
        on, :meth:`meta_loss` takes the loss and its meta-gradient in one compiled call, and its
        backward hands the parameters that gradient (:mod:`graphmeta.fused_meta_gradient`, which
        says what that form gives up); without it, the loss alone. The checks of the data stay in
        Python. The first call of each shape compiles (seconds to minutes); a new support or batch
        size, or another number of adaptation steps, compiles once more (from the second size on,
        PyTorch compiles the sizes dynamically, so later ones reuse it). Each model's compiled code
        is its own (``isolate_recompiles=True`` unless given), so the models of one process (a tuning
        study's trials) neither share PyTorch's limit of recompiles nor look through each other's
        code. On the CPU, ``options={"cpp_wrapper": True}`` (inductor's C++ wrapper) takes less time
        per step and more to compile (``python benchmarks/compiled.py``). :meth:`eager` goes back."""
        kwargs.setdefault("isolate_recompiles", True)
        engines: dict[str, Callable[..., Any]] = {
            "meta_loss": self._meta_loss_engine,
            "meta_gradient": functools.partial(loss_and_meta_gradient, EngineCall(self))}
        if adapt:
            engines["adapted_weights"] = self._adapted_weights_engine
        self._compiled = {name: torch.compile(engine, *args, **kwargs) for name, engine in engines.items()}

    def eager(self) -> None:
        """Run eagerly again after :meth:`compile`."""
        self.__dict__.pop("_compiled", None)

    @property
    def is_compiled(self) -> bool:
        """Whether :meth:`meta_loss` runs compiled (:meth:`compile`)."""
        return "meta_loss" in self.__dict__.get("_compiled", {})

    def _engine(self, name: str) -> Callable[..., Any]:
        """The engine ``name`` (``"meta_loss"`` or ``"adapted_weights"``): compiled after :meth:`compile`."""
        compiled = self.__dict__.get("_compiled", {})
        return compiled[name] if name in compiled else getattr(self, f"_{name}_engine")

    def _meta_loss_engine(self, batch: TaskBatch, metrics: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`meta_loss` on a checked ``batch`` on the model's device."""
        if self.training:  # what adaptation will be judged against (graphmeta.adapt.input_shift)
            self.input_statistics.update(batch.support, batch.query)
        return self._meta_loss_of(batch, metrics)

    def _meta_loss_of(self, batch: TaskBatch, metrics: bool) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """:meth:`_meta_loss_engine` less the update of the input statistics: a function of the
        parameters and ``batch`` that mutates nothing."""
        second_order = self.algorithm.second_order and self.training
        adaptation = self._adapt(batch.support, self.inner_steps, create_graph=second_order,
                                 track_meta_gradient=True)
        query_after, accuracy_after, noise = self.banks.query_losses(self._composed(adaptation.final), batch.query,
                                                                     accuracy=metrics)
        query_rows = self.banks.example_mask(batch.query).sum(-1).to(query_after.dtype)
        weight = query_rows if self.loss_weighting == "row" else (query_rows > 0).to(query_after.dtype)

        def query_loss_of(fast: Sequence[Weights]) -> torch.Tensor:
            return _mean(self.banks.losses(self._composed(fast), batch.query)[0], weight)

        loss = self.algorithm.outer_loss(_mean(query_after, weight), adaptation, query_loss_of)
        if noise is not None:  # its gradient alone joins: it reaches the noise scales (module docstring)
            noise_loss = _mean(noise, weight)
            loss = loss + (noise_loss - noise_loss.detach())
        if not metrics:
            return loss, {}
        with torch.no_grad():
            query_before, _ = self.banks.losses(self._composed(adaptation.initial), batch.query)
        scored = (query_rows > 0).to(query_after.dtype)
        assert accuracy_after is not None  # asked for with metrics
        return loss, {
            "loss_before": _task_mean(query_before, scored),
            "loss_after": _task_mean(query_after.detach(), scored),
            "accuracy_after": _task_mean(accuracy_after, scored),
        }

    def forward(self, batch: TaskBatch, metrics: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Calling the module is :meth:`meta_loss` (so ``torch.func.functional_call`` works)."""
        return self.meta_loss(batch, metrics)

    @checked(where="GraphMetaLearner.adapt")
    def adapt(self, support: TaskBatch | Split | Mapping[str, Any], steps: NonNegativeInt | None = None
              ) -> AdaptedGraph:
        """Adapt every node to ``support`` (a TaskBatch, a Split, or one task's ``{node: (x, y)}``).

        ``steps`` overrides ``inner_steps``: the standard protocol evaluates with more steps
        than it trains with. Learned rates (Meta-SGD, MAML++, ``learn_inner_lr``) then take the
        trained steps as trained and the last trained rate times ``inner_steps / steps`` after
        them (:func:`~graphmeta.adapt.algorithms.base.trained_step`); a fixed ``inner_lr`` is
        taken at every step. No step raises a (task, node)'s support loss
        (:mod:`graphmeta.adapt.support_guard`).

        Warns (:class:`~graphmeta.DistributionShiftWarning`, once, naming the nodes and tasks) where
        the support inputs lie more than 4 training standard deviations from what meta-training
        saw (:mod:`graphmeta.adapt.input_shift`).
        """
        split = self._support_split(support)
        self.input_statistics.warn_if_shifted(split, stacklevel=3)
        steps = self.inner_steps if steps is None else steps
        return AdaptedGraph(self.graph, self.banks, self._engine("adapted_weights")(split, steps))

    def _adapted_weights_engine(self, support: Split, steps: int) -> list[dict[str, torch.Tensor]]:
        """The dense weights every bank computes with after adapting to a checked ``support``."""
        adaptation = self._adapt(support, steps, create_graph=False, track_meta_gradient=False)
        return [{name: w.detach() for name, w in dense_weights(weights).items()}
                for weights in self._composed(adaptation.final)]

    def fit_from_scratch(self, support: TaskBatch | Split | Mapping[str, Any], steps: int = 100,
                         lr: float = 0.01, seed: int = 0) -> AdaptedGraph:
        """Baseline: freshly initialised learners (not the meta-init) trained on the support set
        alone with Adam for ``steps`` steps. Uses no meta-learned state."""
        return next(self.scratch_fits(support, lr, (steps,), seed))[1]

    def scratch_fits(self, support: TaskBatch | Split | Mapping[str, Any], lr: float,
                          checkpoints: Iterable[int], seed: int = 0, batch_rows: int | None = None
                          ) -> Iterator[tuple[int, AdaptedGraph]]:
        """:meth:`fit_from_scratch` seen along the way: fresh learners (initialised from ``seed``)
        trained with Adam at ``lr``, each task on its own support rows, all of them every step or
        ``batch_rows`` of them drawn anew (shared by the tasks); yields ``(steps, adapted)`` at each
        of the increasing ``checkpoints``. Stop iterating to stop training."""
        split = self._support_split(support)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            fresh = BankSet(self.graph).to(device=split.values.device, dtype=split.values.dtype)
        fast = [{name: w.detach().clone().requires_grad_() for name, w in weights.items()}
                for weights in fresh.expand(split.num_tasks)]
        optimizer = torch.optim.Adam([w for weights in fast for w in weights.values()], lr=lr)
        generator = torch.Generator().manual_seed(seed)
        done = 0
        for checkpoint in checkpoints:
            for _ in range(checkpoint - done):
                rows = split if batch_rows is None else _random_rows(split, batch_rows, generator)
                with torch.enable_grad():
                    optimizer.zero_grad()
                    fresh.losses(list(fast), rows)[0].sum().backward()
                    optimizer.step()
            done = checkpoint
            yield checkpoint, AdaptedGraph(self.graph, fresh, [{name: w.detach().clone() for name, w in weights.items()}
                                                               for weights in fast])

    def check_graph(self, graph: TaskGraph) -> None:
        """A :class:`~graphmeta.DataError` naming the nodes and edges in which ``graph`` (of a
        batch or a task family) differs from the model's; nothing when they are the same."""
        if graph is self.graph or graph == self.graph:
            return
        differences = graph_differences(self.graph.to_dict(), graph.to_dict(), "the model", "the data")
        if not differences:  # the same decomposition under another graph name
            return
        raise DataError(f"the data belong to another task graph than the model's ({'; '.join(differences)}): "
                        "build the model for the family's graph, GraphMetaLearner(family.graph, ...)")

    def reset_parameters(self) -> None:
        for module in (*self.banks, self.algorithm, self.message_passing):
            if module is not None and hasattr(module, "reset_parameters"):
                module.reset_parameters()

    def extra_repr(self) -> str:
        return f"graph={self.graph!r}, " + ", ".join(f"{k}={v!r}" for k, v in self.config.items())

    # ---------------------------------------------------------------- engine
    def _adapt(self, support: Split, steps: int, create_graph: bool, track_meta_gradient: bool) -> Adaptation:
        """The inner loop, then the task factor, then message passing. Where theta takes its
        meta-gradient from the algorithm's own rule (Reptile) or none is tracked, message passing
        reads the updates and statistics as constants. Meta-training (a model in training mode,
        meta-gradient tracked) takes the last inner step unreviewed by the support guard
        (:mod:`graphmeta.adapt.inner_loop`)."""
        if support.values.device.type == "cpu" and not torch.compiler.is_compiling():
            reuse_large_allocations_once()
        initial = [self.algorithm.initial(b, bank, support.num_tasks) for b, bank in enumerate(self.banks)]
        plain, support_loss, every_step = inner_loop(
            self.banks, self.algorithm, initial, support, steps, create_graph, track_meta_gradient,
            keep_steps=self.algorithm.uses_every_step and track_meta_gradient,
            review_last_step=not (self.training and track_meta_gradient))
        start = initial
        if self.task_factors and support_loss is not None:  # the priors move with the task (None: zero steps)
            start, plain, _ = shared_task_factor(self.banks, initial, plain)
            if every_step:
                every_step[-1] = plain
        final = plain
        if self.message_passing is not None and support_loss is not None:  # None for zero steps
            constant = not (self.algorithm.query_trains_theta and track_meta_gradient)
            shots = self.banks.example_mask(support).sum(-1).to(support_loss.dtype)
            statistics = torch.stack([support_loss, shots], dim=-1)
            base = plain
            if constant:  # theta learns by the algorithm's own rule: messages read constants, theta included
                start = [{name: w.detach() for name, w in weights.items()} for weights in start]
                base = [{name: w.detach() for name, w in weights.items()} for weights in plain]
                statistics = statistics.detach()
            final = self.message_passing(start, base, statistics)
            if every_step:
                every_step[-1] = final
        return Adaptation(initial, every_step, plain, final, support_loss)

    def _composed(self, fast: Sequence[Weights]) -> list[Weights]:
        return [self.algorithm.compose(b, weights) for b, weights in enumerate(fast)]

    def _check_packing(self, split: Split) -> None:
        """A split packed for another graph would index out of range deep in a bank: name it here."""
        width = self.banks[0].layout.value_width
        if split.observed.shape[-1] != len(self.graph.names) or split.values.shape[-1] != width:
            raise DataError(f"the data were packed for another task graph ({split.observed.shape[-1]} nodes, "
                            f"{split.values.shape[-1]} value columns) than this model's {self.graph!r} "
                            f"({len(self.graph)} nodes, {width} value columns): build the batch with the "
                            "model's graph")

    def _support_split(self, support: TaskBatch | Split | Mapping[str, Any]) -> Split:
        if isinstance(support, TaskBatch):
            self.check_graph(support.graph)
            support = support.support
        elif isinstance(support, Mapping):
            support = TaskBatch.from_tensors(self.graph, support, support).support
        if not isinstance(support, Split):
            raise DataError(f"support must be a TaskBatch, a Split or a {{node: (x, y)}} mapping, "
                            f"got {type(support).__name__}")
        split: Split = self._on_device(support)
        self._check_packing(split)
        return self.banks.resolved(split)

    def _on_device(self, data: Any) -> Any:
        parameter = next(self.parameters())
        return data.to(device=parameter.device, dtype=parameter.dtype)


def _random_rows(split: Split, count: int, generator: torch.Generator) -> Split:
    """``count`` rows of ``split`` drawn without replacement (all of them when it has no more); rows
    drawn this way carry no graph inputs (tables)."""
    if split.shots <= count:
        return split
    index = torch.randperm(split.shots, generator=generator)[:count].to(split.values.device)
    return Split(split.features[:, index], split.values[:, index], split.observed[:, index])


def _mean(losses: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The weighted mean :math:`\\sum w L / \\sum w` of ``losses [T, N]``; ``weight [T, N]`` is 0 for a
    pair without query examples, else 1 or its query rows (``loss_weighting``, module docstring)."""
    return (losses * weight).sum() / weight.sum().clamp(min=1)


def _task_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over tasks of ``values [T, N]`` where ``weight`` is set; NaN where a node has none
    (or where ``values`` is NaN throughout, as accuracy is for regression nodes)."""
    total = (torch.nan_to_num(values) * weight).sum(0)
    count = (weight * ~values.isnan()).sum(0)
    mean = total / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.full_like(mean, float("nan"))).detach()
