"""TaskGraph: building, introspection, validation errors and every conversion."""

from __future__ import annotations

import json

import networkx as nx
import pytest
import torch

from graphmeta import GNN, MLP, ConfigError, GraphError, TaskGraph


def chain(*names: str) -> TaskGraph:
    graph = TaskGraph()
    for name in names:
        graph.add_subtask(name)
    for parent, child in zip(names, names[1:]):
        graph.add_dependency(parent, child)
    return graph


# -------------------------------------------------------------------- building
def test_add_returns_the_graph_for_chaining():
    graph = TaskGraph()
    assert graph.add_subtask("a") is graph
    assert graph.add_subtask("b").add_dependency("a", "b") is graph


def test_names_are_topological_and_follow_insertion_order(mixed):
    assert mixed.names == ["weather", "x", "molecule", "traffic", "delay"]
    late_parent = TaskGraph().add_subtask("child").add_subtask("zeta").add_subtask("alpha")
    late_parent.add_dependency("alpha", "child")
    assert late_parent.names == ["zeta", "alpha", "child"]
    assert list(late_parent) == late_parent.names


def test_names_are_stable_across_round_trips(mixed, tmp_path):
    assert TaskGraph.load(mixed.save(tmp_path / "g.yaml")).names == mixed.names
    assert TaskGraph.from_networkx(mixed.to_networkx()).names == mixed.names


def test_edges_are_ordered_by_child_then_parent(mixed):
    assert mixed.edges == [
        ("weather", "traffic"), ("x", "traffic"),
        ("weather", "delay"), ("molecule", "delay"), ("traffic", "delay"),
    ]


def test_duplicate_dependency_is_kept_once():
    graph = chain("a", "b").add_dependency("a", "b")
    assert graph.edges == [("a", "b")]


# --------------------------------------------------------------- introspection
def test_subtask_parents_children(mixed):
    assert mixed.subtask("traffic").num_classes == 2
    assert mixed.subtask("molecule").attrs == {"source": "qm9"}
    assert mixed.parents("delay") == ["weather", "molecule", "traffic"]
    assert mixed.children("weather") == ["traffic", "delay"]
    assert mixed.parents("weather") == [] and mixed.children("delay") == []


def test_levels_are_topological_generations(mixed):
    assert mixed.levels() == [["weather", "x", "molecule"], ["traffic"], ["delay"]]
    assert chain("a", "b", "c").levels() == [["a"], ["b"], ["c"]]
    assert TaskGraph().levels() == []


def test_input_width_counts_classes_of_classification_parents(mixed):
    assert mixed.input_width("weather") == 4
    assert mixed.input_width("traffic") == 1 + 3 + 1  # own, weather one-hot, x value
    assert mixed.input_width("delay") == 0 + 3 + 1 + 2  # weather, molecule, traffic


def test_len_contains_iter(mixed):
    assert len(mixed) == 5
    assert "traffic" in mixed and "nope" not in mixed
    assert list(mixed) == mixed.names


def test_equality(mixed):
    assert mixed == TaskGraph.from_dict(mixed.to_dict())
    other = TaskGraph.from_dict(mixed.to_dict())
    other.add_subtask("extra")
    assert mixed != other
    assert mixed != "mixed"


def test_repr(mixed):
    assert repr(mixed) == "TaskGraph('mixed', 5 subtasks, 5 dependencies: 2 classification, 3 regression)"
    assert repr(TaskGraph()) == "TaskGraph(0 subtasks, 0 dependencies: empty)"
    one = TaskGraph().add_subtask("a").add_subtask("b").add_dependency("a", "b")
    assert repr(one) == "TaskGraph(2 subtasks, 1 dependency: 2 regression)"
    assert repr(TaskGraph().add_subtask("a")) == "TaskGraph(1 subtask, 0 dependencies: 1 regression)"


def test_summary_has_a_row_per_subtask_in_order(mixed):
    lines = mixed.summary().splitlines()
    assert lines[0] == repr(mixed)
    assert lines[1].split() == ["subtask", "kind", "in_dim", "output", "learner", "input", "width", "parents"]
    rows = lines[3:]
    assert [row.split()[0] for row in rows] == mixed.names
    weather, _, molecule, _, delay = rows
    assert "3 classes" in weather and weather.rstrip().endswith("-")
    assert "gnn" in molecule and "1 value " in molecule
    assert "2 values" in delay and delay.rstrip().endswith("weather, molecule, traffic")


# ---------------------------------------------------------------------- errors
def test_duplicate_name():
    with pytest.raises(GraphError, match="duplicate subtask name 'a'"):
        TaskGraph().add_subtask("a").add_subtask("a")


def test_unknown_node_has_a_did_you_mean_hint(mixed):
    with pytest.raises(GraphError, match=r"unknown subtask 'trafic' \(did you mean 'traffic'\?\)"):
        mixed.add_dependency("trafic", "delay")
    with pytest.raises(GraphError, match="unknown subtask 'delays'.*'delay'"):
        mixed.subtask("delays")
    with pytest.raises(GraphError, match="unknown subtask 'wether'"):
        mixed.parents("wether")
    with pytest.raises(GraphError, match="unknown subtask 'zzz'"):
        mixed.children("zzz")


def test_self_loop():
    with pytest.raises(GraphError, match="self-loop on 'a'"):
        chain("a").add_dependency("a", "a")


def test_cycle_is_named_in_order():
    graph = chain("a", "b", "c")
    with pytest.raises(GraphError, match="would close the cycle a -> b -> c -> a"):
        graph.add_dependency("c", "a")
    assert graph.edges == [("a", "b"), ("b", "c")]  # the graph is unchanged


def test_cycle_from_dict():
    data = {"subtasks": {"a": {}, "b": {}}, "dependencies": [["a", "b"], ["b", "a"]]}
    with pytest.raises(GraphError, match=r"cycle: a -> b -> a; .*Removing the edge b -> a would break it"):
        TaskGraph.from_dict(data)


@pytest.mark.parametrize(("method", "spelling"), [("from_pgmpy", "taskgraph_from_pgmpy"),
                                                  ("from_data", "taskgraph_from_data")])
def test_moved_readers_name_their_new_spelling(method, spelling):
    with pytest.raises(ConfigError, match=rf"TaskGraph\.{method}\(.*\) is now graphmeta\.{spelling}\("):
        getattr(TaskGraph, method)("asia")


def test_cycle_from_networkx_is_reported_in_full():
    with pytest.raises(GraphError, match="cycle: a -> b -> c -> a"):
        TaskGraph.from_networkx(nx.DiGraph([("a", "b"), ("b", "c"), ("c", "a")]))


def test_self_loop_from_networkx():
    with pytest.raises(GraphError, match="self-loop on 'a'"):
        TaskGraph.from_networkx(nx.DiGraph([("a", "a")]))


def test_validate_empty_graph():
    with pytest.raises(GraphError, match="empty"):
        TaskGraph().validate()


def test_validate_returns_the_graph(mixed):
    assert mixed.validate() is mixed


def test_an_unknown_keyword_of_add_subtask_names_the_closest_one():
    """It used to become metadata silently (``attrs={'in_dm': 4}``, ``in_dim`` 0)."""
    for error in (ConfigError, GraphError):
        with pytest.raises(error, match=r"unknown keyword 'in_dm' in subtask 'a' \(did you mean 'in_dim'\?\)"):
            TaskGraph().add_subtask("a", in_dm=4)


def test_metadata_is_an_explicit_attrs_mapping():
    graph = TaskGraph().add_subtask("rain", kind="classification", num_classes=2, attrs={"state_names": ["no", "yes"]})
    assert graph.subtask("rain").attrs == {"state_names": ["no", "yes"]}
    assert TaskGraph().add_subtask("a").subtask("a").attrs == {}
    with pytest.raises(GraphError, match=r"subtask 'a': attrs must be a mapping, got \['x'\] \(list\)"):
        TaskGraph().add_subtask("a", attrs=["x"])
    with pytest.raises(GraphError, match="subtask 'a': attribute 'in_dim' clashes"):
        TaskGraph().add_subtask("a", attrs={"in_dim": 3})


def test_bad_specs_name_the_subtask():
    with pytest.raises(GraphError, match="subtask 'a': in_dim must be an integer >= 0, got -1"):
        TaskGraph().add_subtask("a", in_dim=-1)
    with pytest.raises(GraphError, match="subtask 'a': a classification subtask needs num_classes"):
        TaskGraph().add_subtask("a", kind="classification")
    with pytest.raises(GraphError, match="unknown learner 'transformer'"):
        TaskGraph().add_subtask("a", learner="transformer")


# ----------------------------------------------------------- dicts and files
def test_dict_round_trip(mixed):
    data = mixed.to_dict()
    assert data["name"] == "mixed"
    assert list(data["subtasks"]) == mixed.names
    assert data["subtasks"]["molecule"]["learner"] == {"type": "gnn", "hidden": 16, "layers": 3, "activation": "relu"}
    assert data["dependencies"][0] == ["weather", "traffic"]
    assert TaskGraph.from_dict(data) == mixed


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".json"])
def test_file_round_trip_is_lossless(mixed, tmp_path, suffix):
    path = mixed.save(tmp_path / "nested" / f"graph{suffix}")
    assert path.exists()
    loaded = TaskGraph.load(path)
    assert loaded == mixed
    assert loaded.subtask("weather").learner == MLP(hidden=(8,))
    assert loaded.subtask("molecule").learner == GNN(hidden=16, layers=3)
    assert loaded.subtask("molecule").attrs == {"source": "qm9"}


def test_json_file_is_plain_json(mixed, tmp_path):
    data = json.loads(mixed.save(tmp_path / "g.json").read_text())
    assert data["subtasks"]["traffic"] == {"in_dim": 1, "kind": "classification", "num_classes": 2,
                                          "learner": {"type": "mlp", "hidden": [40, 40], "activation": "relu"}}


def test_hand_written_yaml(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("name: hand\nsubtasks:\n  a: {in_dim: 2}\n  b: {kind: classification, num_classes: 3}\n"
                    "dependencies:\n  - [a, b]\n")
    graph = TaskGraph.load(path)
    assert graph.name == "hand" and graph.edges == [("a", "b")] and graph.input_width("b") == 1


def test_unknown_key_in_yaml_names_it_and_the_closest(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("subtasks:\n  a: {}\ndependancies: []\n")
    with pytest.raises(GraphError, match=r"unknown key 'dependancies' in task graph \(did you mean 'dependencies'\?\)"):
        TaskGraph.load(path)
    path.write_text("subtasks:\n  a: {num_class: 3, kind: classification}\n")
    with pytest.raises(GraphError, match=r"unknown key 'num_class' in subtask 'a' \(did you mean 'num_classes'\?\)"):
        TaskGraph.load(path)


def test_unknown_keys_in_a_graph_file_are_config_errors_too(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("subtasks:\n  a: {in_dm: 3}\n")
    with pytest.raises(ConfigError, match=r"unknown key 'in_dm' in subtask 'a' \(did you mean 'in_dim'\?\)"):
        TaskGraph.load(path)


@pytest.mark.parametrize("suffix, text, message", [
    (".yaml", "subtasks:\n  a: {in_dim: 1}\n  b: {}\n  a: {in_dim: 2}\n",
     r"duplicate key 'a' on line 4 \(first on line 2\)"),
    (".yaml", "subtasks:\n  a: {in_dim: 1, in_dim: 2}\n", r"duplicate key 'in_dim' on line 2"),
    (".json", '{"subtasks": {"a": {}, "a": {"in_dim": 2}}}', "duplicate key 'a'"),
])
def test_a_duplicate_key_in_a_graph_file_is_refused(tmp_path, suffix, text, message):
    """Python's ``add_subtask`` refuses a second node of one name; a file used to keep the last silently."""
    path = tmp_path / f"g{suffix}"
    path.write_text(text)
    with pytest.raises(GraphError, match=message):
        TaskGraph.load(path)


def test_invalid_yaml(tmp_path):
    path = tmp_path / "g.yaml"
    path.write_text("subtasks: {a: [1, 2\n")
    with pytest.raises(GraphError, match="is not valid YAML"):
        TaskGraph.load(path)


def test_invalid_json(tmp_path):
    path = tmp_path / "g.json"
    path.write_text("{not json")
    with pytest.raises(GraphError, match="is not valid JSON"):
        TaskGraph.load(path)


def test_missing_file_and_unknown_suffix(mixed, tmp_path):
    with pytest.raises(GraphError, match="no task graph file at"):
        TaskGraph.load(tmp_path / "missing.yaml")
    with pytest.raises(GraphError, match="unknown task graph file type '.txt'"):
        mixed.save(tmp_path / "g.txt")
    (tmp_path / "g.txt").write_text("")
    with pytest.raises(GraphError, match="unknown task graph file type '.txt'"):
        TaskGraph.load(tmp_path / "g.txt")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([1, 2], "must hold a mapping, got list"),
        ({"subtasks": ["a", "b"]}, "'subtasks' must map each subtask name to its spec"),
        ({"subtasks": {"a": 3}}, "subtask 'a': the spec must be a mapping"),
        ({"subtasks": {"a": {"attrs": {"kind": "x"}}}}, "subtask 'a': attribute 'kind' clashes"),
        ({"subtasks": {"a": {}, "b": {}}, "dependencies": [["a"]]}, r"a \[parent, child\] pair, got \['a'\]"),
        ({"subtasks": {"a": {}}, "dependencies": [["a", "b"]]}, "unknown subtask 'b'"),
        ({"subtasks": {}}, "empty"),
    ],
)
def test_from_dict_errors(data, message):
    with pytest.raises(GraphError, match=message):
        TaskGraph.from_dict(data)


# ---------------------------------------------------------- networkx and PyG
def test_networkx_round_trip(mixed):
    dag = mixed.to_networkx()
    assert isinstance(dag, nx.DiGraph)
    assert list(dag.nodes) == mixed.names and sorted(dag.edges) == sorted(mixed.edges)
    assert dag.graph["name"] == "mixed"
    assert dag.nodes["traffic"]["num_classes"] == 2
    assert TaskGraph.from_networkx(dag) == mixed


def test_from_networkx_keeps_other_attributes_in_attrs():
    dag = nx.DiGraph()
    dag.add_node("a", in_dim=3, colour="red")
    dag.add_node("b", kind="classification", num_classes=4)
    dag.add_edge("a", "b")
    graph = TaskGraph.from_networkx(dag)
    assert graph.subtask("a").in_dim == 3 and graph.subtask("a").attrs == {"colour": "red"}
    assert graph.subtask("b").num_classes == 4 and graph.input_width("b") == 1


def test_from_networkx_errors():
    with pytest.raises(GraphError, match="needs a networkx.DiGraph, got Graph"):
        TaskGraph.from_networkx(nx.Graph([("a", "b")]))
    named = nx.DiGraph()
    named.add_node("a", name="A")
    with pytest.raises(GraphError, match="attribute 'name' clashes"):
        TaskGraph.from_networkx(named)
    with pytest.raises(GraphError, match="name must be a non-empty string, got 1"):
        TaskGraph.from_networkx(nx.DiGraph([(1, 2)]))


def test_to_pyg_edge_index_matches_edges(mixed):
    edge_index, names = mixed.to_pyg()
    assert names == mixed.names
    assert edge_index.dtype == torch.long and edge_index.shape == (2, len(mixed.edges))
    assert [(names[u], names[v]) for u, v in edge_index.t().tolist()] == mixed.edges


def test_to_pyg_without_edges():
    edge_index, names = TaskGraph().add_subtask("a").to_pyg()
    assert edge_index.shape == (2, 0) and names == ["a"]


def test_example_define_task_graph_runs(tmp_path, capsys):
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).parents[1] / "examples" / "define_task_graph.py"))
    example["main"](tmp_path)
    assert (tmp_path / "delivery.yaml").exists() and (tmp_path / "delivery.png").exists()
    assert "TaskGraph('delivery', 5 subtasks" in capsys.readouterr().out
