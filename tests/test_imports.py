"""The package's import graph: no cycles, and lower layers never import higher ones.

:data:`LAYERS` is the one place the layer order is written: each module belongs to the layer of
the longest package prefix listed for it (``graphmeta.learners.banks`` is above the task graph,
``graphmeta.learners``, the specs, below it), and may import only its own layer and the ones
listed before it.

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

#: The layers from the bottom up: (name, the packages and modules in it).
LAYERS = (
    ("foundation", ("graphmeta.errors", "graphmeta.validation", "graphmeta.registry", "graphmeta.allocator")),
    ("learner specs", ("graphmeta.learners",)),
    ("task graph", ("graphmeta.taskgraph",)),
    ("data", ("graphmeta.data",)),
    ("learner banks", ("graphmeta.learners.banks",)),
    ("adaptation", ("graphmeta.adapt",)),
    ("model", ("graphmeta.adapted_graph", "graphmeta.fused_meta_gradient", "graphmeta.model", "graphmeta.testing")),
    ("interop", ("graphmeta.interop",)),
    ("pictures", ("graphmeta.viz",)),
    ("families", ("graphmeta.families",)),
    ("training", ("graphmeta.train",)),
    ("Bayesian networks", ("graphmeta.bayesnet",)),
    ("tuning", ("graphmeta.tune",)),
    ("package", ("graphmeta",)),
    ("commands", ("graphmeta.commands", "graphmeta.cli", "graphmeta.__main__", "graphmeta.cards")),
)


def layer_of(module: str, layers=LAYERS) -> int:
    """The index in ``layers`` of the layer whose longest listed prefix covers ``module``."""
    matches = [(len(prefix), index) for index, (_, prefixes) in enumerate(layers) for prefix in prefixes
               if module == prefix or module.startswith(prefix + ".")]
    if not matches:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in tests/test_imports.py")
    return max(matches)[1]


def upward_imports(graph: nx.DiGraph, layers=LAYERS) -> list[str]:
    """Every import of a module of a higher layer, as ``importer (layer) imports imported (layer)``."""
    return sorted(f"{a} ({layers[layer_of(a, layers)][0]}) imports {b} ({layers[layer_of(b, layers)][0]})"
                  for a, b in graph.edges if layer_of(b, layers) > layer_of(a, layers))


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


# ---------------------------------------------------------------------- the package itself
@pytest.fixture(scope="module")
def graph() -> nx.DiGraph:
    return import_graph(PACKAGE)


def test_no_import_cycles(graph):
    cycles = import_cycles(graph)
    assert not cycles, "import cycles in graphmeta:\n" + "\n".join(" -> ".join(cycle) for cycle in cycles)


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_module_imports_a_module_of_a_higher_layer(graph):
    upward = upward_imports(graph)
    assert not upward, "lower layers import higher ones:\n" + "\n".join(upward)


def test_the_walk_sees_every_module_and_the_known_edges(graph):
    assert {"graphmeta", "graphmeta.taskgraph.graph", "graphmeta.viz.draw", "graphmeta.interop.pgmpy"} <= set(graph)
    assert graph.has_edge("graphmeta.viz.draw", "graphmeta.taskgraph")  # a module-level relative import
    assert graph.has_edge("graphmeta.commands.draw", "graphmeta.interop.pgmpy")  # inside a function


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


def test_an_upward_import_is_found_even_inside_a_function(tmp_path):
    root = write(tmp_path, {
        "toy/__init__.py": "",
        "toy/low/__init__.py": "",
        "toy/low/specs.py": "def later():\n    from ..high import thing\n",
        "toy/low/deep/__init__.py": "from ..specs import later\n",
        "toy/high.py": "from .low.deep import later\nthing = 1\n",
    })
    layers = (("low", ("toy.low",)), ("deeper", ("toy.low.deep",)), ("high", ("toy", "toy.high")))
    assert layer_of("toy.low.deep", layers) == 1 and layer_of("toy.low.specs", layers) == 0
    assert upward_imports(import_graph(root), layers) == ["toy.low.specs (low) imports toy.high (high)"]


def test_walker_finds_no_cycle_in_a_layered_package(tmp_path):
    root = write(tmp_path, {
        "toy/__init__.py": "",
        "toy/low.py": "x = 1\n",
        "toy/high.py": "from .low import x\n\ndef f():\n    import toy.low\n",
    })
    graph = import_graph(root)
    assert list(graph.edges) == [("toy.high", "toy.low")] and import_cycles(graph) == []
