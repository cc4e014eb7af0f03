"""``graphmeta curves RUN`` draws a run's curves from the records written so far, as often as asked."""

from __future__ import annotations

import json

from graphmeta.cli import main


def write_records(run, steps) -> None:
    run.mkdir(parents=True, exist_ok=True)
    with (run / "metrics.jsonl").open("a") as file:
        for step in steps:
            file.write(json.dumps({"step": step, "split": "train", "loss_after": 1.0 / step,
                                   "loss_before": 2.0 / step}) + "\n")


def test_curves_are_redrawn_from_the_records_so_far(tmp_path, capsys):
    run = tmp_path / "runs" / "going"
    write_records(run, range(1, 4))
    assert main(["curves", str(run)]) == 0
    curves = run / "figures" / "curves.png"
    assert capsys.readouterr().out.strip() == f"wrote {curves}"
    first = curves.read_bytes()
    assert first.startswith(b"\x89PNG")
    write_records(run, range(4, 40))  # the run went on
    assert main(["curves", str(run)]) == 0
    assert curves.read_bytes() != first


def test_a_folder_without_metrics_is_an_error_naming_the_file(tmp_path, capsys):
    assert main(["curves", str(tmp_path / "nothing")]) == 2
    assert "metrics.jsonl does not exist" in capsys.readouterr().err


def test_every_redraws_until_interrupted(tmp_path, capsys, monkeypatch):
    run = tmp_path / "run"
    write_records(run, range(1, 4))
    naps = []

    def sleep(seconds):
        naps.append(seconds)
        if len(naps) == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr("graphmeta.commands.curves.time.sleep", sleep)
    assert main(["curves", str(run), "--every", "5"]) == 0
    assert naps == [5.0, 5.0] and capsys.readouterr().out.count("wrote") == 2
