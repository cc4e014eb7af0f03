"""`SinusoidFamily`: the sinusoid regression tasks of MAML (Finn et al., 2017)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..data import Split
from ..errors import ConfigError
from ..graph import TaskGraph
from .base import TaskFamily, check_positive, observed_split


class SinusoidFamily(TaskFamily):
    r"""One regression node ``sine`` (``in_dim = out_dim = 1``):

    .. math::
        A_t \sim U[a_0, a_1], \quad \varphi_t \sim U[\varphi_0, \varphi_1], \quad
        x \sim U[x_0, x_1], \quad y = A_t \sin(x - \varphi_t) + \sigma \varepsilon,
        \ \varepsilon \sim N(0, 1)

    with the defaults of Finn et al. (2017): amplitude ``U[0.1, 5.0]``, phase ``U[0, pi]``,
    ``x ~ U[-5, 5]`` and no noise. ``task_params`` gives ``amplitude [T]`` and ``phase [T]``.
    """

    def __init__(
        self,
        amplitude: Sequence[float] = (0.1, 5.0),
        phase: Sequence[float] = (0.0, math.pi),
        x_range: Sequence[float] = (-5.0, 5.0),
        noise: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.amplitude = _interval("amplitude", amplitude)
        self.phase = _interval("phase", phase)
        self.x_range = _interval("x_range", x_range)
        self.noise = check_positive("noise", noise, allow_zero=True)
        graph = TaskGraph("sinusoid").add_subtask("sine", in_dim=1)
        config = {"amplitude": list(self.amplitude), "phase": list(self.phase), "x_range": list(self.x_range),
                  "noise": self.noise}
        super().__init__(graph, seed, config)

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


def _interval(name: str, bounds: Sequence[float]) -> tuple[float, float]:
    try:
        low, high = (float(b) for b in bounds)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a [low, high] pair of numbers, got {bounds!r}") from None
    if not low <= high:
        raise ConfigError(f"{name} must be a [low, high] pair with low <= high, got {bounds!r}")
    return low, high
