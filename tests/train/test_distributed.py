"""Data-parallel training (graphmeta.train.distributed): 2 gloo processes against 1, a killed
process restarted by torchrun, evaluation split over processes, and the errors of a bad setup.

The runs on 2 processes are short (a 3-node chain, 20 steps of 4 tasks); most of their time is
each process importing graphmeta. The 2-process run trained without interruption is made once
(module fixture) and compared with one process and with the killed run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml

import graphmeta as gm
from graphmeta.cli import main
from graphmeta.train import RunDirectory, load_config
from graphmeta.train.checkpoint import load_checkpoint
from graphmeta.train.distributed import SINGLE_PROCESS, DataParallelGroup, join_data_parallel_group, restart_count
from graphmeta.train.launch import run_on_processes

CONFIG = {
    "family": {"name": "compositional-chain", "num_nodes": 3},
    "model": {"inner_steps": 1, "inner_lr": 0.1, "message_channels": 8, "message_rounds": 1},
    "train": {"steps": 20, "meta_batch_size": 4, "shots": 3, "query_shots": 5, "outer_lr": 0.01, "val_every": 5,
              "val_tasks": 6, "checkpoint_every": 5, "log_every": 2, "progress": False, "grad_clip": 1.0},
    "evaluate": {"num_tasks": 5, "scratch_steps": 5, "ablation": False},
}
#: Generous: on a busy 2-core machine, starting 2 processes that import torch takes many seconds.
TIMEOUT_S = 600
#: torchrun's variables, cleared from the environment of the checks that need one process.
TORCHRUN_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RESTART_COUNT")


def run_processes(*command: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run ``command`` with 1 thread per process; fail with its output when it fails."""
    environment = {key: value for key, value in os.environ.items() if key not in TORCHRUN_VARIABLES}
    environment["OMP_NUM_THREADS"] = "1"
    result = subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=TIMEOUT_S)
    assert result.returncode == 0, f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}"
    return result


def model_state(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A folder with ``tiny.yaml`` (runs under ``runs/``) and the run ``runs/two``: 20 steps on 2
    processes (``graphmeta train --nproc 2``), not interrupted."""
    folder = tmp_path_factory.mktemp("distributed")
    config = {key: dict(value) for key, value in CONFIG.items()}
    config["train"]["run_dir"] = str(folder / "runs")
    (folder / "tiny.yaml").write_text(yaml.safe_dump(config))
    run_processes(sys.executable, "-m", "graphmeta", "train", "tiny.yaml", "--nproc", "2", "--no-evaluate",
                  "--set", "train.name=two", cwd=folder)
    return folder


@pytest.fixture
def one_process(monkeypatch):
    for name in TORCHRUN_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def train_one_process(root: Path, name: str) -> gm.Trainer:
    trainer = gm.Trainer.from_config(load_config(root / "tiny.yaml", [f"train.name={name}"]))
    trainer.fit()
    return trainer


def test_two_processes_train_as_one_and_their_checkpoints_load_in_one(root, one_process):
    one = model_state(train_one_process(root, "one").run.path)
    two = model_state(root / "runs" / "two")
    assert one.keys() == two.keys()
    # the input statistics behind the shift warning are each process's own share of the rows (rank 0's is saved)
    assert two["input_statistics.count"].sum() < one["input_statistics.count"].sum()
    for name in (name for name in one if not name.startswith("input_statistics.")):
        # atol: Adam's normalised step turns a gradient entry near 0, summed in another order, into a move of ~1e-7
        torch.testing.assert_close(two[name], one[name], rtol=1e-5, atol=1e-6, msg=lambda text: f"{name}: {text}")

    records = RunDirectory(root / "runs" / "two").read_metrics()
    steps = [(record["split"], record["step"]) for record in records]
    assert len(steps) == len(set(steps)) and ("train", 20) in steps  # one writer: every record once
    summary = json.loads((root / "runs" / "two" / "summary.json").read_text())["training"]
    assert summary["status"] == "completed" and summary["world_size"] == 2

    shutil.copytree(root / "runs" / "two", root / "runs" / "two-then-one")  # the fixture's run stays as it is
    resumed = gm.Trainer.from_config(load_config(root / "tiny.yaml", ["train.name=two-then-one", "train.steps=24"]))
    with pytest.warns(UserWarning, match="trained on 2 processes up to step 20 and goes on with 1 process"):
        resumed.fit(resume=True, allow_changes=True)
    assert resumed.step == 24
    changes = resumed.run.read_summary()["world_size_changes"]
    assert changes == [{"after": 20, "unit": "step", "from": 2, "to": 1}]


@pytest.mark.slow  # two processes, about 27 s
def test_evaluation_split_over_two_processes_gives_the_one_process_table(root, one_process):
    trainer = train_one_process(root, "evaluated")
    alone = trainer.evaluate().to_dict()
    result = run_processes(sys.executable, "-m", "graphmeta", "evaluate", str(trainer.run.path), "--nproc", "2",
                           cwd=root)
    assert "evaluating on 2 processes of this machine (torch elastic launch, backend gloo, 1 CPU thread each)" \
        in result.stdout
    split = json.loads(trainer.run.evaluation("test", 1).read_text())  # rank 0 wrote it over the one above
    assert split["num_tasks"] == alone["num_tasks"] == 5
    for method, numbers in alone["methods"].items():
        for node, values in numbers["per_node"].items():
            assert split["methods"][method]["per_node"][node]["loss"] == pytest.approx(values["loss"], rel=1e-6)
        for figure in ("loss", "loss_minus_adapted"):  # every figure the table reports, not only per node
            if figure in numbers:
                assert split["methods"][method][figure] == pytest.approx(numbers[figure], rel=1e-6, abs=1e-9)
        assert split["methods"][method].get("settings") == numbers.get("settings")


WORKER = """
import os, signal, sys

import graphmeta.cli
from graphmeta.train import Hook, Trainer
from graphmeta.train.distributed import restart_count

build = Trainer.from_config.__func__


def from_config(cls, config, hooks=()):
    def kill(event):  # rank 1 dies at step KILL_AT of the first start, as a crashed process would
        if event.step == {kill_at} and event.learner.parallel.rank == 1 and restart_count() == 0:
            os.kill(os.getpid(), signal.SIGKILL)

    return build(cls, config, hooks=[*hooks, Hook(after_step=kill)])


Trainer.from_config = classmethod(from_config)
raise SystemExit(graphmeta.cli.main(["train", "tiny.yaml", "--no-evaluate", "--set", "train.name=killed"]))
"""


@pytest.mark.slow  # two processes and a restart, about 34 s; one process killed and resumed runs by default
def test_a_killed_process_is_restarted_by_torchrun_and_ends_where_the_uninterrupted_run_does(root):
    worker = root / "worker.py"
    worker.write_text(textwrap.dedent(WORKER.format(kill_at=17)))  # after the checkpoint at step 15
    result = run_processes(sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2",
                           "--max-restarts=1", "--monitor-interval=0.1", str(worker), cwd=root)
    assert "resuming" in result.stdout  # the restart went on from checkpoints/last.pt
    records = {name: [{key: value for key, value in record.items() if key != "elapsed_s"}
                      for record in RunDirectory(root / "runs" / name).read_metrics()] for name in ("killed", "two")}
    assert records["killed"] == records["two"]
    killed, uninterrupted = model_state(root / "runs" / "killed"), model_state(root / "runs" / "two")
    assert killed.keys() == uninterrupted.keys()
    for name in killed:
        assert torch.equal(killed[name], uninterrupted[name]), f"{name} differs from the uninterrupted run"


# ------------------------------------------------------- checks that start no process
def test_shares_cover_every_task_once_in_order():
    for tasks, processes in [(8, 2), (7, 3), (5, 5), (3, 4)]:
        shares = [DataParallelGroup(rank, processes).share(tasks) for rank in range(processes)]
        assert [task for share in shares for task in share] == list(range(tasks))
        assert max(map(len, shares)) - min(map(len, shares)) <= 1


def test_a_meta_batch_that_does_not_split_evenly_is_refused():
    with pytest.raises(gm.ConfigError, match=r"meta_batch_size 10 does not split evenly over 4 processes: use a "
                                             r"multiple of 4 \(8 or 12\)"):
        DataParallelGroup(0, 4).check_training("batch", 10)
    with pytest.raises(gm.ConfigError, match=r"meta_batch_size 1 does not split evenly over 2 processes: use a "
                                             r"multiple of 2 \(2\)"):
        DataParallelGroup(1, 2).check_training("batch", 1)
    DataParallelGroup(0, 4).check_training("batch", 12)
    SINGLE_PROCESS.check_training("batch", 10)


def test_online_learning_on_several_processes_is_refused():
    with pytest.raises(gm.ConfigError, match="train.mode 'online' runs in one process, not on 2"):
        DataParallelGroup(1, 2).check_training("online", 4)
    SINGLE_PROCESS.check_training("online", 4)


def test_fewer_tasks_than_processes_cannot_be_split():
    tasks = gm.load_family("compositional-chain", num_nodes=3).sample(2, 3, 5, seed=0)
    with pytest.raises(gm.ConfigError, match="2 tasks cannot be split over 3 processes"):
        DataParallelGroup(0, 3).take(tasks)
    assert DataParallelGroup(1, 2).take(tasks).num_tasks == 1


@pytest.mark.parametrize("environment, message", [
    ({"RANK": "0"}, "RANK is set but not WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT"),
    ({"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "localhost"}, "but not MASTER_PORT"),
    ({"RANK": "one", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "localhost", "MASTER_PORT": "29500"},
     "RANK must be a whole number, got 'one'"),
    ({"RANK": "2", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "localhost", "MASTER_PORT": "29500"},
     "RANK must be in 0 .. WORLD_SIZE - 1"),
])
def test_a_half_set_environment_is_a_clear_error(monkeypatch, one_process, environment, message):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(gm.ConfigError, match=message):
        join_data_parallel_group()


def test_one_process_needs_no_process_group(monkeypatch, one_process):
    assert join_data_parallel_group() == SINGLE_PROCESS
    for name, value in {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "localhost",
                        "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)  # torchrun --nproc-per-node=1
    assert join_data_parallel_group() == SINGLE_PROCESS and not torch.distributed.is_initialized()


def test_nccl_needs_a_gpu(monkeypatch, one_process):
    for name, value in {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "MASTER_ADDR": "localhost",
                        "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(gm.ConfigError, match="train.backend nccl runs on GPUs"):
        join_data_parallel_group("nccl", None)


def test_each_process_takes_the_gpu_of_its_local_rank():
    assert DataParallelGroup(3, 4, local_rank=1).process_device("cuda") == "cuda:1"
    assert DataParallelGroup(3, 4, local_rank=1).process_device("cuda:0") == "cuda:0"  # as given
    assert DataParallelGroup(3, 4, local_rank=1).process_device("cpu") == "cpu"
    assert SINGLE_PROCESS.process_device("cuda") == "cuda"


def test_nproc_under_torchrun_and_restart_count(monkeypatch, one_process):
    with pytest.raises(gm.ConfigError, match=r"run_on_processes\(\): nproc must be an integer >= 1, got 0"):
        run_on_processes(0, print)
    assert restart_count() == 0
    monkeypatch.setenv("TORCHELASTIC_RESTART_COUNT", "1")
    assert restart_count() == 1
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(gm.ConfigError, match="leave out --nproc under torchrun"):
        run_on_processes(2, print)


def test_nproc_refuses_a_meta_batch_it_cannot_split_before_starting_processes(tmp_path, capsys, one_process):
    config = {key: dict(value) for key, value in CONFIG.items()}
    config["train"].update(run_dir=str(tmp_path / "runs"), meta_batch_size=3)
    (tmp_path / "tiny.yaml").write_text(yaml.safe_dump(config))
    assert main(["train", str(tmp_path / "tiny.yaml"), "--nproc", "2"]) == 2
    assert "train.meta_batch_size 3 does not split evenly over 2 processes" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
