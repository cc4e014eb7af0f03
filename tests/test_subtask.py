"""Subtask: defaults, widths, serialisation and every spec error."""

from __future__ import annotations

import dataclasses

import pytest

from graphmeta import GNN, MLP, GraphError, Subtask


def test_defaults():
    s = Subtask("a")
    assert (s.in_dim, s.kind, s.out_dim, s.num_classes, s.attrs) == (0, "regression", 1, None, {})
    assert s.learner == MLP() and s.width == 1


def test_width_is_out_dim_or_num_classes():
    assert Subtask("a", out_dim=3).width == 3
    assert Subtask("a", kind="classification", num_classes=5).width == 5


def test_learner_is_normalised():
    assert Subtask("a", learner="gnn", in_dim=2).learner == GNN()
    assert Subtask("a", learner={"type": "mlp", "hidden": [4]}).learner == MLP(hidden=(4,))
    assert Subtask("a", learner=MLP(hidden=())).learner == MLP(hidden=())


def test_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        Subtask("a").in_dim = 3


def test_to_dict():
    assert Subtask("a", in_dim=2, out_dim=3).to_dict() == {
        "in_dim": 2, "kind": "regression", "out_dim": 3,
        "learner": {"type": "mlp", "hidden": [40, 40], "activation": "relu"},
    }
    spec = Subtask("b", kind="classification", num_classes=4, learner="gnn", in_dim=1, attrs={"k": 1}).to_dict()
    assert spec == {"in_dim": 1, "kind": "classification", "num_classes": 4,
                    "learner": {"type": "gnn", "hidden": 32, "layers": 2, "activation": "relu"}, "attrs": {"k": 1}}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "name must be a non-empty string, got ''"),
        ({"name": 3}, "name must be a non-empty string, got 3"),
        ({"in_dim": -1}, "subtask 'a': in_dim must be an integer >= 0, got -1"),
        ({"in_dim": 2.5}, "in_dim must be an integer >= 0, got 2.5"),
        ({"in_dim": True}, "in_dim must be an integer >= 0, got True"),
        ({"out_dim": 0}, "out_dim must be an integer >= 1, got 0"),
        ({"out_dim": "2"}, "out_dim must be an integer >= 1, got '2'"),
        ({"kind": "ranking"}, "kind must be one of"),
        ({"kind": "classification"}, "subtask 'a': a classification subtask needs num_classes"),
        ({"kind": "classification", "num_classes": 1}, "num_classes must be an integer >= 2 or null, got 1"),
        ({"kind": "classification", "num_classes": 2.0}, "num_classes must be an integer >= 2"),
        ({"num_classes": 3}, "regression subtask takes out_dim, not num_classes.*kind='classification'"),
        ({"learner": "transformer"}, "unknown learner 'transformer'"),
        ({"learner": "gnn"}, "subtask 'a': a GNN learner needs in_dim >= 1"),
        ({"in_dm": 2}, r"unknown keyword 'in_dm' in subtask 'a' \(did you mean 'in_dim'\?\)"),
        ({"attrs": 3}, "subtask 'a': attrs must be a mapping, got 3"),
    ],
)
def test_errors_name_the_subtask_and_the_value(kwargs, message):
    kwargs = {"name": "a", **kwargs}
    with pytest.raises(GraphError, match=message):
        Subtask(**kwargs)
