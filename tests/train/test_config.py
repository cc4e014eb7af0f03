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
    ("train", "grad_clip", [1], r"a number >= 0 or null, got \[1\] \(list\)"),
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
    with pytest.raises(gm.ConfigError, match=r"train\.steps must be an integer >= 0, got -1"):
        TrainConfig.from_dict({"steps": -1}, "train")
    with pytest.raises(gm.ConfigError, match=r"did you mean 'cosine'"):
        TrainConfig.from_dict({"schedule": "cosin"}, "train")
    assert TrainConfig.from_dict({"outer_lr": 1}).outer_lr == 1.0  # an int is a number


@pytest.mark.parametrize("section, text, names", [
    ("family", "family:\n  name: compositional-dag\n  num_node: 8\n",
     [r"unknown key 'num_node' in .*run\.yaml: family \(did you mean 'num_nodes'\?\)"]),
    ("model", "family: sinusoid\nmodel:\n  inner_setps: 2\n", [r"'inner_setps' in .*model.*'inner_steps'"]),
    ("train", "family: sinusoid\ntrain:\n  outer_rl: 0.1\n", [r"'outer_rl' in .*train.*'outer_lr'"]),
    ("evaluate", "family: sinusoid\nevaluate:\n  scratch_step: 3\n", [r"'scratch_step' in .*evaluate.*'scratch_steps'"]),
    ("online", "family: sinusoid\nonline:\n  buffer_sise: 3\n", [r"'buffer_sise' in .*online.*'buffer_size'"]),
])
def test_a_typo_in_any_section_of_a_file_names_the_closest_key(tmp_path, section, text, names):
    path = tmp_path / "run.yaml"
    path.write_text(text)
    for name in names:
        with pytest.raises(gm.ConfigError, match=name):
            load_config(path)


def test_family_overrides_are_checked_against_the_card_family():
    with pytest.raises(gm.ConfigError, match=r"^family\.num_nodes must be an integer >= 1, got 0 \(int\)"):
        RunConfig.from_dict({"family": {"name": "compositional-dag", "num_nodes": 0}})
    with pytest.raises(gm.ConfigError, match=r"family\.prior must be one of dirichlet, latent.*did you mean 'latent'"):
        RunConfig.from_dict({"family": {"name": "asia-dirichlet", "prior": "latnet"}})
    with pytest.raises(gm.ConfigError, match="unknown dataset card 'sinusiod'"):
        RunConfig.from_dict({"family": "sinusiod"})
    config = RunConfig.from_dict({"family": {"name": "sinusoid", "amplitude": [1, 2]}})
    assert config.family == {"name": "sinusoid", "amplitude": [1, 2]}  # as written: it is YAML again in config.yaml


def test_model_keys_and_types_are_graph_meta_learner_keywords():
    """No second list: the ``model:`` keys, defaults and types are GraphMetaLearner's signature."""
    import inspect

    from graphmeta.train.config import model_defaults

    signature = inspect.signature(gm.GraphMetaLearner).parameters.values()
    assert model_defaults() == {p.name: p.default for p in signature if p.default is not p.empty}
    assert RunConfig.from_dict({"family": "sinusoid", "model": {"message_channels": 8}}).model == {"message_channels": 8}
    assert RunConfig.from_dict({"family": "sinusoid", "model": {"inner_lr": 1}}).model == {"inner_lr": 1.0}
    with pytest.raises(gm.ConfigError, match=r"model\.message_channels must be an integer.*got 'wide' \(str\)"):
        RunConfig.from_dict({"family": "sinusoid", "model": {"message_channels": "wide"}})
    with pytest.raises(gm.ConfigError, match="unknown key 'graph' in model"):
        RunConfig.from_dict({"family": "sinusoid", "model": {"graph": None}})


def test_a_duplicate_key_in_a_run_config_is_refused(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("family: sinusoid\ntrain:\n  steps: 3\n  outer_lr: 0.1\n  steps: 30\n")
    with pytest.raises(gm.ConfigError, match=r"run\.yaml: duplicate key 'steps' on line 5 \(first on line 3\)"):
        load_config(path)
    path.write_text("family: sinusoid\ntrain: {}\nfamily: compositional-dag\n")
    with pytest.raises(gm.ConfigError, match=r"duplicate key 'family' on line 3 \(first on line 1\)"):
        load_config(path)


def test_sections_are_checked_as_python_keywords_too():
    with pytest.raises(gm.ConfigError, match=r"unknown keyword 'stpes' in TrainConfig \(did you mean 'steps'\?\)"):
        TrainConfig(stpes=3)
    with pytest.raises(gm.ConfigError, match=r"TrainConfig\.outer_lr must be a number >= 0, got -1"):
        TrainConfig(outer_lr=-1)


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
    assert family_spec(family) == {"name": "compositional-chain", "num_nodes": 3, "max_parents": 3, "branching": 2,
                                   "latent_nodes": "none"}
    by_hand = type(family)(**family.config)
    assert family_spec(by_hand) == {"name": f"{type(family).__module__}:{type(family).__name__}", **family.config}


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
