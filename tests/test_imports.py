"""The package's import graph: no cycles, and lower layers never import higher ones.

Every module of ``graphmeta`` is parsed (never imported), and every import of a graphmeta
module is collected, at module level and inside functions alike: an import deferred into a
function still ties the two modules together, it only hides the tie until that function
runs. Relative imports are resolved, and ``from package import name`` counts as importing
the submodule ``package.name`` when there is one. Importing ``a.b.c`` also runs the
``__init__`` of ``a.b`` (unless the importer already lives inside it), so that is an edge too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "graphmeta"

# (the modules below, the packages they must never import)
LAYERS = {
    "core": (("graphmeta.taskgraph", "graphmeta.data", "graphmeta.learners",
              "graphmeta.adapt"),
             ("graphmeta.train", "graphmeta.commands", "graphmeta.viz", "graphmeta.families", "graphmeta.bayesnet")),
    "interop": (("graphmeta.interop",),
                ("graphmeta.families", "graphmeta.bayesnet", "graphmeta.train", "graphmeta.commands", "graphmeta.viz")),
    "viz": (("graphmeta.viz",), ("graphmeta.families", "graphmeta.bayesnet", "graphmeta.train", "graphmeta.commands")),
}


def module_files(root: Path) -> dict[str, Path]:
    """``{dotted module name: source file}`` of every module of the package at ``root``."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" in path.parts:
            continue
        parts = [root.name, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules that module ``name`` (source at ``path``) imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                source = f"{base}.{node.module}" if node.module else base
            else:
                source = node.module or ""
            submodules = {f"{source}.{alias.name}" for alias in node.names} & modules.keys()
            found.update(submodules)
            if len(submodules) < len(node.names):  # some names are attributes of the module itself
                found.add(source)
    edges = set()
    for target in found:
        parts = target.split(".")
        for end in range(1, len(parts) + 1):  # the packages a.b of a.b.c run their __init__ first
            prefix = ".".join(parts[:end])
            inside = name == prefix or name.startswith(prefix + ".")
            if prefix in modules and prefix != name and (end == len(parts) or not inside):
                edges.add(prefix)
    return edges


def import_graph(root: Path) -> nx.DiGraph:
    """The directed graph ``importer -> imported`` over the modules of the package at ``root``."""
    modules = module_files(root)
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for name, path in modules.items():
        graph.add_edges_from((name, target) for target in imported_modules(name, path, modules))
    return graph


def import_cycles(graph: nx.DiGraph) -> list[list[str]]:
    """One cycle per group of modules that import each other, as ``[a, b, ..., a]``, shortest first."""
    cycles = []
    for group in nx.strongly_connected_components(graph):
        if len(group) > 1:
            loop = [edge[0] for edge in nx.find_cycle(graph.subgraph(group))]
            cycles.append([*loop, loop[0]])
    return sorted(cycles, key=lambda cycle: (len(cycle), cycle))


def within(module: str, packages: tuple[str, ...]) -> bool:
    return any(module == package or module.startswith(package + ".") for package in packages)


# ---------------------------------------------------------------------- the package itself
@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph(PACKAGE)


def test_no_import_cycles(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in graphmeta:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


@pytest.mark.parametrize("layer", LAYERS)
def test_lower_layers_never_import_higher_ones(graph, layer):
    lower, higher = LAYERS[layer]
    upward = sorted(f"{importer} imports {imported}" for importer, imported in graph.edges
                    if within(importer, lower) and within(imported, higher))
    assert not upward, "lower layers import higher ones:\n" + "\n".join(upward)


def test_the_walk_sees_every_module_and_the_known_edges(graph):
    assert {"graphmeta", "graphmeta.taskgraph.graph", "graphmeta.viz.draw", "graphmeta.interop.pgmpy"} <= set(graph)
    assert graph.has_edge("graphmeta.viz.draw", "graphmeta.taskgraph")  # a module-level relative import
    assert graph.has_edge("graphmeta.taskgraph.graph", "graphmeta.interop.pgmpy")  # inside a method


# ------------------------------------------------------------------- the walker, on a toy package
def write(root: Path, files: dict[str, str]) -> Path:
    for relative, text in files.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root / "toy"


def test_walker_resolves_relative_and_function_level_imports(tmp_path):
    root = write(tmp_path, {
        "toy/__init__.py": "",
        "toy/a.py": "from . import b\nfrom .sub import c\n",
        "toy/b.py": "def later():\n    from .sub.c import thing\n",
        "toy/sub/__init__.py": "from .c import thing\n",
        "toy/sub/c.py": "import os\nfrom .. import b, missing\nfrom ..a import name\nthing = 1\n",
    })
    graph = import_graph(root)
    assert set(graph.successors("toy.a")) == {"toy.b", "toy.sub", "toy.sub.c"}
    assert set(graph.successors("toy.b")) == {"toy.sub", "toy.sub.c"}  # the package __init__ runs first
    assert set(graph.successors("toy.sub")) == {"toy.sub.c"}
    assert set(graph.successors("toy.sub.c")) == {"toy", "toy.b", "toy.a"}  # not its own package toy.sub
    cycles = import_cycles(graph)
    assert len(cycles) == 1 and cycles[0][0] == cycles[0][-1]
    assert set(cycles[0]) <= {"toy.a", "toy.b", "toy.sub", "toy.sub.c"}


def test_walker_finds_no_cycle_in_a_layered_package(tmp_path):
    root = write(tmp_path, {
        "toy/__init__.py": "",
        "toy/low.py": "x = 1\n",
        "toy/high.py": "from .low import x\n\ndef f():\n    import toy.low\n",
    })
    graph = import_graph(root)
    assert list(graph.edges) == [("toy.high", "toy.low")] and import_cycles(graph) == []
