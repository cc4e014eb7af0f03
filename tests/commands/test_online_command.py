"""`graphmeta train` with `train.mode: online`: the stream runs, resumes, and is evaluated (also by
`graphmeta evaluate`)."""

import json
from pathlib import Path

import pytest
import yaml

from graphmeta.cli import main
from graphmeta.train.checkpoint import load_checkpoint


@pytest.fixture
def online_config(write_config):
    """The tiny config in online mode: a stream of 6 tasks, 1 update each, a buffer of 3."""
    path = Path(write_config(train={"mode": "online", "checkpoint_every": 2}))
    config = yaml.safe_load(path.read_text())
    config["online"] = {"tasks": 6, "updates_per_task": 1, "buffer_size": 3, "loss_threshold": 0.5}
    path.write_text(yaml.safe_dump(config))
    return str(path)


def test_online_mode_runs_the_stream_then_evaluates(online_config, tmp_path, capsys):
    assert main(["train", online_config]) == 0
    out = capsys.readouterr().out
    run = tmp_path / "runs" / "tiny"
    assert f"trained {run} online on 6 tasks: query loss of arriving tasks" in out
    assert "after adaptation" in out and "ablation: no message passing" in out
    for name in ("config.yaml", "metrics.jsonl", "summary.json", "evaluation-test-1step.json", "checkpoints/last.pt",
                 "figures/online.png", "ablation/figures/online.png"):
        assert (run / name).is_file(), name
    assert not (run / "checkpoints" / "best.pt").exists()
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [1, 2, 3, 4, 5, 6] and {r["split"] for r in records} == {"online"}
    assert json.loads((run / "summary.json").read_text())["training"]["mode"] == "online"


def test_online_run_resumes_with_a_longer_stream(online_config, tmp_path, capsys):
    assert main(["train", online_config, "--no-evaluate"]) == 0
    assert main(["train", online_config, "--no-evaluate", "--resume", "--set", "online.tasks=9"]) == 2
    assert "online.tasks: 6 -> 9" in capsys.readouterr().err
    assert main(["train", online_config, "--no-evaluate", "--resume", "--allow-changes",
                 "--set", "online.tasks=9"]) == 0
    assert "resuming" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "runs" / "tiny" / "checkpoints" / "last.pt")["step"] == 9


def test_evaluate_an_online_run(online_config, tmp_path, capsys):
    assert main(["train", online_config, "--no-evaluate"]) == 0
    run = tmp_path / "runs" / "tiny"
    assert not (run / "evaluation-test-1step.json").exists()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--num-tasks", "4", "--set", "scratch_steps=2", "--per-node"]) == 0
    out = capsys.readouterr().out
    assert "tiny: 4 test tasks" in out and "after adaptation" in out and "per-node query loss" in out
    assert "ablation: no message passing" in out and (run / "ablation" / "figures" / "online.png").is_file()
    result = json.loads((run / "evaluation-test-1step.json").read_text())
    assert result["num_tasks"] == 4 and "no_message_passing" in result["methods"]
    assert json.loads((run / "summary.json").read_text())["training"]["mode"] == "online"
    assert main(["evaluate", str(run), "--checkpoint", "last", "--split", "val", "--num-tasks", "3",
                 "--no-ablation"]) == 0
    assert "tiny: 3 val tasks" in capsys.readouterr().out
