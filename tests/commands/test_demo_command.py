"""`graphmeta demo --steps 20`: trains, prints the table against the baselines, writes the figures.
About 50 s, so with --slow; CI's wheel check (`make wheel-check`) runs the same demo from the wheel
and checks the same rows and files."""

import pytest

from graphmeta.cli import main


@pytest.mark.slow
def test_demo_short_mode(tmp_path, capsys):
    assert main(["demo", "--steps", "20", "--run-dir", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    for row in ("no adaptation", "after adaptation", "trained from scratch", "ablation: no message passing"):
        assert row in out
    (run,) = [path for path in tmp_path.iterdir() if path.name.startswith("demo-")]
    assert f"run directory: {run}" in out
    for name in ("curves.png", "graph-test-loss.png", "graph-test-improvement.png"):
        assert (run / "figures" / name).is_file()
    evaluation = run / "evaluation-test-1step.json"
    assert evaluation.is_file() and f"results:     {evaluation}" in out
    for name in ("checkpoints/best.pt", "figures/curves.png"):
        assert (run / "ablation" / name).is_file()
