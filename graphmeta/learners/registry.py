"""The learner registry (:data:`LEARNERS`): every learner type, registered once by its own module.

A learner type is a small frozen *spec* (what a node learner is: widths, activation,
prior), the *bank* that runs every node sharing one spec as a single batched module, the
kind of input it takes, and how a picture draws it. ``graphmeta/learners/mlp.py``,
``gnn.py`` and ``table.py`` each register one (:func:`register`); a new learner type is one
such module plus its bank in :mod:`graphmeta.learners.banks` (and its definition in the
reference). Nothing else in graphmeta compares learner-type names: it asks this registry.

The bank is named by its import path and imported on first use, so the specs (below the task
graph) never import the banks (above it, which build on the task graph themselves).
"""

from __future__ import annotations

import importlib
from dataclasses import Field, asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import GraphError, check_keys
from ..registry import Registry


class LearnerSpec:
    """Base class of the learner specs (frozen dataclasses). The checks below are the hooks a
    learner type uses to refuse a node it cannot serve; by default it serves every node."""

    if TYPE_CHECKING:  # every spec is a dataclass: ``@dataclass`` sets its fields on the subclass
        __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def check_subtask(self, subtask: Any) -> None:
        """Raise :class:`~graphmeta.GraphError` if this learner cannot serve ``subtask``."""

    def check_parent(self, child: str, parent: Any) -> None:
        """Raise :class:`~graphmeta.GraphError` if node ``child`` with this learner cannot read ``parent``."""

    @property
    def type(self) -> str:
        """The registered name of this spec's learner type (``"mlp"``, ``"gnn"``, ...)."""
        return learner_type(self).name


@dataclass(frozen=True)
class LearnerType:
    """One registered learner type.

    Args:
        name: how configs and ``add_subtask(learner=...)`` name it.
        spec: its spec class (a frozen dataclass subclassing :class:`LearnerSpec`).
        bank: ``"module:Class"`` of its bank, a :class:`~graphmeta.learners.banks.bank.LearnerBank`;
            a module starting with ``.`` is relative to :mod:`graphmeta.learners` (``".banks.mlp:MLPBank"``).
        takes_graphs: its node's own features arrive as graphs (PyG ``Data``), not as columns.
        marker, label: the matplotlib marker and legend label of its nodes in pictures.
    """

    name: str
    spec: type[LearnerSpec]
    bank: str
    takes_graphs: bool = False
    marker: str = "o"
    label: str = ""

    def bank_class(self) -> type:
        module, _, name = self.bank.partition(":")
        return getattr(importlib.import_module(module, __package__), name)


#: Every learner type by name, in registration order.
LEARNERS: Registry[LearnerType] = Registry("learner", error=GraphError)


def register(learner: LearnerType) -> LearnerType:
    """Add ``learner`` to :data:`LEARNERS` (a name or spec class registered twice is an error)."""
    if any(t.spec is learner.spec for t in LEARNERS.values()):
        raise GraphError(f"learner type {learner.name!r} is already registered (its spec {learner.spec.__name__})")
    return LEARNERS.register(learner)


def registered() -> list[LearnerType]:
    """Every registered learner type, in registration order."""
    return list(LEARNERS.values())


def learner_type(spec: LearnerSpec) -> LearnerType:
    """The registered type of ``spec``."""
    for learner in LEARNERS.values():
        if type(spec) is learner.spec:
            return learner
    raise GraphError(f"{type(spec).__name__} is not a registered learner type; register it with "
                     "graphmeta.learners.registry.register")


def learner_from(value: Any) -> LearnerSpec:
    """Turn a name (``"mlp"``), a spec object or a ``{"type": ..., ...}`` mapping into a spec."""
    if isinstance(value, LearnerSpec):
        learner_type(value)
        return value
    if isinstance(value, str):
        return LEARNERS.lookup(value).spec()
    if isinstance(value, dict):
        options = dict(value)
        name = options.pop("type", "mlp")
        spec_class = LEARNERS.lookup(name).spec
        check_keys(options, spec_class.__dataclass_fields__, f"{name} learner spec", GraphError)
        return spec_class(**options)
    raise GraphError(f"unknown learner {value!r}; pass one of {sorted(LEARNERS)} or a spec such as graphmeta.MLP(...)")


def learner_to_dict(spec: LearnerSpec) -> dict[str, Any]:
    """The inverse of :func:`learner_from` for mappings (YAML/JSON friendly)."""
    fields = {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(spec).items()}
    return {"type": learner_type(spec).name, **fields}
