"""The tune: section: checked with the run config, before any trial runs; what trials draw and run."""

import pytest

from graphmeta import ConfigError
from graphmeta.train import RunConfig, load_config
from graphmeta.train.config import SearchRange
from graphmeta.tune.search_space import settings, settings_space, with_settings


def config_with(tiny_config, **tune):
    return RunConfig.from_dict(tiny_config(tune=tune))


def test_ranges_hold_integers_where_the_key_takes_integers_only(tiny_config):
    config = config_with(tiny_config, space={"model.inner_steps": {"low": 1, "high": 3},
                                             "train.final_lr_ratio": {"low": 0, "high": 1},
                                             "model.inner_lr": {"low": 0.001, "high": 1.0, "log": True},
                                             "model.algorithm": ["maml", "metasgd"]})
    space = config.search_space()
    assert space["model.inner_steps"] == SearchRange(1, 3) and space["model.inner_steps"].integer
    assert space["train.final_lr_ratio"] == SearchRange(0.0, 1.0) and not space["train.final_lr_ratio"].integer
    assert space["model.inner_lr"].log and space["model.algorithm"] == ("maml", "metasgd")
    assert config.to_dict()["tune"]["space"]["train.final_lr_ratio"] == {"low": 0, "high": 1}  # as written


@pytest.mark.parametrize("space, message", [
    ({"model.inner_rl": [0.1]}, "unknown key path 'model.inner_rl' in tune.space (did you mean 'model.inner_lr'?)"),
    ({"trian.steps": [4]}, "unknown key path 'trian.steps'"),
    ({"model.inner_lr": {"low": 1.0, "high": 0.1}}, "tune.space.model.inner_lr is empty: low 1.0 is above high 0.1"),
    ({"model.algorithm": []}, "tune.space.model.algorithm is empty"),
    ({"model.inner_lr": {"low": -1.0, "high": 0.1}}, "tune.space.model.inner_lr (low): model.inner_lr must be a number > 0"),
    ({"model.inner_lr": {"low": 0.0, "high": 0.1, "log": True}}, "a log range needs low > 0"),
    ({"model.inner_lr": {"low": 0.1, "hihg": 0.3}}, "unknown key 'hihg' in tune.space.model.inner_lr (did you mean 'high'?)"),
    ({"model.inner_steps": {"low": 0.5, "high": 3}}, "model.inner_steps must be an integer"),
    ({"model.algorithm": ["maml", "mamll"]}, "(choice 'mamll'): model.algorithm must be one of"),
    ({"train.seed": [1, 2]}, "train.seed cannot be searched: tune.seeds sets the seeds"),
    ({"train.schedule": "cosine"}, "must be a list of choices or a range"),
    ({"model.inner_lr": {"low": 0.1, "high": 0.35, "step": 0.1}}, "must be a multiple of step 0.1"),
    ({"family.noise": [[1, 2]]}, "a searched value must be null, a boolean, a number or a string"),
])
def test_a_wrong_space_is_a_config_error_naming_it(tiny_config, space, message):
    with pytest.raises(ConfigError) as error:
        config_with(tiny_config, space=space)
    assert message in str(error.value)


def test_strategies_agree_with_their_keys(tiny_config):
    with pytest.raises(ConfigError, match="strategy fixed evaluates the settings listed in tune.trials"):
        config_with(tiny_config, strategy="fixed")
    with pytest.raises(ConfigError, match=r"tune.trials\[1\].model.inner_lr: model.inner_lr must be a number > 0"):
        config_with(tiny_config, strategy="fixed", space={}, trials=[{}, {"model.inner_lr": -1}])
    with pytest.raises(ConfigError, match="the grid strategy needs a step for a range of numbers"):
        config_with(tiny_config, strategy="grid")
    with pytest.raises(ConfigError, match="the objective loss is to minimize"):
        config_with(tiny_config, objective="loss", direction="maximize")
    with pytest.raises(ConfigError, match="unknown key 'n_trial' in tune"):
        config_with(tiny_config, n_trial=3)


def test_errors_name_the_file_and_overrides_reach_the_tune_section(tiny_file):
    path = tiny_file(tune={"space": {"model.inner_lr": {"low": 0.5, "high": 0.1}}})
    with pytest.raises(ConfigError, match="tiny-study.yaml: tune.space.model.inner_lr is empty"):
        load_config(path)
    config = load_config(tiny_file(), ["tune.n_trials=7", "tune.strategy=tpe"])
    assert (config.tune.n_trials, config.tune.strategy) == (7, "tpe")


def test_overrides_reach_single_keys_of_the_search_space(tiny_file):
    config = load_config(tiny_file(), ["tune.space.model.inner_lr={low: 0.01, high: 0.5, log: true}",
                                       "tune.space.model.inner_steps=[1, 2]"])
    space = config.search_space()
    assert space["model.inner_lr"] == SearchRange(0.01, 0.5, log=True)
    assert space["model.inner_steps"] == (1, 2)
    assert space["train.schedule"] == ("constant", "cosine")  # the entries not set are kept
    with pytest.raises(ConfigError, match="unknown key path 'model.inner_rl' in tune.space"):
        load_config(tiny_file(), ["tune.space.model.inner_rl=[0.1]"])
    with pytest.raises(ConfigError, match=r"tune.space.model.inner_lr \(low\): model.inner_lr must be a number > 0"):
        load_config(tiny_file(), ["tune.space.model.inner_lr={low: -1.0, high: 0.5}"])


def test_grid_and_fixed_settings(tiny_config):
    grid = config_with(tiny_config, strategy="grid", space={"model.inner_lr": {"low": 0.1, "high": 0.3, "step": 0.1},
                                                            "model.inner_steps": {"low": 1, "high": 2}})
    listed = settings(grid)
    assert len(listed) == 6 and len({tuple(sorted(s.items())) for s in listed}) == 6
    assert {s["model.inner_lr"] for s in listed} == {0.1, 0.2, 0.3}
    assert settings(grid) == listed  # the shuffled order is seeded
    fixed = config_with(tiny_config, strategy="fixed", space={}, trials=[{}, {"model.inner_lr": 0.2},
                                                                         {"model.inner_lr": 0.3, "train.steps": 4}])
    assert settings(fixed) == [{}, {"model.inner_lr": 0.2}, {"model.inner_lr": 0.3, "train.steps": 4}]
    assert settings_space(settings(fixed)) == {"model.inner_lr": (0.2, 0.3), "train.steps": (4,)}
    assert settings(config_with(tiny_config)) is None


def test_a_trial_config_has_its_settings_and_no_tune_section(tiny_config):
    trial = with_settings(config_with(tiny_config), {"model.inner_lr": 0.2, "train.schedule": "exponential"})
    assert trial.tune is None and "tune" not in trial.to_dict()
    assert trial.model["inner_lr"] == 0.2 and trial.train.schedule == "exponential"


def test_exponential_decay_needs_a_ratio_above_zero(tiny_config):
    with pytest.raises(ConfigError, match="final_lr_ratio must be above 0 with the exponential schedule"):
        RunConfig.from_dict(tiny_config(train={"schedule": "exponential", "final_lr_ratio": 0.0}))
    searched = {"space": {"train.final_lr_ratio": {"low": 0.0, "high": 1.0}}}
    with pytest.raises(ConfigError, match=r"tune.space.train.final_lr_ratio \(low\)"):
        RunConfig.from_dict(tiny_config(train={"schedule": "exponential"}, tune=searched))
    assert RunConfig.from_dict(tiny_config(tune=searched)).search_space()  # with the constant schedule, 0 is fine
