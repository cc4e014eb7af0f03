"""SIGINT and SIGTERM: finish the unit, checkpoint, say how to resume; a second signal stops at once."""

from __future__ import annotations

import os
import signal

import pytest

from graphmeta.train.checkpoint import load_checkpoint
from graphmeta.train.interrupts import RunInterrupted


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
