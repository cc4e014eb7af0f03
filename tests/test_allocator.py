import platform

import pytest
import torch

from graphmeta.allocator import reuse_large_allocations


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc's")
def test_glibc_accepts_the_malloc_settings():
    assert reuse_large_allocations() is True


def test_the_engine_reuses_allocations_once_unless_opted_out(monkeypatch):
    from graphmeta import allocator

    calls = []
    monkeypatch.setattr(allocator, "reuse_large_allocations", lambda: calls.append(True) or True)
    monkeypatch.setattr(allocator, "_engine_has_run", False)
    monkeypatch.setenv(allocator.OPT_OUT_VARIABLE, "0")
    allocator.reuse_large_allocations_once()
    assert calls == []
    monkeypatch.setattr(allocator, "_engine_has_run", False)
    monkeypatch.delenv(allocator.OPT_OUT_VARIABLE)
    allocator.reuse_large_allocations_once()
    allocator.reuse_large_allocations_once()
    assert calls == [True]


def test_the_model_applies_the_setting_when_it_first_runs(monkeypatch):
    import graphmeta as gm
    from graphmeta import model as model_module

    calls = []
    monkeypatch.setattr(model_module, "reuse_large_allocations_once", lambda: calls.append(True))
    graph = gm.TaskGraph().add_subtask("a", in_dim=1)
    data = {"a": (torch.randn(2, 3, 1), torch.randn(2, 3, 1))}
    gm.GraphMetaLearner(graph).meta_loss(gm.TaskBatch.from_tensors(graph, data, data))
    assert calls
