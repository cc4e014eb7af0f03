"""Fault injection where graphmeta promises that nothing is lost.

* Every atomic writer (checkpoints, config, summary and evaluation JSON, the rewritten metrics)
  whose write fails midway (the disk fills up: the process's file-size limit is lowered, so the
  kernel refuses the rest of the write) or whose writer raises midway leaves the previous file
  byte for byte, and no temporary file behind.
* An append to ``metrics.jsonl`` that fails midway keeps every earlier record readable.
* A run whose checkpoint write fails resumes from the previous checkpoint and ends bit for bit
  like the uninterrupted run; a resume restores every global generator (Python, NumPy, torch),
  so a user's model with dropout resumes bit-identically. (A run killed by SIGKILL:
  ``tests/commands/test_train_command.py``.)
"""

from __future__ import annotations

import contextlib
import dataclasses
import random
import re
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

import graphmeta as gm
from graphmeta.errors import RunStorageError
from graphmeta.train import Hook, RunDirectory
from graphmeta.train.checkpoint import atomic_write, atomic_write_text, load_checkpoint, save_checkpoint
from tests.train.conftest import TINY


@contextlib.contextmanager
def disk_full_after(size: int) -> Iterator[None]:
    """Writes past ``size`` bytes into any file fail with ``OSError`` (EFBIG) while inside."""
    resource = pytest.importorskip("resource", reason="the file-size limit that simulates a full disk is POSIX")
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write raises, not kills
    resource.setrlimit(resource.RLIMIT_FSIZE, (size, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)


def files_in(directory: Path) -> dict[str, bytes]:
    return {str(path.relative_to(directory)): path.read_bytes() for path in sorted(directory.rglob("*"))
            if path.is_file()}


BIG_CONFIG = {"model": {"hidden": list(range(3000))}, "train": {"steps": 10}}
#: Each writer: (write the old content, write the new content), both into a run directory.
WRITERS: dict[str, tuple[Callable[[RunDirectory], object], Callable[[RunDirectory], object]]] = {
    "atomic_write_text": (lambda run: atomic_write_text(run.path / "notes.txt", "old"),
                          lambda run: atomic_write_text(run.path / "notes.txt", "new " * 5000)),
    "save_checkpoint": (lambda run: save_checkpoint({"step": 1, "weights": torch.ones(10)}, run.last),
                        lambda run: save_checkpoint({"step": 2, "weights": torch.randn(20_000)}, run.last)),
    "write_config": (lambda run: run.write_config({"train": {"steps": 5}}),
                     lambda run: run.write_config(BIG_CONFIG)),
    "write_json": (lambda run: run.write_json(run.evaluation("test", 1), {"loss": 1.0}),
                   lambda run: run.write_json(run.evaluation("test", 1), BIG_CONFIG)),
    "update_summary": (lambda run: run.update_summary("training", {"steps": 3}),
                       lambda run: run.update_summary("evaluation", BIG_CONFIG)),
    "truncate_metrics": (lambda run: [run.log({"step": s, "split": "train", "pad": "x" * 4000}) for s in range(4)],
                         lambda run: run.truncate_metrics(2)),
}


@pytest.mark.parametrize("writer", WRITERS)
def test_a_write_that_fails_midway_leaves_the_previous_file(tmp_path, writer):
    write_old, write_new = WRITERS[writer]
    dry_run = RunDirectory(tmp_path / "dry")
    write_old(dry_run)
    before_new = files_in(dry_run.path)
    write_new(dry_run)
    new_size, changed = max((len(data), name) for name, data in files_in(dry_run.path).items()
                            if before_new.get(name) != data)

    run = RunDirectory(tmp_path / "run")
    write_old(run)
    old = files_in(run.path)
    target = run.path / changed
    with pytest.raises(RunStorageError, match=re.escape(f"cannot write {target}: File too large (") + r"[\d.]+ \w+ free "
                       + re.escape(f"in {target.parent}); the previous {target.name} is intact")), \
            disk_full_after(new_size // 2):
        write_new(run)
    assert files_in(run.path) == old  # byte for byte, and no temporary file left behind


def test_a_writer_that_raises_midway_leaves_the_previous_file(tmp_path):
    path = atomic_write_text(tmp_path / "state.bin", "the previous state")

    def half_then_fail(file):
        file.write(b"half of the new st")
        raise KeyboardInterrupt  # an interrupt between two writes

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, half_then_fail)
    assert files_in(tmp_path) == {"state.bin": b"the previous state"}


def test_a_metrics_append_that_fails_midway_keeps_every_earlier_record(tmp_path):
    run = RunDirectory(tmp_path)
    records = [{"step": step, "split": "train", "loss": step / 10} for step in (1, 2, 3)]
    for record in records:
        run.log(record)
    with pytest.raises(RunStorageError, match=re.escape(f"cannot write {run.metrics}: File too large (") + r".*"
                       + re.escape("); its earlier records are intact")), \
            disk_full_after(run.metrics.stat().st_size + 10):
        run.log({"step": 4, "split": "train", "loss": 0.4, "note": "x" * 1000})
    assert run.read_metrics() == records
    run.truncate_metrics(3)  # what a resumed run does first
    run.log({"step": 4, "split": "train", "loss": 0.4})
    assert run.read_metrics() == records + [{"step": 4, "split": "train", "loss": 0.4}]


def test_a_run_whose_checkpoint_write_fails_keeps_the_previous_and_resumes_exactly(make_trainer, assert_same_state):
    reference = make_trainer(name="reference")
    reference.fit()
    written: dict[int, bytes] = {}

    def fill_the_disk_before_the_second_last_checkpoint(event):
        if event.kind == "last" and event.step == 8:
            limit.enter_context(disk_full_after(len(written[4]) // 2))

    def remember(event):
        if event.kind == "last":
            written[event.step] = event.path.read_bytes()

    failing = make_trainer(name="failing", hooks=[Hook(before_checkpoint=fill_the_disk_before_the_second_last_checkpoint,
                                                       after_checkpoint=remember)])
    with contextlib.ExitStack() as limit, pytest.raises(RunStorageError) as refused:
        failing.fit()
    assert f"cannot write {failing.run.last}: File too large" in str(refused.value)
    assert "the previous last.pt is intact" in str(refused.value)
    assert failing.run.last.read_bytes() == written[4]
    assert sorted(path.name for path in failing.run.checkpoints.iterdir()) == ["best.pt", "last.pt"]
    resumed = make_trainer(name="failing")
    resumed.fit(resume=True)
    for checkpoint in ("last", "best"):
        assert_same_state(load_checkpoint(getattr(reference.run, checkpoint))["model"],
                          load_checkpoint(getattr(resumed.run, checkpoint))["model"])


# ----------------------------------------------------------------------------- generators
def draws() -> tuple:
    """One draw of each global generator (CUDA's too, where there is one)."""
    cuda = torch.rand(2, device="cuda").tolist() if torch.cuda.is_available() else []
    return random.random(), float(np.random.random()), *torch.rand(2).tolist(), *cuda


def test_loading_a_checkpoint_restores_every_generator(make_trainer):
    trainer = make_trainer()
    trainer.save()
    expected = [draws() for _ in range(3)]
    random.seed(99), np.random.seed(99), torch.manual_seed(99)
    trainer.load()
    assert [draws() for _ in range(3)] == expected


class DropoutMetaLearner(gm.GraphMetaLearner):
    """A user's model: dropout on the support features while meta-training, drawn from torch's
    global generator."""

    def meta_loss(self, batch, metrics=True):
        if self.training:
            support = dataclasses.replace(batch.support,
                                          features=torch.nn.functional.dropout(batch.support.features, 0.5))
            batch = dataclasses.replace(batch, support=support)
        return super().meta_loss(batch, metrics)


class Interrupt(Exception):
    pass


def test_a_model_with_dropout_resumes_bit_identically_and_every_generator_goes_on(tmp_path, family,
                                                                                  assert_same_state):
    """Killed after step 7 (its last checkpoint at step 4) and resumed, the run ends as the one
    never stopped; a hook drawing from every generator after each step sees the same numbers."""
    def trainer(name: str, seen: dict[int, tuple], crash_at: int | None = None) -> gm.Trainer:
        def after_step(event):
            seen[event.step] = draws()
            if event.step == crash_at:
                raise Interrupt

        torch.manual_seed(0)
        model = DropoutMetaLearner(family.graph, inner_steps=1, inner_lr=0.1, message_passing=False)
        return gm.Trainer(model, family, hooks=[Hook(after_step=after_step)],
                          **{**TINY, "run_dir": str(tmp_path), "seed": 0, "name": name})

    reference_draws: dict[int, tuple] = {}
    reference = trainer("reference", reference_draws)
    reference.fit()
    with pytest.raises(Interrupt):
        trainer("interrupted", {}, crash_at=7).fit()
    resumed_draws: dict[int, tuple] = {}
    resumed = trainer("interrupted", resumed_draws)
    resumed.fit(resume=True)
    assert sorted(resumed_draws) == list(range(5, 13))
    assert resumed_draws == {step: reference_draws[step] for step in range(5, 13)}
    assert_same_state(load_checkpoint(reference.run.last)["model"], load_checkpoint(resumed.run.last)["model"])
    assert_same_state(reference.model.state_dict(), resumed.model.state_dict())


def test_the_disk_full_simulation_really_refuses_writes(tmp_path):
    """The premise of the tests above: inside ``disk_full_after`` a big write fails, after it works."""
    path = tmp_path / "probe"
    with pytest.raises(OSError), disk_full_after(100):
        path.write_bytes(b"x" * 1000)
    assert path.stat().st_size == 100
    path.write_bytes(b"x" * 1000)
    assert path.stat().st_size == 1000
