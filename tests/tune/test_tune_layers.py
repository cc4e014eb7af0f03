"""graphmeta.tune builds on graphmeta.train, never the reverse (the import walker of tests/test_imports.py)."""

import importlib.util
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_train_never_imports_tune():
    spec = importlib.util.spec_from_file_location("import_walker", TESTS / "test_imports.py")
    walker = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(walker)
    graph = walker.import_graph(walker.PACKAGE)
    upward = sorted(f"{a} imports {b}" for a, b in graph.edges
                    if walker.within(a, ("graphmeta.train",)) and walker.within(b, ("graphmeta.tune",)))
    assert not upward
    assert graph.has_edge("graphmeta.tune.objective", "graphmeta.train")
