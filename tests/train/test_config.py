"""Run configs: unknown keys and wrong types are ConfigErrors that name the key; --set overrides."""

from pathlib import Path

import pytest
import yaml

import graphmeta as gm
from graphmeta.train import RunConfig, TrainConfig, load_config
from graphmeta.train.config import family_spec, load_family_and_model, load_run_config

EXAMPLES = sorted((Path(__file__).parents[2] / "examples" / "configs").glob("*.yaml"))


def test_defaults_and_round_trip():
    config = RunConfig.from_dict({"family": "sinusoid"})
    assert config.family == {"name": "sinusoid"}
    assert config.train == TrainConfig()
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("data, names", [
    ({"family": "sinusoid", "trian": {}}, ["'trian'", "'train'"]),
    ({"family": "sinusoid", "train": {"stpes": 10}}, ["'stpes'", "'steps'"]),
    ({"family": "sinusoid", "model": {"inner_lrr": 0.1}}, ["'inner_lrr'", "'inner_lr'"]),
    ({"family": "sinusoid", "evaluate": {"num_task": 3}}, ["'num_task'", "'num_tasks'"]),
])
def test_unknown_key_names_it_and_the_closest(data, names):
    with pytest.raises(gm.ConfigError) as error:
        RunConfig.from_dict(data)
    for name in names:
        assert name in str(error.value)


@pytest.mark.parametrize("section, key, value, expected", [
    ("train", "steps", "100", "an integer"),
    ("train", "steps", True, "an integer"),
    ("train", "outer_lr", "fast", "a number"),
    ("train", "grad_clip", [1], "a number or null"),
    ("train", "progress", "yes", "true or false"),
    ("train", "name", 3, "a string"),
    ("model", "inner_steps", 1.5, "an integer"),
    ("model", "message_passing", "on", "true or false"),
    ("evaluate", "ablation", 1, "true or false"),
])
def test_wrong_type_names_key_and_type(section, key, value, expected):
    with pytest.raises(gm.ConfigError, match=rf"{section}\.{key} must be {expected}"):
        RunConfig.from_dict({"family": "sinusoid", section: {key: value}})


def test_ranges_and_choices():
    with pytest.raises(gm.ConfigError, match=r"train\.steps must be >= 0"):
        TrainConfig.from_dict({"steps": -1}, "train")
    with pytest.raises(gm.ConfigError, match=r"did you mean 'cosine'"):
        TrainConfig.from_dict({"schedule": "cosin"}, "train")
    assert TrainConfig.from_dict({"outer_lr": 1}).outer_lr == 1.0  # an int is a number


def test_family_section_needs_a_name():
    with pytest.raises(gm.ConfigError, match="no .family. section"):
        RunConfig.from_dict({"train": {}})
    with pytest.raises(gm.ConfigError, match="needs a 'name'"):
        RunConfig.from_dict({"family": {"num_nodes": 3}})


def test_overrides():
    config = RunConfig.from_dict({"family": "sinusoid"}).with_overrides(
        ["train.steps=20", "inner_lr=0.5", "num_tasks=7", "family.noise=0.1", "train.grad_clip=null"])
    assert config.train.steps == 20 and config.model == {"inner_lr": 0.5}
    assert config.evaluate.num_tasks == 7 and config.family == {"name": "sinusoid", "noise": 0.1}
    assert config.train.grad_clip is None
    with pytest.raises(gm.ConfigError, match=r"'stepz'.*did you mean 'train.steps'"):
        config.with_overrides(["stepz=3"])
    with pytest.raises(gm.ConfigError, match=r"'stepz' in train.*did you mean 'steps'"):
        config.with_overrides(["train.stepz=3"])
    with pytest.raises(gm.ConfigError, match="section.key=value"):
        config.with_overrides(["steps"])


def test_load_config_file(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("family: sinusoid\ntrain:\n  steps: 3\n  scheduel: cosine\n")
    with pytest.raises(gm.ConfigError, match=r"'scheduel'.*'schedule'"):
        load_config(path)
    path.write_text("family: [unclosed\n")
    with pytest.raises(gm.ConfigError, match="run.yaml is not valid YAML"):
        load_config(path)
    with pytest.raises(gm.ConfigError, match="no config file"):
        load_config(tmp_path / "missing.yaml")


def test_trainer_keywords_are_checked(family):
    model = gm.GraphMetaLearner(family.graph)
    with pytest.raises(gm.ConfigError, match=r"'meta_batch'.*'meta_batch_size'"):
        gm.Trainer(model, family, meta_batch=4)
    with pytest.raises(gm.ConfigError, match=r"Trainer\.on_nonfinite must be one of stop, skip"):
        gm.Trainer(model, family, on_nonfinite="ignore")


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_configs_load_and_build(path):
    family, model = load_family_and_model(load_config(path))
    assert model.graph == family.graph


def test_examples_cover_the_main_cards():
    assert {"sinusoid", "compositional-dag", "alarm-dirichlet"} <= {p.stem for p in EXAMPLES}



def test_family_spec_is_the_card_and_the_options_that_differ(family):
    assert family_spec(family) == {"name": "compositional-chain", "num_nodes": 3, "max_parents": 3, "branching": 2}
    by_hand = type(family)(**family.config)
    assert family_spec(by_hand) == {"name": type(family).__name__, **family.config}


def test_load_run_config_points_at_the_run_directory(tmp_path):
    with pytest.raises(gm.CheckpointError, match="is not a run directory: it has no config.yaml"):
        load_run_config(tmp_path)
    run = tmp_path / "elsewhere" / "renamed"
    run.mkdir(parents=True)
    written = RunConfig.from_dict({"family": "sinusoid", "train": {"mode": "online", "run_dir": "runs", "name": "a"},
                                   "online": {"tasks": 7}})
    (run / "config.yaml").write_text(yaml.safe_dump(written.to_dict()))
    config = load_run_config(run)
    assert config.train.run_dir == str(tmp_path / "elsewhere") and config.train.name == "renamed"
    assert config.online.tasks == 7 and config.train.mode == "online" and config.family == {"name": "sinusoid"}
