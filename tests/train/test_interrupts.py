"""SIGINT and SIGTERM: finish the unit, checkpoint, say how to resume; a second signal stops at once."""

from __future__ import annotations

import os
import pickle
import signal

import pytest

from graphmeta.train.checkpoint import load_checkpoint
from graphmeta.train.interrupts import Interrupted, RunInterrupted, raise_interrupted, reported_as


class SendSignals:
    """A hook that sends this process ``signals`` after unit ``step``."""

    def __init__(self, step: int, *signals: int) -> None:
        self.step, self.signals = step, signals

    def after_step(self, event) -> None:
        if event.step == self.step:
            for number in self.signals:
                os.kill(os.getpid(), number)


@pytest.mark.parametrize("number, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_finishes_the_step_checkpoints_it_and_resumes_bit_for_bit(make_trainer, assert_same_state,
                                                                            tmp_path, number, status):
    trainer = make_trainer(steps=8)
    trainer.add_hook(SendSignals(6, number))
    handler = signal.getsignal(number)
    with pytest.raises(RunInterrupted) as interrupted:
        trainer.fit()
    assert interrupted.value.exit_status == status and not interrupted.value.immediate
    assert f"{signal.Signals(number).name} received: run {trainer.run.path} stopped after step 6" in str(
        interrupted.value)
    assert load_checkpoint(trainer.run.last)["step"] == 6
    summary = trainer.run.read_summary()["training"]
    assert summary["status"] == "stopped" and signal.Signals(number).name in summary["stop_reason"]
    assert signal.getsignal(number) is handler  # the handler before fit is back
    resumed = make_trainer(steps=8)
    resumed.fit(resume=True)
    whole = make_trainer(steps=8, run_dir=str(tmp_path / "whole"))
    whole.fit()
    assert_same_state(resumed.model.state_dict(), whole.model.state_dict())


def test_a_second_signal_stops_at_once_keeping_the_last_checkpoint(make_trainer):
    trainer = make_trainer(steps=8)  # checkpoint_every 4
    trainer.add_hook(SendSignals(6, signal.SIGINT, signal.SIGINT))
    with pytest.raises(RunInterrupted) as interrupted:
        trainer.fit()
    assert interrupted.value.immediate and interrupted.value.exit_status == 130
    assert f"its checkpoint {trainer.run.last} holds step 4" in str(interrupted.value)
    assert load_checkpoint(trainer.run.last)["step"] == 4
    assert make_trainer(steps=8).fit(resume=True)["status"] == "completed"  # the lock went with the interrupt


def test_a_users_script_catches_the_interrupt_from_graphmeta_train(make_trainer):
    import graphmeta.train

    assert "RunInterrupted" in graphmeta.train.__all__ and graphmeta.train.RunInterrupted is RunInterrupted
    trainer = make_trainer(steps=8)
    trainer.add_hook(SendSignals(2, signal.SIGTERM))
    try:
        trainer.fit()
    except graphmeta.train.RunInterrupted as interrupted:
        assert interrupted.step == 2 and interrupted.exit_status == 143
    else:
        raise AssertionError("fit went on after SIGTERM")


@pytest.mark.parametrize("interrupt", [
    RunInterrupted(signal.SIGTERM, "runs/x", "step", 6, "runs/x/checkpoints/last.pt", 4, immediate=False),
    RunInterrupted(signal.SIGINT, "runs/x", "task", 3, "runs/x/checkpoints/last.pt", None, immediate=True),
    Interrupted("SIGTERM received during the evaluation of runs/x; no evaluation file was written", signal.SIGTERM),
])
def test_an_interrupt_crosses_to_the_launcher_whole(interrupt):
    """A process of --nproc hands its interrupt to the launcher, pickled."""
    copy = pickle.loads(pickle.dumps(interrupt))
    assert type(copy) is type(interrupt) and str(copy) == str(interrupt)
    assert copy.exit_status == interrupt.exit_status and vars(copy) == vars(interrupt)


def test_a_signal_outside_fit_says_what_was_under_way():
    with pytest.raises(Interrupted, match=r"^SIGINT received during the evaluation of runs/x; nothing was written$") \
            as interrupted, reported_as("the evaluation of runs/x", "nothing was written"):
        raise KeyboardInterrupt
    assert interrupted.value.exit_status == 130
    with pytest.raises(Interrupted, match="^SIGTERM received during drawing; nothing") as interrupted, \
            reported_as("drawing", "nothing"):
        raise_interrupted(signal.SIGTERM, None)
    assert interrupted.value.exit_status == 143
    stopped = RunInterrupted(signal.SIGINT, "runs/x", "step", 6, "runs/x/checkpoints/last.pt", 4, immediate=False)
    with pytest.raises(RunInterrupted) as interrupted, reported_as("the evaluation of runs/x", "nothing"):
        raise stopped  # a run's own interrupt says more: it passes as it is
    assert interrupted.value is stopped


def test_a_signal_while_no_process_of_nproc_runs_stops_the_launcher():
    from graphmeta.train.launch import HandOnSignals

    handlers = {number: signal.getsignal(number) for number in (signal.SIGINT, signal.SIGTERM)}
    with pytest.raises(Interrupted, match=r"^SIGTERM received while no process was running \(before") as interrupted, \
            HandOnSignals():
        os.kill(os.getpid(), signal.SIGTERM)
    assert interrupted.value.exit_status == 143
    assert {number: signal.getsignal(number) for number in handlers} == handlers
