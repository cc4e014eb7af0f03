"""Checkpoints: atomic writes, weights-only loading, corrupt and truncated files, RNG state."""

import random

import numpy as np
import pytest
import torch

import graphmeta as gm
from graphmeta.train.checkpoint import atomic_write_text, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_save_and_load(tmp_path):
    path = save_checkpoint({"step": 3, "weights": torch.arange(4.0), "nested": {"a": [1, (2, 3)], "b": None}},
                           tmp_path / "c.pt")
    state = load_checkpoint(path, required=("step",))
    assert state["step"] == 3 and torch.equal(state["weights"], torch.arange(4.0))
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]  # no temporary file left behind


def test_unloadable_state_is_refused_and_keeps_the_old_file(tmp_path):
    path = save_checkpoint({"step": 1}, tmp_path / "c.pt")
    with pytest.raises(gm.CheckpointError, match="c.pt"):
        save_checkpoint({"step": 2, "bad": object()}, path)
    assert load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.pt"]


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_checkpoint_names_the_file(tmp_path, damage):
    path = save_checkpoint({"step": 1, "weights": torch.randn(100)}, tmp_path / "last.pt")
    data = path.read_bytes()
    path.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"not a checkpoint" * 10}[damage])
    with pytest.raises(gm.CheckpointError, match=r"last\.pt is truncated or corrupt") as error:
        load_checkpoint(path)
    assert "()" not in str(error.value)


def test_empty_checkpoint_says_it_is_empty(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"")
    with pytest.raises(gm.CheckpointError, match=r"last\.pt is empty \(0 bytes\)"):
        load_checkpoint(tmp_path / "last.pt")


class Payload:
    """A picklable object that is not a tensor: what a malicious checkpoint would carry."""


def test_unsafe_checkpoint_names_the_global_and_never_suggests_unsafe_loading(tmp_path):
    torch.save({"format": 2, "payload": Payload()}, tmp_path / "evil.pt")
    with pytest.raises(gm.CheckpointError, match=r"evil\.pt holds the Python object '[\w.]*Payload'") as error:
        load_checkpoint(tmp_path / "evil.pt")
    assert "weights_only" not in str(error.value) and "False" not in str(error.value)


def test_checkpoint_of_an_older_format_names_the_version_that_wrote_it(tmp_path):
    torch.save({"format": 1, "model": {"banks.banks.0.theta.0": torch.zeros(1)}}, tmp_path / "old.pt")
    with pytest.raises(gm.CheckpointError, match=r"old\.pt is a checkpoint of format 1, written by graphmeta 0\.1"):
        load_checkpoint(tmp_path / "old.pt")


def test_missing_and_foreign_checkpoints(tmp_path):
    with pytest.raises(gm.CheckpointError, match="no checkpoint at"):
        load_checkpoint(tmp_path / "nothing.pt")
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(gm.CheckpointError, match="foreign.pt is not a graphmeta checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")
    save_checkpoint({"step": 1}, tmp_path / "c.pt")
    with pytest.raises(gm.CheckpointError, match="lacks 'model'"):
        load_checkpoint(tmp_path / "c.pt", required=("step", "model"))


def test_atomic_text_write_replaces(tmp_path):
    path = atomic_write_text(tmp_path / "a" / "x.txt", "one")
    atomic_write_text(path, "two")
    assert path.read_text() == "two" and [p.name for p in path.parent.iterdir()] == ["x.txt"]


def test_rng_state_round_trip(tmp_path):
    random.random(), np.random.normal(), torch.randn(1)  # numpy now caches a gaussian
    save_checkpoint({"rng": rng_state()}, tmp_path / "rng.pt")
    expected = (random.random(), np.random.normal(), np.random.normal(), torch.randn(3))
    set_rng_state(load_checkpoint(tmp_path / "rng.pt")["rng"])
    again = (random.random(), np.random.normal(), np.random.normal(), torch.randn(3))
    assert expected[:3] == again[:3] and torch.equal(expected[3], again[3])


def test_resume_from_corrupt_last_fails_and_keeps_best(make_trainer):
    trainer = make_trainer()
    trainer.fit()
    best = trainer.run.best.read_bytes()
    trainer.run.last.write_bytes(trainer.run.last.read_bytes()[:100])
    resumed = make_trainer()
    with pytest.raises(gm.CheckpointError, match=r"last\.pt"):
        resumed.fit(resume=True)
    assert trainer.run.best.read_bytes() == best


def test_checkpoint_of_another_model_is_refused(make_trainer):
    trainer = make_trainer()
    trainer.save()
    other = make_trainer(message_passing=True)
    with pytest.raises(gm.CheckpointError, match=r"last\.pt was written by another model than this one: model\.message_passing: False -> True"):
        other.load()


def _table_model() -> gm.GraphMetaLearner:
    """alarm's Table nodes: two banks of different table sizes."""
    torch.manual_seed(0)
    return gm.GraphMetaLearner(gm.load_family("alarm-latent", learner="table").graph)


def test_a_checkpoint_with_another_bank_layout_is_refused_in_one_line():
    from graphmeta.train.checkpoint import restore_model_and_optimizer

    model = _table_model()
    assert len(model.banks) == 2
    optimizer = torch.optim.Adam(model.parameters())
    state = {"model_config": model.config, "optimizer": optimizer.state_dict(),
             "model": {k: v for k, v in model.state_dict().items() if not k.startswith("banks.banks.1.")}}
    with pytest.raises(gm.CheckpointError, match=r"^old\.pt holds 1 learner banks where this model has 2: ") as error:
        restore_model_and_optimizer(model, optimizer, state, "old.pt")
    assert "\n" not in str(error.value)


def test_a_checkpoint_that_does_not_fit_names_the_first_problem_in_one_line():
    from graphmeta.train.checkpoint import restore_model_and_optimizer

    model = _table_model()
    optimizer = torch.optim.Adam(model.parameters())
    weights = model.state_dict()
    weights["banks.banks.0.theta.log_counts"] = weights["banks.banks.0.theta.log_counts"][:, :1]
    state = {"model_config": model.config, "optimizer": optimizer.state_dict(), "model": weights}
    with pytest.raises(gm.CheckpointError, match=r"^c\.pt does not fit this model: size mismatch for "
                                                 r"banks\.banks\.0\.theta\.log_counts") as error:
        restore_model_and_optimizer(model, optimizer, state, "c.pt")
    assert "\n" not in str(error.value)
