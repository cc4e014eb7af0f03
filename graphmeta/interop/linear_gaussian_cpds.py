r"""Linear-Gaussian CPDs between pgmpy's ``LinearGaussianCPD`` and arrays.

A variable :math:`y` with parents :math:`x_1, \dots, x_P` has the CPD

.. math::
    y \mid x \sim N\big(\beta_0 + \textstyle\sum_p \beta_p x_p,\ \sigma^2\big),

which pgmpy writes ``LinearGaussianCPD(y, beta=[beta_0, beta_1, ..., beta_P], std=sigma,
evidence=[x_1, ..., x_P])``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataError


def linear_gaussian_network(parents: Mapping[str, Sequence[str]], coefficients: Mapping[str, np.ndarray],
                            variances: Mapping[str, float]) -> Any:
    """A pgmpy ``LinearGaussianBayesianNetwork`` with one ``LinearGaussianCPD`` per variable.

    ``parents`` ``{variable: [parent, ...]}`` (every variable a key, in the network's order),
    ``coefficients`` ``{variable: [1 + P]}`` (intercept, then one weight per parent in that
    order) and ``variances`` ``{variable: sigma^2}`` of the noise.
    """
    from pgmpy.factors.continuous import LinearGaussianCPD
    from pgmpy.models import LinearGaussianBayesianNetwork

    cpds = []
    for variable, evidence in parents.items():
        beta = np.asarray(coefficients[variable], dtype=np.float64)
        if beta.shape != (1 + len(evidence),):
            raise DataError(f"variable {variable!r} has {len(evidence)} parent(s), so 1 + {len(evidence)} "
                            f"coefficients, got shape {beta.shape}")
        variance = float(variances[variable])
        if not variance > 0:
            raise DataError(f"variable {variable!r} has a noise variance of {variance}; it must be positive")
        cpds.append(LinearGaussianCPD(variable, beta.tolist(), float(np.sqrt(variance)), list(evidence)))
    model = LinearGaussianBayesianNetwork()
    model.add_nodes_from(parents)
    model.add_edges_from((parent, child) for child, evidence in parents.items() for parent in evidence)
    model.add_cpds(*cpds)
    return model
