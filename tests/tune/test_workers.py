"""Workers: kill -9 in the middle of a trial, then the same command again; parallel workers on one study.

Workers here are forks of the test process (a new Python process would spend most of the test
importing torch); ``--workers`` starting real worker processes is tested with the command.
"""

import multiprocessing
import os
import signal
import subprocess
import sys
import time

import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState

import graphmeta as gm
from graphmeta.tune.workers import this_worker, worker_has_ended


def load(folder) -> optuna.Study:
    return optuna.load_study(study_name=folder.name,
                             storage=JournalStorage(JournalFileBackend(str(folder / "study.journal"))))


def start(path) -> multiprocessing.Process:
    """A worker on the study of ``path``, as if ``graphmeta tune PATH`` ran in another terminal."""
    worker = multiprocessing.get_context("fork").Process(target=gm.tune, args=(path,), kwargs={"progress": False})
    worker.start()
    return worker


def test_a_worker_is_known_by_its_process():
    me = this_worker()
    assert not worker_has_ended(me)
    assert worker_has_ended({**me, "started": "0"})  # its process id, used by another process since
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    assert worker_has_ended({**me, "pid": child.pid})
    assert not worker_has_ended({**me, "host": "another-machine", "pid": child.pid})  # cannot tell: left alone


def test_a_worker_killed_mid_trial_leaves_it_failed_and_the_study_goes_on(tiny_file, study_folder, capsys):
    path = tiny_file(train={"steps": 100, "val_every": 50, "checkpoint_every": 10, "log_every": 10})
    worker = start(path)
    second_trial = study_folder / "trials" / "0001" / "seed-0" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 120
    while not second_trial.exists() and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert worker.is_alive(), f"the worker ended first, exit code {worker.exitcode}"
    os.kill(worker.pid, signal.SIGKILL)
    worker.join()
    before = load(study_folder).trials
    assert [t.state for t in before] == [TrialState.COMPLETE, TrialState.RUNNING]

    study = gm.tune(path).study  # the same command again
    assert [t.state for t in study.trials] == [TrialState.COMPLETE, TrialState.FAIL, TrialState.COMPLETE]
    assert (study.trials[0].value, study.trials[0].params) == (before[0].value, before[0].params)
    assert study.trials[1].user_attrs["failure"] == f"interrupted: worker {worker.pid} on {os.uname().nodename} " \
                                                    "ended during the trial"
    assert "trial 1 failed: its worker ended during it" in capsys.readouterr().out


def test_workers_in_two_terminals_run_exactly_the_trials_asked_for(tiny_file, study_folder):
    path = tiny_file(train={"steps": 20, "val_every": 10}, tune={"n_trials": 4})
    workers = [start(path) for _ in range(2)]
    for worker in workers:
        worker.join()
    assert [worker.exitcode for worker in workers] == [0, 0]
    trials = load(study_folder).trials
    assert len(trials) == 4 and all(t.state == TrialState.COMPLETE for t in trials)
    assert len({t.user_attrs["worker"]["pid"] for t in trials}) == 2
    assert len({t.params["model.inner_lr"] for t in trials}) == 4  # seeded per trial, not per worker
