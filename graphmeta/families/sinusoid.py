"""`SinusoidFamily`: the sinusoid regression tasks of MAML (Finn et al., 2017)."""

from __future__ import annotations

import math
from typing import Annotated, ClassVar

import numpy as np

from ..data import Split
from ..taskgraph import TaskGraph
from ..validation import NonNegativeFloat, NonNegativeInt, Ordered, checked
from .base import FAMILIES, TaskFamily, observed_split

#: A ``[low, high]`` range of a uniform draw.
Range = Annotated[tuple[float, float], Ordered()]


@FAMILIES.register
@checked
class SinusoidFamily(TaskFamily):
    r"""One regression node ``sine`` (``in_dim = out_dim = 1``):

    .. math::
        A_t \sim U[a_0, a_1], \quad \varphi_t \sim U[\varphi_0, \varphi_1], \quad
        x \sim U[x_0, x_1], \quad y = A_t \sin(x - \varphi_t) + \sigma \varepsilon,
        \ \varepsilon \sim N(0, 1)

    with the defaults of Finn et al. (2017): amplitude ``U[0.1, 5.0]``, phase ``U[0, pi]``,
    ``x ~ U[-5, 5]`` and no noise. ``task_params`` gives ``amplitude [T]`` and ``phase [T]``.
    """

    name: ClassVar[str] = "sinusoid"

    def __init__(
        self,
        amplitude: Range = (0.1, 5.0),
        phase: Range = (0.0, math.pi),
        x_range: Range = (-5.0, 5.0),
        noise: NonNegativeFloat = 0.0,
        seed: NonNegativeInt = 0,
    ) -> None:
        self.amplitude, self.phase, self.x_range, self.noise = amplitude, phase, x_range, noise
        super().__init__(TaskGraph("sinusoid").add_subtask("sine", in_dim=1), seed)

    def draw_params(self, num_tasks: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
        return {"amplitude": rng.uniform(*self.amplitude, size=num_tasks),
                "phase": rng.uniform(*self.phase, size=num_tasks)}

    def draw_examples(self, params: dict[str, np.ndarray], rows: int, rng: np.random.Generator) -> Split:
        num_tasks = len(params["amplitude"])
        x = rng.uniform(*self.x_range, size=(num_tasks, rows, 1))
        y = params["amplitude"][:, None, None] * np.sin(x - params["phase"][:, None, None])
        if self.noise:
            y = y + self.noise * rng.standard_normal(y.shape)
        return observed_split(x, y, 1)

