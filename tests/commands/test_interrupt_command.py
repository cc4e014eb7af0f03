"""Commands stopped by SIGINT or SIGTERM: one line on stderr saying what was kept (with the resume
command where there is a run to resume), status ``128 + signal``, no traceback: a run of one
process, a run of two (``--nproc 2``, gloo on the CPU), and an evaluation. And a run stopped by a
full disk: one line naming the file and the space left, the last good checkpoint intact."""

import contextlib
import errno
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from graphmeta.cli import main
from graphmeta.train.checkpoint import load_checkpoint

#: Generous: on a busy 2-core machine, starting processes that import torch takes many seconds.
TIMEOUT_S = 300
#: Once signalled, a run ends within this: a step, a checkpoint and the processes' exits, even on a busy
#: machine; a run that hangs (one process left waiting in a collective) fails here instead.
STOP_TIMEOUT_S = 120
#: torchrun's variables, cleared from the environment of the commands started here.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")


def start(*command: str) -> subprocess.Popen:
    """``command`` started as the leader of a new process group, one thread per process, with SIGINT
    at its default also where the test runner inherited it ignored (a background job), so Python
    turns it into KeyboardInterrupt as it does at a terminal."""
    environment = {key: value for key, value in os.environ.items() if key not in TORCHRUN_VARIABLES}
    return subprocess.Popen(command, env={**environment, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def stderr_once_stopped(process: subprocess.Popen) -> str:
    """The stderr of ``process``, signalled: it must end within STOP_TIMEOUT_S (else it is killed)."""
    try:
        return process.communicate(timeout=STOP_TIMEOUT_S)[1]
    except subprocess.TimeoutExpired:
        children = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True).stdout.split()
        for pid in [process.pid, *map(int, children)]:  # the processes of --nproc left its group
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        pytest.fail(f"still running {STOP_TIMEOUT_S} s after the signal")


def wait_for(path: Path, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not path.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.exists(), f"{path} never appeared: {process.communicate(timeout=TIMEOUT_S)[1]}"


def test_sigterm_checkpoints_prints_the_resume_command_and_exits_143(write_config, tmp_path, capsys):
    config = write_config(train={"steps": 100, "checkpoint_every": 1000, "val_every": 1000, "log_every": 1})
    command = ["train", config, "--no-evaluate", "--set", "train.name=stopped"]
    stopped = subprocess.Popen([sys.executable, "-m", "graphmeta", *command],
                               env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "stopped" / "metrics.jsonl"
    deadline = time.monotonic() + 300
    while '"split": "train"' not in (metrics.read_text() if metrics.exists() else "") and stopped.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    stopped.send_signal(signal.SIGTERM)
    _, err = stopped.communicate(timeout=300)
    assert stopped.returncode == 143, err
    step = load_checkpoint(tmp_path / "runs" / "stopped" / "checkpoints" / "last.pt")["step"]
    assert 0 < step < 100
    run = tmp_path / "runs" / "stopped"
    assert err.strip().splitlines()[-1] == (
        f"SIGTERM received: run {run} stopped after step {step}, saved in {run / 'checkpoints' / 'last.pt'}. "
        f"Resume with: graphmeta train {config} --set train.name=stopped --no-evaluate --resume")
    assert "Traceback" not in err
    assert main([*command, "--resume"]) == 0
    assert load_checkpoint(tmp_path / "runs" / "stopped" / "checkpoints" / "last.pt")["step"] == 100


# each case starts two processes (15-18 s); the second runs with --slow
@pytest.mark.parametrize("signals", [(signal.SIGINT,), pytest.param((signal.SIGTERM, signal.SIGTERM),
                                                                    marks=pytest.mark.slow)],
                         ids=["SIGINT: after the step", "SIGTERM twice: at once"])
def test_a_run_on_two_processes_stops_as_a_run_on_one_does(write_config, tmp_path, signals):
    """The signals go to the launcher's process group, as a Ctrl-C at the terminal does."""
    config = write_config(train={"steps": 10_000, "checkpoint_every": 1, "val_every": 10_000, "log_every": 1})
    command = ["train", config, "--no-evaluate", "--nproc", "2", "--set", "train.name=two"]
    run = tmp_path / "runs" / "two"
    stopped = start(sys.executable, "-m", "graphmeta", *command)
    wait_for(run / "checkpoints" / "last.pt", stopped)
    for number in signals:
        os.killpg(stopped.pid, number)
        time.sleep(0.2)
    err = stderr_once_stopped(stopped)

    name = signal.Signals(signals[0]).name
    assert stopped.returncode == 128 + signals[0], err
    resume = f"Resume with: graphmeta train {config} --set train.name=two --nproc 2 --no-evaluate --resume"
    step = load_checkpoint(run / "checkpoints" / "last.pt")["step"]  # whole: it loads
    if len(signals) == 1:
        expected = f"{name} received: run {run} stopped after step {step}, saved in {run / 'checkpoints' / 'last.pt'}"
        assert err.strip().splitlines() == [f"{expected}. {resume}"]
        summary = json.loads((run / "summary.json").read_text())["training"]
        assert summary["status"] == "stopped" and name in summary["stop_reason"] and summary["world_size"] == 2
        assert max(record["step"] for record in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())) \
            == step  # both processes stopped after the step the checkpoint holds
    else:
        expected = f"a second {name} stopped the 2 processes at once; every file they had written is whole"
        assert err.strip().splitlines() == [f"{expected}. {resume}"]
    assert sorted(path.name for path in (run / "checkpoints").iterdir()) == ["best.pt", "last.pt"]


SIGNALLED_RANK_ONE = """
import os, signal, sys, time

import graphmeta.train.launch as launch
import graphmeta.train.run_loop as run_loop
from graphmeta.cli import main

checkpoint, request_stop = run_loop.RunLoop._checkpoint, run_loop.RunLoop.request_stop
launch.GRACE_S = 2


def noted_request_stop(learner, reason):
    learner.requested = reason
    request_stop(learner, reason)


def signalled_checkpoint(learner, kind):
    if learner.parallel.rank == 1 and kind == "last" and learner.step == 2:
        if sys.argv[1] == "after the agreement":  # the processes agreed to go on: the signal reaches rank 1 alone
            os.kill(os.getpid(), signal.SIGINT)
        else:  # the launcher hands the signal on, but rank 1 ends at once, leaving rank 0 in the checkpoint barrier
            os.kill(os.getppid(), signal.SIGINT)
            while not getattr(learner, "requested", None):  # the one handed on has arrived
                time.sleep(0.01)
            raise KeyboardInterrupt
    checkpoint(learner, kind)


run_loop.RunLoop._checkpoint = signalled_checkpoint  # in the processes too: spawn imports this script
run_loop.RunLoop.request_stop = noted_request_stop
if __name__ == "__main__":
    raise SystemExit(main(sys.argv[2:]))
"""


@pytest.mark.parametrize("moment", ["after the agreement",
                                    pytest.param("ending one process at once", marks=pytest.mark.slow)])
def test_a_signal_one_process_takes_at_another_moment_still_ends_both(write_config, tmp_path, moment):
    """Rank 1 alone takes a SIGINT while step 2 is checkpointed, after the processes agreed to go
    on: both stop after step 3. Or rank 1 ends on it at once (as a process still starting would):
    rank 0, left waiting for it, is killed after the grace period (2 s here), reported in one line."""
    config = write_config(train={"steps": 10_000, "checkpoint_every": 1, "val_every": 10_000, "log_every": 1})
    command = ["train", config, "--no-evaluate", "--nproc", "2", "--set", "train.name=two"]
    run, script = tmp_path / "runs" / "two", tmp_path / "signalled_rank_one.py"
    script.write_text(textwrap.dedent(SIGNALLED_RANK_ONE))
    stopped = start(sys.executable, str(script), moment, *command)
    wait_for(run / "checkpoints" / "last.pt", stopped)
    err = stderr_once_stopped(stopped)

    assert stopped.returncode == 128 + signal.SIGINT, err
    resume = f"Resume with: graphmeta train {config} --set train.name=two --nproc 2 --no-evaluate --resume"
    last = run / "checkpoints" / "last.pt"
    if moment == "after the agreement":
        assert err.strip().splitlines() == [f"SIGINT received: run {run} stopped after step 3, saved in {last}. {resume}"]
        assert load_checkpoint(last)["step"] == 3
        assert json.loads((run / "summary.json").read_text())["training"]["status"] == "stopped"
    else:
        assert err.strip().splitlines() == [
            "SIGINT received: 1 of the 2 processes ended on it, the other had not 2 s later (waiting for it) and was "
            f"killed; every file they had written is whole. {resume}"]
        assert load_checkpoint(last)["step"] in (1, 2)  # whole: it loads


SLOW_EVALUATION = """
import pathlib, sys, time

import graphmeta.train.run_loop as run_loop
from graphmeta.cli import main

evaluate_run = run_loop.evaluate_run


def slow_evaluation(learner, options):
    pathlib.Path(sys.argv[1]).touch()  # the evaluation is under way
    time.sleep(120)
    return evaluate_run(learner, options)


run_loop.evaluate_run = slow_evaluation
raise SystemExit(main(sys.argv[2:]))
"""


# the train case (11 s: a run, then its evaluation interrupted) runs with --slow
@pytest.mark.parametrize("command, number", [("evaluate", signal.SIGINT),
                                             pytest.param("train", signal.SIGTERM, marks=pytest.mark.slow)])
def test_a_signal_during_an_evaluation_says_that_nothing_was_written(write_config, tmp_path, command, number):
    config = write_config()
    run = tmp_path / "runs" / "tiny"
    if command == "evaluate":
        assert main(["train", config, "--no-evaluate"]) == 0
    script, marker = tmp_path / "slow_evaluation.py", tmp_path / "evaluating"
    script.write_text(textwrap.dedent(SLOW_EVALUATION))
    arguments = [str(run)] if command == "evaluate" else [config]
    stopped = start(sys.executable, str(script), str(marker), command, *arguments)
    wait_for(marker, stopped)
    os.killpg(stopped.pid, number)
    _, err = stopped.communicate(timeout=TIMEOUT_S)

    assert stopped.returncode == 128 + number, err
    kept = ("no evaluation file was written" if command == "evaluate" else
            f"its training is complete and saved, its evaluation was not written: evaluate it with graphmeta "
            f"evaluate {run}")
    under_way = f"{signal.Signals(number).name} received during the evaluation of {run}"
    assert err.strip().splitlines() == [f"{under_way}; {kept}"]
    assert not list(run.glob("evaluation-*.json")) and "evaluation" not in json.loads((run / "summary.json").read_text())
    assert json.loads((run / "summary.json").read_text())["training"]["status"] == "completed"


def test_a_full_disk_stops_the_run_with_one_line_and_its_last_checkpoint_intact(write_config, tmp_path, capsys,
                                                                               monkeypatch):
    """The disk fills up once the first checkpoint (step 4) is written: the next one cannot be."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("the file behind a descriptor is read from /proc")
    config = write_config(train={"log_every": 1000})
    last = tmp_path / "runs" / "tiny" / "checkpoints" / "last.pt"
    fsync = os.fsync

    def full_once_last_pt_exists(descriptor: int) -> None:
        if last.exists() and Path(os.readlink(f"/proc/self/fd/{descriptor}")).name.startswith(".last.pt."):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_once_last_pt_exists)
    assert main(["train", config, "--no-evaluate"]) == 2
    err = capsys.readouterr().err
    assert re.fullmatch(re.escape(f"error: cannot write {last}: No space left on device (") + r"[\d.]+ [kMGT]?B?\w* "
                        + re.escape(f"free in {last.parent}); the previous last.pt is intact (a failed write never "
                                    f"replaces a file). With space to write, resume with: graphmeta train {config} "
                                    "--no-evaluate --resume\n"), err), err
    assert load_checkpoint(last)["step"] == 4 and sorted(path.name for path in last.parent.iterdir()) == [
        "best.pt", "last.pt"]
    monkeypatch.setattr(os, "fsync", fsync)
    assert main(["train", config, "--no-evaluate", "--resume"]) == 0
    assert load_checkpoint(last)["step"] == 12
