"""`graphmeta train` and `graphmeta evaluate`: runs, resume after SIGKILL and with a changed config,
config errors, evaluations kept per number of adaptation steps."""

import json
import os
import signal
import subprocess
import sys
import time

import torch
import yaml

from graphmeta.cli import main
from graphmeta.train.checkpoint import load_checkpoint


def test_train_then_evaluate(write_config, tmp_path, capsys):
    config = write_config(model={"message_passing": True})
    assert main(["train", config, "--per-node"]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "tiny"
    assert "after adaptation" in out and "ablation: no message passing" in out and "per-node query loss" in out
    assert f"run directory: {run}" in out
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "evaluation-test-1step.json", "checkpoints/best.pt",
                 "checkpoints/last.pt", "figures/curves.png", "figures/graph-test-loss.png",
                 "figures/graph-test-improvement.png", "ablation/summary.json", "ablation/figures/curves.png"):
        assert (run / name).is_file(), name

    assert main(["evaluate", str(run), "--split", "val", "--num-tasks", "4", "--no-ablation",
                 "--set", "scratch_steps=2"]) == 0
    out = capsys.readouterr().out
    assert "4 val tasks" in out and "trained from scratch" in out and "ablation" not in out.split("wrote")[0]
    result = json.loads((run / "evaluation-val-1step.json").read_text())
    assert result["num_tasks"] == 4 and set(result["methods"]) == {"no_adaptation", "adapted", "from_scratch"}


def test_evaluate_keeps_the_results_of_each_number_of_adaptation_steps(write_config, tmp_path, capsys):
    assert main(["train", write_config(train={"steps": 2, "val_every": 2}), "--no-evaluate"]) == 0
    run = tmp_path / "runs" / "tiny"
    tables = {}
    for steps in (1, 3):
        capsys.readouterr()
        assert main(["evaluate", str(run), "--num-tasks", "4", "--set", f"adapt_steps={steps}",
                     "--set", "scratch_steps=2"]) == 0
        tables[steps] = capsys.readouterr().out
    assert "1 adaptation step (" in tables[1] and "after adaptation (1 step)" in tables[1]
    assert "3 adaptation steps" in tables[3] and "after adaptation (3 steps)" in tables[3]
    assert f"wrote {run / 'evaluation-test-3steps.json'}" in tables[3]
    for steps, name in ((1, "evaluation-test-1step.json"), (3, "evaluation-test-3steps.json")):
        assert json.loads((run / name).read_text())["adapt_steps"] == steps


def test_evaluate_help_shows_percent_signs_once(capsys):
    try:
        main(["evaluate", "--help"])
    except SystemExit:
        pass
    out = capsys.readouterr().out
    assert "95%" in out and "%%" not in out


def test_config_errors_exit_2_naming_the_key(write_config, capsys):
    assert main(["train", write_config(train={"stpes": 3})]) == 2
    assert "unknown key 'stpes'" in capsys.readouterr().err
    assert main(["train", write_config(), "--set", "train.steps=many"]) == 2
    err = capsys.readouterr().err
    assert "train.steps must be an integer" in err and "got 'many' (str)" in err
    assert main(["train", write_config(model={"inner_lr": "big"})]) == 2
    assert "model.inner_lr must be a number" in capsys.readouterr().err


def test_a_run_is_never_overwritten(write_config, capsys):
    config = write_config(train={"steps": 2})
    assert main(["train", config, "--no-evaluate"]) == 0
    assert main(["train", config, "--no-evaluate"]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["train", config, "--no-evaluate", "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out


def test_resume_with_a_changed_config_needs_allow_changes(write_config, tmp_path, capsys):
    config = write_config(train={"steps": 2, "val_every": 2})
    assert main(["train", config, "--no-evaluate"]) == 0
    run = tmp_path / "runs" / "tiny"
    written = (run / "config.yaml").read_text()
    assert main(["train", config, "--no-evaluate", "--resume", "--set", "train.steps=4"]) == 2
    err = capsys.readouterr().err
    assert "train.steps: 2 -> 4" in err and "--allow-changes" in err
    assert (run / "config.yaml").read_text() == written
    assert load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 2
    assert main(["train", config, "--no-evaluate", "--allow-changes"]) == 2
    assert "resume=True" in capsys.readouterr().err

    assert main(["train", config, "--no-evaluate", "--resume", "--allow-changes", "--set", "train.steps=4"]) == 0
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["steps"] == 4
    summary = json.loads((run / "summary.json").read_text())
    assert summary["config_changes"] == [{"after": 2, "unit": "step", "changes": {"train.steps": [2, 4]}}]
    assert summary["training"]["steps"] == 4 and load_checkpoint(run / "checkpoints" / "last.pt")["step"] == 4


def test_sigkill_then_resume_ends_bit_for_bit_like_an_uninterrupted_run(write_config, tmp_path, capsys):
    """The killed run is a separate process; the uninterrupted run and the resume run here (one thread each)."""
    config = write_config(model={"message_passing": True},
                          train={"steps": 60, "checkpoint_every": 5, "val_every": 10, "log_every": 5})
    command = ["train", config, "--no-evaluate"]
    killed = subprocess.Popen([sys.executable, "-m", "graphmeta", *command, "--set", "train.name=killed"],
                              env={**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"},
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    last = tmp_path / "runs" / "killed" / "checkpoints" / "last.pt"
    deadline = time.monotonic() + 300
    while not last.exists() and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    killed.send_signal(signal.SIGKILL)
    _, err = killed.communicate()
    assert killed.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {err}"
    assert 0 < load_checkpoint(last)["step"] < 60

    assert main([*command, "--set", "train.name=killed", "--resume"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert main([*command, "--set", "train.name=full"]) == 0

    runs = tmp_path / "runs"
    for checkpoint in ("last.pt", "best.pt"):
        a, b = (load_checkpoint(runs / name / "checkpoints" / checkpoint) for name in ("full", "killed"))
        assert a["step"] == b["step"]
        for name in a["model"]:
            assert torch.equal(a["model"][name], b["model"][name]), f"{checkpoint}: {name} differs"
        for index, state in a["optimizer"]["state"].items():
            assert all(torch.equal(state[key], b["optimizer"]["state"][index][key]) for key in state)
    full, resumed = ([(r["split"], r["step"]) for r in map(json.loads, (runs / name / "metrics.jsonl").read_text()
                                                            .splitlines())] for name in ("full", "killed"))
    assert resumed == full


def test_evaluate_needs_a_run_directory(tmp_path, capsys):
    assert main(["evaluate", str(tmp_path)]) == 2
    assert "is not a run directory" in capsys.readouterr().err
