"""`ARML2DFamily`: the six-family 2-d few-shot regression benchmark of ARML (Yao et al., ICLR 2020)."""

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

Ranges = dict[str, tuple[float, float]]
Function = Callable[[np.ndarray, np.ndarray, dict[str, np.ndarray]], np.ndarray]

#: Every function of the benchmark: its parameters' uniform ranges (the authors' code,
#: ``data_generator.py``), and ``y(x1, x2, params)`` with params broadcast over the examples.
FUNCTIONS: dict[str, tuple[Ranges, Function]] = {
    "sinusoid": ({"amplitude": (0.1, 5.0), "phase": (0.0, 2 * math.pi), "frequency": (0.8, 1.2)},
                 lambda x1, x2, p: p["amplitude"] * np.sin(p["frequency"] * x1 + p["phase"])),
    "line": ({"slope": (-3.0, 3.0), "intercept": (-3.0, 3.0)},
             lambda x1, x2, p: p["slope"] * x1 + p["intercept"]),
    "quadratic": ({"a": (-0.2, 0.2), "b": (-2.0, 2.0), "c": (-3.0, 3.0)},
                  lambda x1, x2, p: p["a"] * x1**2 + p["b"] * x1 + p["c"]),
    "cubic": ({"a": (-0.1, 0.1), "b": (-0.2, 0.2), "c": (-2.0, 2.0), "d": (-3.0, 3.0)},
              lambda x1, x2, p: p["a"] * x1**3 + p["b"] * x1**2 + p["c"] * x1 + p["d"]),
    "quadratic_surface": ({"a": (-1.0, 1.0), "b": (-1.0, 1.0)},
                          lambda x1, x2, p: p["a"] * x1**2 + p["b"] * x2**2),
    "ripple": ({"a": (-0.2, 0.2), "b": (-3.0, 3.0)},
               lambda x1, x2, p: np.sin(-p["a"] * (x1**2 + x2**2)) + p["b"]),
}
#: The functions of one input: their second input is the constant 1.
ONE_DIMENSIONAL = ("sinusoid", "line", "quadratic", "cubic")

FunctionName = Annotated[str, OneOf(tuple(FUNCTIONS))]


@FAMILIES.register
@checked
class ARML2DFamily(TaskFamily):
    r"""One regression node ``y`` with two inputs (``in_dim = 2``, ``out_dim = 1``): each task
    draws one of ``functions`` uniformly, then that function's parameters, from the ranges of
    the authors' code (github.com/huaxiuyao/ARML, ``data_generator.py``, ``generate_2D_batch``):

    .. math::
        x_1, x_2 \sim U[-5, 5], \qquad y = f_t(x_1, x_2) + \varepsilon, \quad \varepsilon \sim N(0, 0.3^2)

    ==================  ==========================================  ===============================================
    function            :math:`f(x_1, x_2)`                          parameters
    ==================  ==========================================  ===============================================
    sinusoid            :math:`A \sin(\omega x_1 + \varphi)`         A ~ U[0.1, 5], phase ~ U[0, 2 pi], freq ~ U[0.8, 1.2]
    line                :math:`a x_1 + b`                            slope, intercept ~ U[-3, 3]
    quadratic           :math:`a x_1^2 + b x_1 + c`                  a ~ U[-0.2, 0.2], b ~ U[-2, 2], c ~ U[-3, 3]
    cubic               :math:`a x_1^3 + b x_1^2 + c x_1 + d`        a ~ U[-0.1, 0.1], b ~ U[-0.2, 0.2], c ~ U[-2, 2], d ~ U[-3, 3]
    quadratic_surface   :math:`a x_1^2 + b x_2^2`                    a, b ~ U[-1, 1]
    ripple              :math:`\sin(-a (x_1^2 + x_2^2)) + b`         a ~ U[-0.2, 0.2], b ~ U[-3, 3]
    ==================  ==========================================  ===============================================

    For the four functions of one input (sinusoid, line, quadratic, cubic) the second input
    is the constant 1, as in the authors' code, so the inputs also tell a 1-d task from a 2-d
    one. The noise is drawn for every example, support and query alike.

    ``task_params``: ``function [T]``, the index of each task's function in ``functions``, and
    ``<function>_<parameter> [T]`` for every parameter of every function in ``functions`` (all
    are drawn for every task, as the authors do; only those of the task's function apply).
    """

    name: ClassVar[str] = "arml-2d"

    def __init__(
        self,
        functions: Annotated[tuple[FunctionName, ...], MinLen(1)] = tuple(FUNCTIONS),
        x_range: Annotated[tuple[float, float], Ordered()] = (-5.0, 5.0),
        noise: NonNegativeFloat = 0.3,
        seed: NonNegativeInt = 0,
    ) -> None:
        if len(set(functions)) != len(functions):
            raise ConfigError(f"ARML2DFamily.functions names a function twice: {list(functions)}; name each once")
        self.functions, self.x_range, self.noise = tuple(functions), x_range, noise
        super().__init__(TaskGraph("arml-2d").add_subtask("y", in_dim=2), seed)

    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        params = {f"{function}_{name}": rng.uniform(low, high, size=num_tasks)
                  for function in self.functions for name, (low, high) in FUNCTIONS[function][0].items()}
        return {"function": rng.integers(len(self.functions), size=num_tasks), **params}

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        choice = params["function"]
        x = rng.uniform(*self.x_range, size=(len(choice), rows, 2))
        x[np.isin(choice, [i for i, f in enumerate(self.functions) if f in ONE_DIMENSIONAL]), :, 1] = 1.0
        y = np.zeros((len(choice), rows))
        for index, function in enumerate(self.functions):
            tasks = choice == index
            ranges, f = FUNCTIONS[function]
            own = {name: params[f"{function}_{name}"][tasks, None] for name in ranges}
            y[tasks] = f(x[tasks, :, 0], x[tasks, :, 1], own)
        y = y + self.noise * rng.standard_normal(y.shape)
        return observed_split(x, y[..., None], 1)
