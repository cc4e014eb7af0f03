"""`BankSet`: a graph's nodes grouped into banks: one bank per distinct learner spec, or several
where the spec's bank class splits its nodes (``partition(graph, names) -> [names, ...]``, as
:meth:`~graphmeta.learners.banks.table.TableBank.partition` does by table size)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

import torch
from torch import nn

from ...data import Split
from ...taskgraph import TaskGraph
from .bank import GradientTaps, LearnerBank, Weights
from ..registry import LearnerSpec, learner_type


class BankSet(nn.Module):
    """All banks of a graph. Fast weights are a list with one :data:`Weights` mapping per bank.

    Per-node results of the banks are concatenated in bank order and put back into
    ``graph.names`` order with one fixed permutation, so no step loops over nodes.
    """

    def __init__(self, graph: TaskGraph) -> None:
        groups: dict[LearnerSpec, list[str]] = {}
        for name in graph.names:
            groups.setdefault(graph.subtask(name).learner, []).append(name)
        super().__init__()
        banks = []
        for spec, names in groups.items():
            bank_class = learner_type(spec).bank_class()
            partition = getattr(bank_class, "partition", None)
            banks += [bank_class(graph, part, spec) for part in (partition(graph, names) if partition else [names])]
        self.banks = nn.ModuleList(banks)
        bank_order = torch.cat([bank.node_index for bank in self])
        self.register_buffer("to_graph_order", torch.argsort(bank_order), persistent=False)
        self.in_graph_order = bool((bank_order == torch.arange(len(bank_order))).all())

    def __iter__(self) -> Iterator[LearnerBank]:
        return iter(self.banks)

    def __len__(self) -> int:
        return len(self.banks)

    def __getitem__(self, index: int) -> LearnerBank:
        return self.banks[index]

    def expand(self, num_tasks: int) -> list[Weights]:
        """The meta-initialisation of every bank as fast weights ``[T, N_b, ...]``."""
        return [bank.expand(num_tasks) for bank in self]

    def losses(self, fast: list[Weights], split: Split, accuracy: bool = False
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per (task, node) loss and, with ``accuracy``, accuracy: ``[T, N]`` in ``graph.names`` order."""
        results = [bank.losses(weights, split, accuracy=accuracy) for bank, weights in zip(self, fast)]
        loss = self._graph_order([r[0] for r in results])
        return loss, (self._graph_order([r[1] for r in results]) if accuracy else None)

    def support_losses(self, fast: list[Weights], split: Split, names: list[Sequence[str]]
                       ) -> tuple[torch.Tensor, list[GradientTaps]]:
        """Per (task, node) loss ``[T, N]`` in ``graph.names`` order and, per bank, where one
        ``autograd.grad`` finds the gradients of its weights ``names[b]``."""
        results = [bank.support_loss(weights, split, bank_names)
                   for bank, weights, bank_names in zip(self, fast, names)]
        return self._graph_order([r[0] for r in results]), [r[1] for r in results]

    def example_mask(self, split: Split) -> torch.Tensor:
        """``[T, N, K]``: which shots count for each node (value and parents observed)."""
        return self._graph_order([bank.example_mask(split) for bank in self])

    def _graph_order(self, per_bank: list[torch.Tensor]) -> torch.Tensor:
        if len(per_bank) == 1 and self.in_graph_order:
            return per_bank[0]
        return torch.cat(per_bank, dim=1)[:, self.to_graph_order]


def bank_shapes(model_state: Mapping[str, torch.Tensor]) -> list[tuple[int, ...]]:
    """Per learner bank of a :class:`~graphmeta.GraphMetaLearner` state dict, in bank order, the
    shape ``[N_b, ...]`` of its first weight: how the model packs its nodes into banks (a
    checkpoint of another packing, e.g. from a version that grouped nodes otherwise, cannot load)."""
    shapes: dict[int, tuple[int, ...]] = {}
    for key, value in model_state.items():
        if key.startswith("banks.banks."):
            shapes.setdefault(int(key.split(".")[2]), tuple(value.shape))
    return [shapes[b] for b in sorted(shapes)]
