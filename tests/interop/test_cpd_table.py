"""`CPDTable`: the packed column layout agrees with pgmpy's TabularCPD column order."""

from __future__ import annotations

import numpy as np

from graphmeta.families import BayesNetFamily
from graphmeta.interop.cpd_table import CPDTable


def test_columns_follow_pgmpy_order_first_evidence_slowest():
    family = BayesNetFamily("alarm")
    table = family.table
    names = list(table.names)
    for n, name in enumerate(names):
        evidence = family.evidence[name]
        cards = [len(family.states[p]) for p in evidence]
        assert table.configs[n] == int(np.prod(cards))
        for configuration in np.ndindex(*cards):  # pgmpy: np.ravel_multi_index over the evidence, C order
            index = int((np.array(configuration, dtype=np.int64) * table.strides[n, : len(cards)]).sum())
            assert index == (np.ravel_multi_index(configuration, cards) if cards else 0)
        assert [names[p] for p in table.parents[n, : len(cards)]] == evidence


def test_pack_and_unpack_round_trip_and_padding():
    family = BayesNetFamily("child")
    table: CPDTable = family.table
    packed = table.pack(family.theta_star)
    assert packed.shape == (table.columns, table.width)
    np.testing.assert_allclose(packed.sum(-1), 1.0)
    assert np.all(packed[table.padding()] == 0)
    unpacked = table.unpack(packed)
    assert all(np.array_equal(unpacked[v], family.theta_star[v]) for v in family.theta_star)


def test_sampled_states_stay_in_range():
    family = BayesNetFamily("child", alpha=0.05)
    params = family.task_params(50, seed=0)
    states = family.draw_states(params, 200, np.random.default_rng(0))
    assert states.min() >= 0 and np.all(states < family.table.cardinality)
