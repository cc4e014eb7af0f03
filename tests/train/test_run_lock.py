"""One writer per run directory: a second fit or evaluate of a run being written is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

import graphmeta as gm


class SecondWriter:
    """A hook that, during the first writer's fit, tries ``attempt()`` once and keeps what it raised."""

    def __init__(self, attempt) -> None:
        self.attempt, self.error = attempt, None

    def after_step(self, event) -> None:
        if event.step == 1:
            with pytest.raises(gm.ConfigError) as error:
                self.attempt()
            self.error = str(error.value)


def test_a_second_fit_of_a_run_being_trained_is_refused_naming_the_writer(make_trainer):
    second = make_trainer(steps=4)
    hook = SecondWriter(lambda: second.fit(resume=True))
    first = make_trainer(steps=4)
    first.add_hook(hook)
    first.fit()
    assert f"run {first.run.path} is being written by another process (pid {os.getpid()} on " in hook.error
    assert "give this run another name (train.name)" in hook.error
    assert first.step == 4 and second.step == 0
    assert len([r for r in first.run.read_metrics() if r["split"] == "val"]) == 2  # the second wrote nothing


def test_an_evaluation_of_a_run_being_trained_is_refused(make_trainer):
    first = make_trainer(steps=2)
    hook = SecondWriter(lambda: make_trainer(steps=2).evaluate(num_tasks=2, ablation=False))
    first.add_hook(hook)
    first.fit()
    assert "is being written by another process" in hook.error
    assert "evaluation" not in first.run.read_summary()


def test_the_lock_is_released_after_fit_and_when_its_holder_is_killed(make_trainer, tmp_path):
    trainer = make_trainer(steps=2)
    trainer.fit()
    trainer.evaluate(num_tasks=2, ablation=False)  # after fit, the same run takes the lock again
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from graphmeta.train.run_lock import RunLock
        RunLock({str(trainer.run.path)!r}).acquire()
        print("held", flush=True)
        time.sleep(600)
    """)], stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(gm.ConfigError, match=rf"being written by another process \(pid {holder.pid} on "):
            make_trainer(steps=3).fit(resume=True, allow_changes=True)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=60)
    assert make_trainer(steps=3).fit(resume=True, allow_changes=True)["status"] == "completed"
