"""Samplers are seeded per trial, so the workers of a study draw distinct, reproducible trials;
their options are checked against Optuna's signatures."""

import optuna
import pytest

from graphmeta import ConfigError
from graphmeta.tune.pruning import build_pruner
from graphmeta.tune.trial_sampler import build_sampler


def draws(strategy: str, seed: int, trials: int, workers: int = 1) -> list[float]:
    """The values of ``trials`` trials of one in-memory study, asked in turn by ``workers`` samplers."""
    storage = optuna.storages.InMemoryStorage()
    studies = [optuna.create_study(study_name="s", storage=storage, load_if_exists=True,
                                   sampler=build_sampler(strategy, seed, {"n_startup_trials": 2}
                                                         if strategy == "tpe" else {}))
               for _ in range(workers)]
    values = []
    for number in range(trials):
        study = studies[number % workers]
        trial = study.ask()
        values.append(trial.suggest_float("x", 0.0, 1.0))
        study.tell(trial, (values[-1] - 0.3) ** 2)
    return values


@pytest.mark.parametrize("strategy", ["random", "tpe"])
def test_trials_do_not_depend_on_which_worker_runs_them(strategy):
    alone = draws(strategy, seed=3, trials=5)
    assert draws(strategy, seed=3, trials=5, workers=2) == alone
    assert len(set(alone)) == 5 and draws(strategy, seed=4, trials=5) != alone


def test_sampler_and_pruner_options_are_checked():
    with pytest.raises(ConfigError, match="unknown key 'n_startup_trial' in tune.sampler_options"):
        build_sampler("tpe", 0, {"n_startup_trial": 3})
    with pytest.raises(ConfigError, match="unknown key 'seed' in tune.sampler_options"):
        build_sampler("random", 0, {"seed": 3})
    with pytest.raises(ConfigError, match="tune.pruner_options.n_startup_trials must be an integer"):
        build_pruner("median", {"n_startup_trials": "two"})
    assert build_sampler("tpe", 0, {}).options == {"constant_liar": True}
    assert isinstance(build_pruner("wilcoxon", {"p_threshold": 0.3}), optuna.pruners.WilcoxonPruner)
