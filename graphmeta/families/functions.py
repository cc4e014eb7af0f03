"""`FunctionsFamily`: two elementary functions of one input, combined by a sink (after Alet et al., 2018)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, ClassVar

import numpy as np

from ..data import Split
from ..errors import ConfigError
from ..taskgraph import TaskGraph
from ..validation import MinLen, NonNegativeFloat, NonNegativeInt, OneOf, Ordered, checked
from .base import FAMILIES, TaskFamily, observed_split
from .compositional import LATENT_NODES

Ranges = dict[str, tuple[float, float]]
Elementary = Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]

#: The elementary functions a hidden node draws from: the uniform range of each parameter, and
#: ``f(x, params)`` with the parameters broadcast over the examples.
ELEMENTARY: dict[str, tuple[Ranges, Elementary]] = {
    "sine": ({"amplitude": (0.5, 2.0), "phase": (0.0, 2 * math.pi)},
             lambda x, p: p["amplitude"] * np.sin(x + p["phase"])),
    "line": ({"slope": (-1.0, 1.0), "intercept": (-1.0, 1.0)},
             lambda x, p: p["slope"] * x + p["intercept"]),
    "quadratic": ({"a": (-0.3, 0.3), "b": (-0.5, 0.5), "c": (-1.0, 1.0)},
                  lambda x, p: p["a"] * x**2 + p["b"] * x + p["c"]),
    "abs": ({"slope": (-1.0, 1.0), "intercept": (-1.0, 1.0)},
            lambda x, p: p["slope"] * np.abs(x) + p["intercept"]),
}
#: How the sink combines the two hidden values (the last axis, of size 2).
COMBINATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sum": lambda hidden: hidden.sum(-1),
    "product": lambda hidden: hidden.prod(-1),
}
#: The two hidden nodes, each an elementary function of ``x``, and the sink that combines them.
HIDDEN = ("f1", "f2")
OUTPUT = "y"

ElementaryName = Annotated[str, OneOf(tuple(ELEMENTARY))]
CombinationName = Annotated[str, OneOf(tuple(COMBINATIONS))]


@FAMILIES.register
@checked
class FunctionsFamily(TaskFamily):
    r"""Two regression nodes ``f1``, ``f2`` (``in_dim = 1``, both reading the same input ``x``) and a
    sink ``y`` (``in_dim = 0``) whose input is their two values: ``f1 -> y <- f2``.

    Task ``t`` draws, for each hidden node :math:`i \in \{1, 2\}` independently, an elementary
    function :math:`k_{t,i}` uniformly from ``functions`` and its parameters :math:`\theta_{t,i}`
    uniformly from the ranges below, and a combination :math:`g_t` uniformly from ``combinations``:

    .. math::
        x \sim U[x_0, x_1], \qquad
        y_i = f_{k_{t,i}}(x; \theta_{t,i}) + \tau \varepsilon_i, \qquad
        y = g_t(y_1, y_2) + \tau \varepsilon, \qquad \varepsilon_i, \varepsilon \sim N(0, 1)

        g_{\text{sum}}(y_1, y_2) = y_1 + y_2, \qquad g_{\text{product}}(y_1, y_2) = y_1 y_2

    ===========  ==================================  =========================================================
    function     :math:`f(x; \theta)`                 parameters
    ===========  ==================================  =========================================================
    sine         :math:`A \sin(x + \varphi)`          amplitude A ~ U[0.5, 2], phase ~ U[0, 2 pi]
    line         :math:`a x + b`                      slope, intercept ~ U[-1, 1]
    quadratic    :math:`a x^2 + b x + c`              a ~ U[-0.3, 0.3], b ~ U[-0.5, 0.5], c ~ U[-1, 1]
    abs          :math:`a |x| + b`                    slope, intercept ~ U[-1, 1]
    ===========  ==================================  =========================================================

    A child reads its parents' noisy values, as in :class:`CompositionalFamily`. After the function
    experiments of modular meta-learning (Alet, Lozano-Pérez and Kaelbling, CoRL 2018), where a
    task is a fixed composition of modules such as :math:`h(x) = f_i(x) + f_j(x)`; here the
    composition is the task graph, and the functions and ranges are graphmeta's own, chosen so
    that every hidden value stays within a few units for ``x`` in ``[-3, 3]``.

    **Latent nodes.** With ``latent_nodes="non-sinks"`` the hidden nodes ``f1`` and ``f2`` are latent
    subtasks (``observed=False``): their values are drawn as above and then hidden (columns 0 and
    unobserved), so a graph learner must learn them from ``y`` alone. :meth:`supervised` is the
    same family with every node observed (the same tasks and draws, the hidden values given).

    ``task_params``: ``function [T, 2]``, the index in ``functions`` of each hidden node's function;
    ``combination [T]``, the index in ``combinations`` of the sink's; and
    ``<function>_<parameter> [T, 2]`` for every parameter of every function in ``functions`` (all
    are drawn for every node, so the draws do not depend on the choices; only the chosen apply).
    """

    name: ClassVar[str] = "functions"

    def __init__(
        self,
        functions: Annotated[tuple[ElementaryName, ...], MinLen(1)] = tuple(ELEMENTARY),
        combinations: Annotated[tuple[CombinationName, ...], MinLen(1)] = tuple(COMBINATIONS),
        x_range: Annotated[tuple[float, float], Ordered()] = (-3.0, 3.0),
        noise: NonNegativeFloat = 0.0,
        latent_nodes: Annotated[str, OneOf(LATENT_NODES)] = "none",
        seed: NonNegativeInt = 0,
    ) -> None:
        for argument, names in (("functions", functions), ("combinations", combinations)):
            if len(set(names)) != len(names):
                raise ConfigError(f"FunctionsFamily.{argument} names one twice: {list(names)}; name each once")
        self.functions, self.combinations = tuple(functions), tuple(combinations)
        self.x_range, self.noise, self.latent_nodes = x_range, noise, latent_nodes
        observed = latent_nodes == "none"
        graph = TaskGraph("functions" + ("" if observed else "-latent"))
        for name in HIDDEN:
            graph.add_subtask(name, in_dim=1, observed=observed)
        graph.add_subtask(OUTPUT)
        for name in HIDDEN:
            graph.add_dependency(name, OUTPUT)
        super().__init__(graph, seed)

    def supervised(self) -> FunctionsFamily:
        """This family with every node observed: the same tasks and draws (same seed), the hidden
        nodes' values given, for a fully supervised reference."""
        return type(self)(**{**self.config, "latent_nodes": "none"})

    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        shape = (num_tasks, len(HIDDEN))
        params = {f"{function}_{name}": rng.uniform(low, high, size=shape)
                  for function in self.functions for name, (low, high) in ELEMENTARY[function][0].items()}
        return {"function": rng.integers(len(self.functions), size=shape),
                "combination": rng.integers(len(self.combinations), size=num_tasks), **params}

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        choice, combination = params["function"][:, None, :], params["combination"][:, None]  # [T, 1, 2], [T, 1]
        x = rng.uniform(*self.x_range, size=(len(combination), rows, 1))
        hidden = np.zeros((len(combination), rows, len(HIDDEN)))
        for index, function in enumerate(self.functions):
            ranges, f = ELEMENTARY[function]
            value = f(x, {name: params[f"{function}_{name}"][:, None, :] for name in ranges})
            hidden = np.where(choice == index, value, hidden)
        hidden = hidden + self.noise * rng.standard_normal(hidden.shape)
        output = np.zeros((len(combination), rows))
        for index, name in enumerate(self.combinations):
            output = np.where(combination == index, COMBINATIONS[name](hidden), output)
        output = output + self.noise * rng.standard_normal(output.shape)
        features = np.repeat(x, len(HIDDEN), axis=-1)  # each hidden node's own feature is x
        values = np.concatenate([hidden, output[..., None]], axis=-1)
        return self.hide_latent(observed_split(features, values, len(self.graph)))
