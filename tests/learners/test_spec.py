"""Learner specs: MLP, GNN, and the conversions from strings and mappings."""

from __future__ import annotations

import pytest

from graphmeta import GNN, MLP, ConfigError, GraphError
from graphmeta.learners import Table, learner_from, learner_to_dict


def test_mlp():
    assert MLP() == MLP(hidden=(40, 40), activation="relu")
    assert MLP(hidden=[8, 4]).hidden == (8, 4)
    assert MLP(hidden=()).hidden == ()
    assert MLP().type == "mlp"


def test_gnn():
    assert GNN() == GNN(hidden=32, layers=2, activation="relu")
    assert GNN(activation="tanh").type == "gnn"


@pytest.mark.parametrize("hidden", [(0,), (-3,), (2.5,), (True,), ("8",)])
def test_mlp_rejects_bad_widths(hidden):
    with pytest.raises(GraphError, match=r"MLP\.hidden must be a list of integers >= 1, got"):
        MLP(hidden=hidden)


@pytest.mark.parametrize(("key", "value"), [("hidden", 0), ("layers", -1), ("hidden", 1.5), ("layers", False)])
def test_gnn_rejects_bad_sizes(key, value):
    with pytest.raises(GraphError, match=rf"GNN\.{key} must be an integer >= 1, got {value!r}"):
        GNN(**{key: value})


@pytest.mark.parametrize("spec", [MLP, GNN])
def test_unknown_activation(spec):
    with pytest.raises(GraphError, match=rf"{spec.__name__}\.activation must be one of relu, tanh, gelu, silu, "
                                         r"got 'sigmoidal'"):
        spec(activation="sigmoidal")


@pytest.mark.parametrize(("spec", "keywords", "message"), [
    (MLP, {"hiden": (4,)}, r"unknown keyword 'hiden' in MLP \(did you mean 'hidden'\?\)"),
    (GNN, {"layer": 3}, r"unknown keyword 'layer' in GNN \(did you mean 'layers'\?\)"),
    (Table, {"prior_strenght": 2.0}, r"unknown keyword 'prior_strenght' in Table \(did you mean 'prior_strength'\?\)"),
    (Table, {"prior_strength": 0}, r"Table\.prior_strength must be a number > 0, got 0"),
])
def test_spec_keywords_are_checked(spec, keywords, message):
    with pytest.raises(ConfigError, match=message):
        spec(**keywords)


def test_learner_from_strings_specs_and_mappings():
    assert learner_from("mlp") == MLP() and learner_from("gnn") == GNN()
    spec = MLP(hidden=(3,))
    assert learner_from(spec) is spec
    assert learner_from({"type": "gnn", "layers": 4}) == GNN(layers=4)
    assert learner_from({"hidden": [5]}) == MLP(hidden=(5,))  # type defaults to mlp


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("rnn", "unknown learner 'rnn' \\(did you mean 'gnn'\\?\\); choose one of mlp, gnn, .*table"),
        ({"type": "rnn"}, "unknown learner 'rnn'"),
        ({"type": "mlp", "hiden": [4]}, r"unknown key 'hiden' in mlp learner spec \(did you mean 'hidden'\?\)"),
        ({"type": "gnn", "layer": 2}, r"unknown key 'layer' in gnn learner spec \(did you mean 'layers'\?\)"),
        (42, "unknown learner 42"),
    ],
)
def test_learner_from_errors(value, message):
    with pytest.raises(GraphError, match=message):
        learner_from(value)


@pytest.mark.parametrize("spec", [MLP(), MLP(hidden=(), activation="gelu"), GNN(hidden=8, layers=1)])
def test_learner_to_dict_round_trip(spec):
    data = learner_to_dict(spec)
    assert data["type"] == spec.type
    if isinstance(spec, MLP):
        assert isinstance(data["hidden"], list)
    assert learner_from(data) == spec


def test_registry_knows_each_learner_type_once():
    """Every built-in type is registered with its bank, input kind and marker; a second
    registration of a name is refused, so two modules cannot silently claim one type."""
    from graphmeta.learners import LearnerType, learner_type, register, registered
    from graphmeta.learners.banks.gnn import GNNBank
    from graphmeta.learners.banks.mlp import MLPBank
    from graphmeta.learners.banks.table import TableBank

    types = {t.name: t for t in registered()}
    banks = {name: t.bank_class() for name, t in types.items()}
    assert banks.items() >= {"mlp": MLPBank, "gnn": GNNBank, "table": TableBank}.items()
    assert [name for name, t in types.items() if t.takes_graphs] == ["gnn"]
    assert len({t.marker for t in types.values()}) == len(types)
    assert learner_type(GNN(hidden=3)) is types["gnn"]
    with pytest.raises(GraphError, match="'mlp' is already registered"):
        register(LearnerType("mlp", MLP, bank="graphmeta.learners.banks.mlp:MLPBank"))
