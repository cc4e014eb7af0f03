"""`graphmeta tune` (with worker processes) and `graphmeta train --seeds`."""

import pandas as pd
import pytest
import yaml

from graphmeta.cli import main


def test_tune_prints_the_trials_and_writes_the_results(tiny_file, study_folder, capsys):
    assert main(["tune", tiny_file(), "--n-trials", "2", "--set", "tune.seeds=2"]) == 0
    out = capsys.readouterr().out
    assert "trial 1 complete: validation loss" in out
    assert "2 trials (2 complete); the best 2:" in out and "model.inner_lr" in out and "seed 1" in out
    assert f"best configuration: {study_folder / 'best.yaml'}" in out
    table = pd.read_csv(study_folder / "trials.csv")
    assert len(table) == 2 and set(table["state"]) == {"complete"}
    saved = yaml.safe_load((study_folder / "study.yaml").read_text())
    assert saved["tune"]["n_trials"] == 2 and saved["tune"]["seeds"] == 2 and saved["tune"]["study_name"] == "study"


@pytest.mark.slow  # a new Python process spends 10-20 s importing torch on a busy machine
def test_tune_starts_worker_processes(tiny_file, study_folder, capsys):
    assert main(["tune", tiny_file(train={"steps": 40}), "--workers", "2", "--n-trials", "4"]) == 0
    assert "4 trials (4 complete)" in capsys.readouterr().out
    assert len(pd.read_csv(study_folder / "trials.csv")) == 4


def test_tune_names_a_wrong_key_path_and_runs_nothing(tiny_file, study_folder, capsys):
    assert main(["tune", tiny_file(tune={"space": {"model.inner_rl": [0.1]}})]) == 2
    assert "tiny-study.yaml: tune.space (did you mean 'model.inner_lr'?)" in capsys.readouterr().err
    assert not study_folder.exists()


def test_train_with_seeds_prints_one_table_over_them(tiny_file, tmp_path, capsys):
    assert main(["train", tiny_file(), "--seeds", "0", "1"]) == 0
    out = capsys.readouterr().out
    assert "study: 2 seeds (0, 1), 4 test tasks, 3 shots; mean ± 95% CI over seeds" in out
    for row in ("best validation loss", "no adaptation", "after adaptation (1 step)", "trained from scratch"):
        assert row in out
    assert "seed 0" in out and "seed 1" in out
    for seed in (0, 1):
        run = tmp_path / "runs" / "study" / f"seed-{seed}"
        assert yaml.safe_load((run / "config.yaml").read_text())["train"]["seed"] == seed
        assert (run / "evaluation-test-1step.json").is_file() and (run / "figures" / "curves.png").is_file()
