"""The from-scratch baseline, which does not depend on the meta-trained model, is computed once."""

from __future__ import annotations

import time

import torch

from graphmeta.train import evaluation
from graphmeta.train.baseline_cache import CACHE_FOLDER, cached, digest


def test_an_evaluation_again_reads_the_baseline_back_with_the_same_numbers(make_trainer, monkeypatch):
    trainer = make_trainer(steps=2)
    trainer.fit()
    options = {"num_tasks": 6, "ablation": False}
    first = trainer.evaluate(**options).to_dict()
    calls = []
    monkeypatch.setattr(evaluation, "choose_scratch_settings", lambda *args: calls.append(args) or (1, 0.1))
    again = trainer.evaluate(**options, adapt_steps=2).to_dict()
    assert calls == []  # read back: nothing trained from scratch again
    for figure in ("loss", "per_node", "settings"):  # loss_minus_adapted follows the adapted model's steps
        assert again["methods"]["from_scratch"][figure] == first["methods"]["from_scratch"][figure]
    assert len(list((trainer.run.path.parent / CACHE_FOLDER).glob("*.pt"))) == 1


def test_other_tasks_or_settings_are_another_entry_and_a_damaged_entry_is_recomputed(tmp_path):
    values = torch.arange(6.0).reshape(2, 3)
    keys = {digest("from_scratch", values, 0, None), digest("from_scratch", values + 1, 0, None),
            digest("from_scratch", values, 1, None), digest("from_scratch", values.double(), 0, None)}
    assert len(keys) == 4
    key = digest("from_scratch", values)
    computed = []

    def compute():
        computed.append(time.perf_counter())
        return {"loss": values * 2, "steps": 3}

    first = cached(tmp_path, key, compute)
    assert cached(tmp_path, key, compute)["steps"] == 3 and len(computed) == 1
    (tmp_path / f"{key}.pt").write_bytes(b"damaged")
    assert torch.equal(cached(tmp_path, key, compute)["loss"], first["loss"]) and len(computed) == 2
    assert torch.equal(cached(tmp_path, key, compute)["loss"], first["loss"]) and len(computed) == 2


def test_an_entry_without_a_key_the_result_holds_now_is_recomputed(tmp_path):
    """An entry written before the from-scratch result held its squared error (``mse``) is computed
    again and replaced, not read back without it."""
    key = digest("from_scratch", torch.zeros(2))
    cached(tmp_path, key, lambda: {"loss": torch.ones(2), "steps": 3})  # an entry of the older result
    computed = []

    def compute():
        computed.append(1)
        return {"loss": torch.ones(2), "mse": torch.full((2,), 0.5), "steps": 3}

    assert torch.equal(cached(tmp_path, key, compute, required=("mse",))["mse"], torch.full((2,), 0.5))
    assert torch.equal(cached(tmp_path, key, compute, required=("mse",))["mse"], torch.full((2,), 0.5))
    assert computed == [1]  # computed once, then read back
