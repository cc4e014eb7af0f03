"""`graphmeta train` stopped by SIGTERM: a checkpoint, one line with the resume command, status 143."""

import os
import signal
import subprocess
import sys
import time

from graphmeta.cli import main
from graphmeta.train.checkpoint import load_checkpoint


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
