"""`GraphMetaLearner`: task graph + learner banks + adaptation algorithm + message passing.

One meta-training step on a :class:`~graphmeta.data.TaskBatch` of T tasks:

1. ``phi = theta`` for every (task, node), then ``inner_steps`` batched steps
   ``phi <- phi - alpha * grad L_support(phi)`` (see :mod:`graphmeta.adapt.inner_loop`);
2. with message passing on, ``phi <- phi + g * MP(phi - theta)`` along the task graph
   (see :mod:`graphmeta.adapt.message_passing`);
3. the meta-loss is the query loss of ``phi`` (parents teacher-forced), averaged over tasks
   and nodes; for Reptile it is ``1/2 ||theta - phi||^2`` averaged over tasks.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .adapt.algorithms import algorithm_named
from .adapt.inner_loop import inner_loop
from .adapt.message_passing import ParameterMessagePassing
from .adapted import AdaptedGraph
from .data import Split, TaskBatch
from .errors import ConfigError, DataError, check_keys
from .graph import TaskGraph
from .learners.bank import Weights
from .learners.bank_set import BankSet

OPTIONS = {"learn_inner_lr": False, "message_channels": 32, "message_rounds": 2}


class GraphMetaLearner(nn.Module):
    """A graph meta-learner for ``graph``.

    Args:
        graph: the task decomposition.
        algorithm: ``"maml"``, ``"fomaml"``, ``"metasgd"``, ``"anil"`` or ``"reptile"``
            (Table learners always adapt by their closed-form update; not with Reptile).
        inner_steps: inner-loop steps during meta-training (``adapt`` may use more).
        inner_lr: the inner learning rate ``alpha`` (Meta-SGD's initial per-parameter rate).
        message_passing: pass adapted parameters along the graph; ``False`` is the
            independent-node ablation.
        learn_inner_lr: learn one rate per inner step (ignored by Meta-SGD, which learns
            one per parameter).
        message_channels, message_rounds: width and depth of the message passing.
    """

    def __init__(self, graph: TaskGraph, algorithm: str = "maml", inner_steps: int = 1, inner_lr: float = 0.01,
                 message_passing: bool = True, **options: Any) -> None:
        super().__init__()
        check_keys(options, OPTIONS, "GraphMetaLearner options")
        options = {**OPTIONS, **options}
        if not isinstance(inner_steps, int) or inner_steps < 0:
            raise ConfigError(f"inner_steps must be an integer >= 0, got {inner_steps!r}")
        if not isinstance(inner_lr, (int, float)) or inner_lr <= 0:
            raise ConfigError(f"inner_lr must be a positive number, got {inner_lr!r}")
        self.graph = graph.validate()
        self.algorithm = algorithm_named(algorithm)
        self.inner_steps = inner_steps
        self.config = {"algorithm": algorithm, "inner_steps": inner_steps, "inner_lr": float(inner_lr),
                       "message_passing": bool(message_passing), **options}
        self.banks = BankSet(graph)
        if self.algorithm.reptile and any(bank.conjugate for bank in self.banks):
            raise ConfigError("reptile pulls theta towards the adapted weights, but Table learners adapt in closed "
                              "form and learn their prior from the query loss: use maml, fomaml, metasgd or anil")
        self.adaptable = [tuple(self.algorithm.adapt_body or i >= len(bank.theta) - bank.head_size
                                for i in range(len(bank.theta))) for bank in self.banks]
        if self.algorithm.per_parameter_lr:
            self.inner_lrs = nn.ParameterList(nn.Parameter(torch.full_like(p, float(inner_lr)))
                                              for bank in self.banks if not bank.conjugate for p in bank.theta)
        elif options["learn_inner_lr"]:
            self.inner_lrs = nn.Parameter(torch.full((max(inner_steps, 1),), float(inner_lr)))
        else:
            self.register_buffer("inner_lrs", torch.full((max(inner_steps, 1),), float(inner_lr)))
        self.message_passing = None
        if message_passing:
            self.message_passing = ParameterMessagePassing(
                graph,
                head_sizes=[sum(p[0].numel() for p in bank.theta[-bank.head_size:]) for bank in self.banks],
                head_tensors=[bank.head_size for bank in self.banks],
                tensor_counts=[sum(flags) for flags in self.adaptable],
                bank_nodes=[bank.node_index for bank in self.banks],
                channels=options["message_channels"], rounds=options["message_rounds"])

    # ------------------------------------------------------------------ verbs
    def meta_loss(self, batch: TaskBatch, metrics: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The meta-training loss of ``batch`` and, with ``metrics``, per-node metrics (means over
        tasks, ``[N]``): ``loss_before`` / ``loss_after`` (query loss without / with adaptation)
        and ``accuracy_after`` (NaN for regression nodes). ``metrics=False`` skips the extra
        forward pass they cost and returns ``{}``."""
        batch = self._on_device(batch)
        second_order = self.algorithm.second_order and self.training
        fast, plain, _ = self._adapt(batch.support, self.inner_steps, create_graph=second_order,
                                     track_meta_gradient=True, detach_updates=self.algorithm.reptile)
        query_after, accuracy_after = self.banks.losses(fast, batch.query, accuracy=metrics)
        weight = self.banks.example_mask(batch.query).any(-1).to(query_after.dtype)
        loss = (query_after * weight).sum() / weight.sum().clamp(min=1)
        if self.algorithm.reptile:
            loss = self._reptile_loss(plain, batch.num_tasks) + (loss if self.message_passing is not None else 0)
        if not metrics:
            return loss, {}
        with torch.no_grad():
            query_before, _ = self.banks.losses(self.banks.expand(batch.num_tasks), batch.query)
        return loss, {
            "loss_before": _task_mean(query_before, weight),
            "loss_after": _task_mean(query_after.detach(), weight),
            "accuracy_after": _task_mean(accuracy_after, weight),
        }

    def forward(self, batch: TaskBatch, metrics: bool = True) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Calling the module is :meth:`meta_loss` (so ``torch.func.functional_call`` works)."""
        return self.meta_loss(batch, metrics)

    def adapt(self, support: TaskBatch | Split | Mapping[str, Any], steps: int | None = None) -> AdaptedGraph:
        """Adapt every node to ``support`` (a TaskBatch, a Split, or one task's ``{node: (x, y)}``).

        ``steps`` overrides ``inner_steps``: the standard protocol evaluates with more steps
        than it trains with. Steps beyond the learned per-step rates reuse the last rate.
        """
        split = self._support_split(support)
        steps = self.inner_steps if steps is None else steps
        fast, _, _ = self._adapt(split, steps, create_graph=False, track_meta_gradient=False)
        return AdaptedGraph(self, [tuple(w.detach() for w in weights) for weights in fast])

    def fit_from_scratch(self, support: TaskBatch | Split | Mapping[str, Any], steps: int = 100,
                         lr: float = 0.01, seed: int = 0) -> AdaptedGraph:
        """Baseline: freshly initialised learners (not the meta-init) trained on the support set
        alone with Adam for ``steps`` steps. Uses no meta-learned state."""
        split = self._support_split(support)
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        fresh = BankSet(self.graph).to(device=split.values.device, dtype=split.values.dtype)
        torch.random.set_rng_state(generator_state)
        fast = [tuple(w.detach().clone().requires_grad_() for w in weights)
                for weights in fresh.expand(split.num_tasks)]
        optimizer = torch.optim.Adam([w for weights in fast for w in weights], lr=lr)
        with torch.enable_grad():
            for _ in range(steps):
                optimizer.zero_grad()
                fresh.losses(fast, split)[0].sum().backward()
                optimizer.step()
        return AdaptedGraph(self, [tuple(w.detach() for w in weights) for weights in fast], banks=fresh)

    def reset_parameters(self) -> None:
        for bank in self.banks:
            bank.reset_parameters()
        if self.message_passing is not None:
            self.message_passing.reset_parameters()

    def extra_repr(self) -> str:
        return f"graph={self.graph!r}, " + ", ".join(f"{k}={v!r}" for k, v in self.config.items())

    # ---------------------------------------------------------------- engine
    def _adapt(self, support: Split, steps: int, create_graph: bool, track_meta_gradient: bool,
               detach_updates: bool = False) -> tuple[list[Weights], list[Weights], torch.Tensor | None]:
        """``(fast, plain, support_before)``: the weights after the inner loop and message
        passing, the weights after the inner loop alone, and the support loss ``[T, N]`` before.

        ``detach_updates`` lets only the message-passing parameters see the gradient of the
        corrected weights (Reptile's theta gets its own meta-gradient from ``plain``).
        """
        theta = self.banks.expand(support.num_tasks)
        plain, support_before = inner_loop(self.banks, theta, support, self._learning_rates(steps),
                                           self.adaptable, create_graph, track_meta_gradient)
        if self.message_passing is None or steps == 0:
            return plain, plain, support_before
        detach = detach_updates or not track_meta_gradient
        base = [tuple(w.detach() for w in weights) for weights in plain] if detach else plain
        fast = self._pass_messages(theta, base, support, support_before, detach=detach)
        return fast, plain, support_before

    def _pass_messages(self, theta: list[Weights], fast: list[Weights], support: Split,
                       support_before: torch.Tensor, detach: bool) -> list[Weights]:
        """``fast`` with the message-passing correction added to every head; with ``detach``,
        the updates and statistics it reads are constants."""
        shots = self.banks.example_mask(support).sum(-1).to(support_before.dtype)
        statistics = torch.stack([support_before, shots], dim=-1)
        deltas = [[f - t for f, t, a in zip(fast_b, theta_b, flags) if a]
                  for fast_b, theta_b, flags in zip(fast, theta, self.adaptable)]
        if detach:
            deltas = [[d.detach() for d in bank_deltas] for bank_deltas in deltas]
            statistics = statistics.detach()
        corrections = self.message_passing(deltas, statistics)
        corrected = []
        for bank, weights, correction in zip(self.banks, fast, corrections):
            head = weights[-bank.head_size:]
            sizes = [w[0, 0].numel() for w in head]
            head = tuple(w + c.reshape(w.shape) for w, c in zip(head, correction.split(sizes, dim=-1)))
            corrected.append(weights[:-bank.head_size] + head)
        return corrected

    def _learning_rates(self, steps: int) -> list[list[Any]]:
        if self.algorithm.per_parameter_lr:
            rates, start = [], 0
            for bank in self.banks:
                count = 0 if bank.conjugate else len(bank.theta)
                rates.append(tuple(self.inner_lrs[start:start + count]))
                start += count
            return [rates] * steps
        last = len(self.inner_lrs) - 1
        rates = self.inner_lrs if self.inner_lrs.requires_grad else self.inner_lrs.tolist()
        return [[rates[min(step, last)]] * len(self.banks) for step in range(steps)]

    def _reptile_loss(self, plain: list[Weights], num_tasks: int) -> torch.Tensor:
        """``1/2 sum_t ||theta - phi_t||^2 / T``: its theta-gradient is Reptile's meta-step."""
        return sum(0.5 * (theta - phi.detach()).pow(2).sum() / num_tasks
                   for bank, plain_b in zip(self.banks, plain) for theta, phi in zip(bank.theta, plain_b))

    def _support_split(self, support: TaskBatch | Split | Mapping[str, Any]) -> Split:
        if isinstance(support, TaskBatch):
            support = support.support
        elif isinstance(support, Mapping):
            support = TaskBatch.from_tensors(self.graph, support, support).support
        if not isinstance(support, Split):
            raise DataError(f"support must be a TaskBatch, a Split or a {{node: (x, y)}} mapping, "
                            f"got {type(support).__name__}")
        return self._on_device(support)

    def _on_device(self, data: Any) -> Any:
        parameter = next(self.parameters())
        return data.to(device=parameter.device, dtype=parameter.dtype)


def _task_mean(values: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean over tasks of ``values [T, N]`` where ``weight`` is set; NaN where a node has none
    (or where ``values`` is NaN throughout, as accuracy is for regression nodes)."""
    total = (torch.nan_to_num(values) * weight).sum(0)
    count = (weight * ~values.isnan()).sum(0)
    mean = total / count.clamp(min=1)
    return torch.where(count > 0, mean, torch.full_like(mean, float("nan"))).detach()
