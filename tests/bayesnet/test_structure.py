"""NetworkStructure: states and parent order from pgmpy, DataFrame encoding, counts, log-likelihoods, CPD packing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from graphmeta import DataError, GraphError
from graphmeta.bayesnet import NetworkStructure


def test_states_and_evidence_follow_the_cpds(tiny_structure):
    assert tiny_structure.names == ["A", "B", "C"]
    assert tiny_structure.states == {"A": ["lo", "mid", "hi"], "B": ["no", "yes"], "C": ["x", "y", "z"]}
    assert tiny_structure.evidence == {"A": [], "B": [], "C": ["B", "A"]}
    assert tiny_structure.table.configs.tolist() == [1, 1, 6]


def test_structure_without_state_names_needs_them(tiny):
    from pgmpy.models import DiscreteBayesianNetwork

    bare = DiscreteBayesianNetwork(tiny.edges())
    with pytest.raises(GraphError, match="'A'.*no state names"):
        NetworkStructure.from_pgmpy(bare)
    given = NetworkStructure.from_pgmpy(bare, state_names={"A": ["lo", "hi"], "B": [0, 1], "C": ["x", "y"]})
    assert given.states["B"] == ["0", "1"]
    with pytest.raises(GraphError, match="'D'"):
        NetworkStructure.from_pgmpy(bare, state_names={"D": ["a", "b"]})


def test_dict_round_trip(tiny_structure):
    again = NetworkStructure.from_dict(tiny_structure.to_dict())
    assert again.states == tiny_structure.states and again.evidence == tiny_structure.evidence
    assert again.names == tiny_structure.names


def test_encode_maps_states_and_missing_values(tiny_structure):
    frame = pd.DataFrame({"C": ["z", None, "x"], "A": ["hi", "lo", np.nan], "B": ["yes", "no", "no"]})
    codes = tiny_structure.encode(frame)
    assert codes.tolist() == [[2, 1, 2], [0, 0, -1], [-1, 0, 0]]
    config = tiny_structure.configurations(codes)
    # C's column index: B slowest, then A (pgmpy order): (yes, hi) -> 1 * 3 + 2
    assert config[:, 2].tolist() == [5, 0, -1]


@pytest.mark.parametrize("frame, message", [
    (pd.DataFrame({"A": ["lo"], "B": ["no"], "C": ["x"], "D": ["?"]}), "column 'D'"),
    (pd.DataFrame({"A": ["lo"], "B": ["no"], "C": ["w"]}), "column 'C': value 'w' is not one of its states"),
    (pd.DataFrame({"A": ["lo"], "B": ["no"]}), "no column for variable 'C'"),
])
def test_encode_names_the_offender(tiny_structure, frame, message):
    with pytest.raises(DataError, match=message):
        tiny_structure.encode(frame)


def test_counts_skip_rows_missing_the_value_or_a_parent(tiny_structure):
    frame = pd.DataFrame({"A": ["hi", "hi", None, "lo"], "B": ["yes", "yes", "no", "no"], "C": ["z", "z", "x", None]})
    counts = tiny_structure.counts(tiny_structure.encode([frame]))[0]
    table = tiny_structure.table
    assert counts[table.offsets[0]].tolist() == [1, 0, 2]  # A: lo once, hi twice
    assert counts[table.offsets[1], :2].tolist() == [2, 2]
    c_block = counts[table.offsets[2]: table.offsets[2] + 6]
    assert c_block.sum() == 2 and c_block[5, 2] == 2  # only the two complete rows (yes, hi) -> z


def test_log_likelihood_matches_pgmpy(tiny, tiny_structure):
    from pgmpy.inference import VariableElimination

    frame = pd.DataFrame({"A": ["hi", "mid"], "B": ["yes", "no"], "C": ["z", "y"]})
    tables = tiny_structure.pack_network(tiny)[None]
    ours = tiny_structure.log_likelihood(tables, tiny_structure.encode([frame]))[0]
    inference = VariableElimination(tiny)
    for row, value in zip(frame.to_dict("records"), ours):
        joint = inference.query(list(row), show_progress=False)
        assert value == pytest.approx(np.log(joint.get_value(**row)))


def test_pack_network_handles_other_parent_and_state_orders(tiny, tiny_structure):
    from pgmpy.factors.discrete import TabularCPD

    cpd = tiny.get_cpds("C")
    values = cpd.get_values().reshape(3, 2, 3)  # [C, B, A]
    # the same CPD, written with parents (A, B) and every state list reversed
    flipped = values[::-1, ::-1, ::-1].transpose(0, 2, 1).reshape(3, 6)
    other = tiny.copy()
    other.remove_cpds("C")
    other.add_cpds(TabularCPD("C", 3, flipped, evidence=["A", "B"], evidence_card=[3, 2],
                              state_names={"C": ["z", "y", "x"], "A": ["hi", "mid", "lo"], "B": ["yes", "no"]}))
    np.testing.assert_allclose(tiny_structure.pack_network(other), tiny_structure.pack_network(tiny))


def test_to_network_round_trips(tiny, tiny_structure):
    tables = tiny_structure.table.unpack(tiny_structure.pack_network(tiny))
    model = tiny_structure.to_network(tables)
    assert model.check_model()
    for name in tiny_structure.names:
        assert model.get_cpds(name) == tiny.get_cpds(name)


def test_encode_reads_every_table_as_it_would_alone():
    """Tables are joined per dtype for speed, never across dtypes: an int 1 reads "1" and a float
    1.0 reads "1.0" whatever the other tables hold; missing values read -1."""
    structure = NetworkStructure.from_dict({"name": "n", "states": {"A": ["1", "2", "1.0"], "B": ["x", "y"]},
                                            "evidence": {"A": [], "B": ["A"]}})
    frames = [pd.DataFrame({"A": [1, 2], "B": ["x", "y"]}), pd.DataFrame({"A": [1.0, np.nan], "B": ["x", None]}),
              pd.DataFrame({"B": ["y"], "A": ["2"]}), pd.DataFrame({"A": [2, 1], "B": ["y", "y"]})]
    codes = structure.encode(frames)
    assert codes.tolist() == [[[0, 0], [1, 1]], [[2, 0], [-1, -1]], [[1, 1], [-1, -1]], [[1, 1], [0, 1]]]
    for frame, table in zip(frames, codes):
        assert structure.encode(frame).tolist() == table[: len(frame)].tolist()


def test_encode_names_the_first_offence_in_table_order(tiny_structure):
    good = pd.DataFrame({"A": ["lo"], "B": ["no"], "C": ["x"]})
    unknown = pd.DataFrame({"A": ["lo", "lo"], "B": ["no", "no"], "C": ["x", "w"]})
    with pytest.raises(DataError, match="table 1, column 'C': value 'w'"):
        tiny_structure.encode([good, unknown, pd.DataFrame({"A": ["lo"]})])
    with pytest.raises(DataError, match="table 1 has no column for variable 'B'"):
        tiny_structure.encode([good, pd.DataFrame({"A": ["lo"], "C": ["x"]}), unknown])
    with pytest.raises(DataError, match="table 2, column 'A': value 'top'"):
        tiny_structure.encode([good, unknown.assign(C="x"), unknown.assign(A=["lo", "top"], C="w")])
