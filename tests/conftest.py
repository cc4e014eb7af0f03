"""Shared fixtures: small hand-built graphs and pgmpy's bundled networks (loaded once per session)."""

from __future__ import annotations

import os

os.environ.setdefault("MPLBACKEND", "Agg")  # never need a display, whatever imports pyplot

import pytest
import torch

from graphmeta import GNN, MLP, TaskGraph, taskgraph_from_pgmpy


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny tensors gain nothing from threads, and on a busy machine threads wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def fresh_compiler():
    """A test that compiles starts from an empty compiler cache and graph counters, so it compiles
    afresh and counts its own graphs (``torch._dynamo.utils.counters``); used by the compile tests."""
    from torch._dynamo.utils import counters

    torch._dynamo.reset()
    counters.clear()
    yield
    torch._dynamo.reset()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--slow", action="store_true", help="also run tests marked slow (big pgmpy networks)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "slow: takes many seconds; runs only with --slow")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--slow"):
        return
    skip = pytest.mark.skip(reason="slow; run with --slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def mixed() -> TaskGraph:
    """Two roots feeding a classification node that feeds a regression node; one GNN root."""
    return (
        TaskGraph("mixed")
        .add_subtask("weather", in_dim=4, kind="classification", num_classes=3, learner=MLP(hidden=(8,)))
        .add_subtask("x", in_dim=2)
        .add_subtask("molecule", in_dim=5, learner=GNN(hidden=16, layers=3), attrs={"source": "qm9"})
        .add_subtask("traffic", in_dim=1, kind="classification", num_classes=2)
        .add_subtask("delay", out_dim=2)
        .add_dependency("weather", "traffic")
        .add_dependency("x", "traffic")
        .add_dependency("traffic", "delay")
        .add_dependency("molecule", "delay")
        .add_dependency("weather", "delay")
    )


@pytest.fixture(scope="session")
def alarm() -> TaskGraph:
    return taskgraph_from_pgmpy("alarm")


@pytest.fixture(scope="session")
def asia_model():
    from graphmeta.interop.pgmpy import load_bundled

    return load_bundled("asia")
