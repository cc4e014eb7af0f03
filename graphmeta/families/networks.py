"""The pgmpy network behind a network family: one bundled with pgmpy (by name) or the user's own."""

from __future__ import annotations

import functools
from typing import Any

from ..errors import GraphError
from ..interop.pgmpy_bridge import load_bundled


def resolve_network(network: Any, model_type: type, family: str) -> tuple[str, Any]:
    """``(name, model)`` for a bundled network name or a pgmpy model of ``model_type``.

    Checks that every variable has a CPD. Bundled networks are parsed once per process and
    shared, read-only: families copy what they need out of them.
    """
    model = _bundled(network) if isinstance(network, str) else network
    if not isinstance(model, model_type):
        label = f"network {network!r}" if isinstance(network, str) else "the network"
        raise GraphError(f"the {family} family needs a pgmpy {model_type.__name__}, but {label} is a "
                         f"{type(model).__name__}")
    missing = [variable for variable in model.nodes() if model.get_cpds(variable) is None]
    if missing:
        raise GraphError(f"the network has no CPD for {', '.join(map(repr, missing))}: add them with "
                         "model.add_cpds(...) or fit the network on data (model.fit(df)) first")
    name = network if isinstance(network, str) else (getattr(model, "name", "") or "")
    return (name if isinstance(name, str) else ""), model


@functools.cache
def _bundled(name: str) -> Any:
    return load_bundled(name)
