"""An evaluation shows its progress (unless ``train.progress`` is false) and reports its wall time."""

from __future__ import annotations

import json


def test_an_evaluation_shows_its_stages_and_records_its_time(make_trainer, capsys):
    trainer = make_trainer(steps=2, progress=True)
    trainer.fit()
    capsys.readouterr()
    report = trainer.evaluate(num_tasks=2, ablation=False, scratch_steps=2)
    err = capsys.readouterr().err
    assert "evaluating run" in err and "/3 [" in err
    assert report.wall_time_s is not None and report.wall_time_s > 0
    assert f"evaluated in {report.wall_time_s:.1f} s" in report.table().splitlines()[0]
    written = json.loads(trainer.run.evaluation("test", 1).read_text())
    assert written["wall_time_s"] == report.wall_time_s


def test_no_evaluation_progress_with_progress_false(make_trainer, capsys):
    trainer = make_trainer(steps=2, progress=False)
    trainer.fit()
    trainer.evaluate(num_tasks=2, ablation=False, scratch_steps=2)
    assert "evaluating" not in capsys.readouterr().err
