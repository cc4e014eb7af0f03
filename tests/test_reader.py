"""The one graph reader: files, mappings (whole or partial), networkx and pgmpy graphs, and the cycle check."""

from __future__ import annotations

import networkx as nx
import pytest

from graphmeta import ConfigError, GraphError, SpecError, TaskGraph
from graphmeta.taskgraph.reader import read_graph, read_mapping, require_acyclic


def test_a_partial_mapping_takes_its_nodes_from_a_list_or_the_dependencies():
    listed = read_graph({"subtasks": ["a", "b", "c"], "dependencies": [["a", "c"]]}, partial=True)
    assert listed.nodes == ["a", "b", "c"] and listed.edges == [("a", "c")] and listed.specs["b"] == {}
    implied = read_graph({"dependencies": [["a", "c"], ["b", "c"]]}, partial=True)
    assert implied.nodes == ["a", "c", "b"] and implied.edges == [("a", "c"), ("b", "c")]


def test_a_whole_mapping_needs_every_dependency_listed_and_names_the_closest():
    with pytest.raises(GraphError, match=r"dependency 'a' -> 'bb': unknown subtask 'bb' \(did you mean 'b'\?\)"):
        read_mapping({"subtasks": {"a": {}, "b": {}}, "dependencies": [["a", "bb"]]})
    with pytest.raises(GraphError, match="'subtasks' must map each subtask name to its spec, got list"):
        read_mapping({"subtasks": ["a"]})


def test_unknown_keys_are_spec_errors_in_every_mode():
    for partial in (False, True):
        with pytest.raises(SpecError, match=r"unknown key 'num_class' in subtask 'a' \(did you mean 'num_classes'\?\)"):
            read_mapping({"subtasks": {"a": {"num_class": 2}}}, partial=partial)


def test_a_file_reads_like_its_mapping(tmp_path):
    path = tmp_path / "g.json"
    path.write_text('{"name": "g", "subtasks": {"a": {"in_dim": 2}, "b": null}, "dependencies": [["a", "b"]]}')
    structure = read_graph(path)
    assert (structure.name, structure.nodes, structure.edges) == ("g", ["a", "b"], [("a", "b")])
    assert structure.specs == {"a": {"in_dim": 2}, "b": {}}


def test_networkx_and_pgmpy_graphs_are_read_structurally():
    from pgmpy.models import DiscreteBayesianNetwork

    dag = nx.DiGraph()
    dag.add_node("a", kind="classification", num_classes=3, colour="red")
    dag.add_edge("a", "b")
    structure = read_graph(dag)
    assert structure.nodes == ["a", "b"] and structure.edges == [("a", "b")]
    assert structure.specs["a"] == {"kind": "classification", "num_classes": 3, "attrs": {"colour": "red"}}
    network = read_graph(DiscreteBayesianNetwork([("rain", "wet"), ("sprinkler", "wet")]))
    assert network.nodes == ["rain", "wet", "sprinkler"] and network.edges == [("rain", "wet"), ("sprinkler", "wet")]


def test_an_unreadable_form_is_named():
    with pytest.raises(ConfigError, match="cannot read a task graph from a int"):
        read_graph(3)


def test_the_cycle_message_names_the_cycles_and_the_edges_that_break_them():
    require_acyclic(["a", "b"], [("a", "b")])
    with pytest.raises(GraphError, match=r"a cycle: b -> c -> a -> b; .*Removing the edge a -> b would break it"):
        require_acyclic(["b", "c", "a"], [("b", "c"), ("c", "a"), ("a", "b")])
    with pytest.raises(GraphError, match=r"cycles: .*Removing the edge a -> b would break every cycle"):
        require_acyclic(["a", "b", "c"], [("a", "b"), ("b", "a"), ("b", "c"), ("c", "a")])
    with pytest.raises(GraphError, match=r"self-loop on 'a'.*remove the edge a -> a"):
        require_acyclic(["a"], [("a", "a")])


def test_from_networkx_reports_a_cycle_with_the_edge_that_breaks_it():
    with pytest.raises(GraphError, match=r"cycle: a -> b -> a; a task graph must be a DAG\. Removing the edge"):
        TaskGraph.from_networkx(nx.DiGraph([("a", "b"), ("b", "a")]))
