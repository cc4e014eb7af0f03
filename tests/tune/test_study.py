"""`graphmeta.tune`: trials over seeds, results, resume, every strategy, pruning and non-finite losses."""

import math

import optuna
import pandas as pd
import pytest
import yaml
from optuna.trial import TrialState

import graphmeta as gm
from graphmeta import ConfigError
from graphmeta.train import Trainer, load_config


def states(study):
    return [trial.state for trial in study.trials]


def test_a_study_keeps_every_seed_and_its_best_config_reproduces_the_first(tiny_config, study_folder):
    result = gm.tune(tiny_config(tune={"seeds": 2, "n_trials": 2}), progress=False)
    study = result.study
    assert result.folder == study_folder and states(study) == [TrialState.COMPLETE] * 2
    for trial in study.trials:
        values = trial.user_attrs["values"]
        assert trial.user_attrs["seeds"] == [0, 1] and len(values) == 2
        assert trial.value == pytest.approx(sum(values) / 2) and trial.user_attrs["ci95"] > 0
        assert sorted(p.name for p in (study_folder / "trials" / f"{trial.number:04d}").iterdir()) == \
            ["seed-0", "seed-1"]
    table = pd.read_csv(study_folder / "trials.csv")
    assert list(table.columns[:4]) == ["trial", "state", "value", "ci95"]
    assert {"model.inner_lr", "train.schedule", "seed 0", "seed 1"} <= set(table.columns)
    assert sorted(p.name for p in result.figures) == ["history.png", "importances.png", "parallel_coordinates.png",
                                                      "seeds.png"]

    best = study.best_trial
    config = load_config(study_folder / "best.yaml")
    assert config == result.best_config and config.tune is None and config.train.name == "study-best"
    assert config.model["inner_lr"] == best.params["model.inner_lr"]
    trainer = Trainer.from_config(config)
    trainer.fit()
    assert trainer.best_loss == best.user_attrs["values"][0]  # the same run as the trial's first seed


def test_the_same_study_again_resumes_it_and_refuses_another_config(tiny_config, study_folder):
    first = gm.tune(tiny_config(tune={"n_trials": 2}), progress=False, results=False).study
    before = [(t.number, t.value, t.params) for t in first.trials]
    study = gm.tune(tiny_config(tune={"n_trials": 3}), progress=False).study
    assert [(t.number, t.value, t.params) for t in study.trials[:2]] == before and len(study.trials) == 3
    assert len(gm.tune(tiny_config(tune={"n_trials": 3}), progress=False).study.trials) == 3  # done already
    changed = tiny_config(tune={"n_trials": 3, "space": {"model.inner_lr": [0.1, 0.2]}})
    with pytest.raises(ConfigError, match="was started with another config .* tune.space"):
        gm.tune(changed, progress=False)


def test_fixed_evaluates_its_settings_as_given_and_grid_every_combination(tiny_config):
    fixed = gm.tune(tiny_config(tune={"strategy": "fixed", "space": {}, "n_trials": 5,
                                      "trials": [{}, {"model.inner_lr": 0.2}, {"train.outer_lr": 0.001}]}),
                    progress=False)
    assert [trial.params for trial in fixed.study.trials] == [{}, {"model.inner_lr": 0.2}, {"train.outer_lr": 0.001}]
    assert fixed.best_config is not None

    grid = gm.tune(tiny_config(train={"name": "grid"}, tune={
        "strategy": "grid", "n_trials": 10, "space": {"model.inner_lr": [0.05, 0.2], "train.steps": {"low": 4, "high": 8,
                                                                                                    "step": 4}}}),
        progress=False, results=False)
    assert sorted((t.params["model.inner_lr"], t.params["train.steps"]) for t in grid.study.trials) == \
        [(0.05, 4), (0.05, 8), (0.2, 4), (0.2, 8)]


def test_a_trial_behind_the_others_is_pruned_through_the_validation_hook(tiny_config):
    result = gm.tune(tiny_config(tune={"strategy": "fixed", "space": {}, "pruner": "median",
                                       "pruner_options": {"n_startup_trials": 1},
                                       "trials": [{"model.inner_lr": 0.1}, {"model.inner_lr": 1.5}]}), progress=False)
    good, bad = result.study.trials
    assert good.state == TrialState.COMPLETE and bad.state == TrialState.PRUNED
    assert bad.user_attrs["pruned"] == "at step 4 of seed 0" and list(bad.intermediate_values) == [4]
    summary = yaml.safe_load((result.folder / "trials" / "0001" / "seed-0" / "summary.json").read_text())
    assert summary["training"]["status"] == "stopped" and summary["training"]["steps"] == 4


def test_wilcoxon_prunes_between_seeds(tiny_config):
    result = gm.tune(tiny_config(tune={"strategy": "fixed", "space": {}, "seeds": 3, "pruner": "wilcoxon",
                                       "pruner_options": {"p_threshold": 0.3},
                                       "trials": [{"model.inner_lr": 0.1}, {"model.inner_lr": 1.5}]}), progress=False)
    good, bad = result.study.trials
    assert good.state == TrialState.COMPLETE and len(good.user_attrs["values"]) == 3
    assert bad.state == TrialState.PRUNED and bad.user_attrs["pruned"] == "after seed 1"
    assert len(bad.user_attrs["values"]) == 2  # its third seed never ran


def test_a_nonfinite_trial_is_pruned_and_the_study_goes_on(tiny_config, capsys):
    result = gm.tune(tiny_config(tune={"strategy": "fixed", "space": {}, "pruner": "none", "n_trials": 3, "trials": [
        {"train.outer_lr": 1.0e30}, {"model.inner_lr": 1.0e12, "train.on_nonfinite": "skip"}, {}]}))
    diverged, guarded, fine = result.study.trials
    assert [t.state for t in (diverged, guarded, fine)] == [TrialState.PRUNED, TrialState.COMPLETE, TrialState.COMPLETE]
    assert "non-finite" in diverged.user_attrs["failure"] and "seed 0" in diverged.user_attrs["failure"]
    # an inner rate of 1e12 used to explode; the support guard refuses every step that raises the loss
    assert math.isfinite(guarded.value)
    assert result.best_config is not None and math.isfinite(result.study.best_value)
    out = capsys.readouterr().out
    assert "trial 0 pruned: seed 0: non-finite" in out and "trial 2 complete: validation loss" in out


def test_bad_input_is_refused_before_any_trial_runs(tiny_config, study_folder):
    with pytest.raises(ConfigError, match="unknown key path 'model.inner_rl'"):
        gm.tune(tiny_config(tune={"space": {"model.inner_rl": [0.1]}}))
    with pytest.raises(ConfigError, match="unknown key 'n_startup' in tune.pruner_options"):
        gm.tune(tiny_config(tune={"pruner_options": {"n_startup": 1}}))
    with pytest.raises(ConfigError, match="no subtask of .* classifies"):
        gm.tune(tiny_config(tune={"objective": "accuracy"}))
    with pytest.raises(ConfigError, match="unknown keyword 'trials'"):
        gm.tune(tiny_config(), trials=3)
    with pytest.raises(ConfigError, match=r"tune\(\): workers must be an integer >= 1, got 0"):
        gm.tune(tiny_config(), workers=0)
    with pytest.raises(ConfigError, match="no tune: section"):
        gm.tune({key: value for key, value in tiny_config().items() if key != "tune"})
    assert not study_folder.exists()


def test_the_objective_of_a_classification_card_is_accuracy(tmp_path):
    config = {"family": {"name": "asia-dirichlet"},
              "model": {"inner_steps": 1, "inner_lr": 0.5, "message_passing": False},
              "train": {"steps": 4, "meta_batch_size": 4, "shots": 3, "query_shots": 5, "val_every": 2, "val_tasks": 4,
                        "progress": False, "run_dir": str(tmp_path), "name": "asia"},
              "tune": {"n_trials": 1, "space": {"model.inner_lr": [0.5]}}}
    result = gm.tune(config, progress=False)
    assert result.study.direction == optuna.study.StudyDirection.MAXIMIZE
    assert 0 <= result.study.best_value <= 1


def test_any_optuna_storage_url_holds_the_study(tiny_config, study_folder, tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    result = gm.tune(tiny_config(tune={"n_trials": 1}), storage=url, progress=False, results=False)
    assert optuna.load_study(study_name="study", storage=url).trials[0].state == TrialState.COMPLETE
    assert not (study_folder / "study.journal").exists() and len(result.study.trials) == 1
