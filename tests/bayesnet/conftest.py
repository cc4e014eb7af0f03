"""Small networks for the Bayesian-network tests: asia (bundled) and a hand-built one with unsorted states."""

from __future__ import annotations

import numpy as np
import pytest

from graphmeta.bayesnet import NetworkStructure


@pytest.fixture(scope="session")
def asia():
    from graphmeta.interop.pgmpy import load_bundled

    return load_bundled("asia")


@pytest.fixture
def tiny():
    """A -> C <- B with 3, 2 and 3 states; C's evidence order (B, A) differs from the insertion order."""
    from pgmpy.factors.discrete import TabularCPD
    from pgmpy.models import DiscreteBayesianNetwork

    rng = np.random.default_rng(0)
    model = DiscreteBayesianNetwork([("A", "C"), ("B", "C")])
    model.add_cpds(
        TabularCPD("A", 3, [[0.2], [0.5], [0.3]], state_names={"A": ["lo", "mid", "hi"]}),
        TabularCPD("B", 2, [[0.6], [0.4]], state_names={"B": ["no", "yes"]}),
        TabularCPD("C", 3, rng.dirichlet(np.ones(3), size=6).T, evidence=["B", "A"], evidence_card=[2, 3],
                   state_names={"C": ["x", "y", "z"], "B": ["no", "yes"], "A": ["lo", "mid", "hi"]}),
    )
    return model


@pytest.fixture
def tiny_structure(tiny) -> NetworkStructure:
    return NetworkStructure.from_pgmpy(tiny)
