"""Dataset cards: every shipped card loads and samples; names, overrides and card files are checked."""

from __future__ import annotations

import pytest

import graphmeta
from graphmeta import ConfigError
from graphmeta.cli import main
from graphmeta.families import FAMILIES, available_cards, load_card, load_family

SHIPPED = ("sinusoid", "compositional-chain", "compositional-dag", "asia-dirichlet", "alarm-dirichlet",
           "alarm-latent", "child-dirichlet", "ecoli70-gaussian", "graph-subtasks")


def test_the_required_cards_ship():
    assert set(SHIPPED) <= set(available_cards())


@pytest.mark.parametrize("name", available_cards())
def test_every_card_is_complete_loads_and_samples(name, matches_from_tensors):
    card = load_card(name)
    assert card.name == name and card.family in FAMILIES
    for field in ("description", "graph_source", "provenance", "citation", "intended_use"):
        assert getattr(card, field), f"card {name!r} has no {field}"
    assert "\n" not in card.description
    family = graphmeta.load_family(name)
    assert family.card == card
    batch = family.sample(2, 3, 4, seed=0)
    matches_from_tensors(batch)
    assert batch.num_tasks == 2 and batch.shots == 3 and batch.query_shots == 4


def test_overrides_replace_card_parameters():
    family = load_family("compositional-dag", num_nodes=1024, seed=4)
    assert len(family.graph) == 1024 and family.config["seed"] == 4 and family.config["max_parents"] == 3


def test_unknown_override_names_the_closest_key():
    with pytest.raises(ConfigError, match=r"unknown key 'num_node'.*did you mean 'num_nodes'"):
        load_family("compositional-dag", num_node=10)


def test_overrides_are_checked_against_the_family_constructor():
    with pytest.raises(ConfigError, match=r"the overrides of card 'compositional-dag': num_nodes must be an integer "
                                          r">= 1, got 'many' \(str\)"):
        load_family("compositional-dag", num_nodes="many")
    with pytest.raises(ConfigError, match=r"structure must be one of chain, tree, dag, got 'dga'.*did you mean 'dag'"):
        load_family("compositional-dag", structure="dga")


def test_unknown_card_lists_the_available_ones():
    expected = r"unknown dataset card 'alarm-dirichlt' \(did you mean 'alarm-dirichlet'\?\)"
    with pytest.raises(ConfigError, match=expected) as info:
        load_family("alarm-dirichlt")
    assert all(name in str(info.value) for name in available_cards())


def test_a_card_file_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("family: sinusoid\ndescription: narrow\nparameters: {amplitude: [1.0, 2.0]}\n")
    family = load_family(path, noise=0.1)
    assert family.card.name == "mine" and family.amplitude == (1.0, 2.0) and family.noise == 0.1
    assert load_family(str(path)).card.description == "narrow"


@pytest.mark.parametrize("text, match", [
    ("family: sinusoid\nsource: x\n", "unknown key 'source'"),
    ("family: sinus\n", "unknown family 'sinus'.*did you mean 'sinusoid'"),
    ("family: sinusoid\nparameters: {amplitud: [1, 2]}\n", "unknown key 'amplitud'.*did you mean 'amplitude'"),
    ("family: sinusoid\nparameters: [1, 2]\n", "parameters must be a mapping"),
    ("family: sinusoid\nparameters: {noise: -1}\n", r"the parameters of card file '.*bad\.yaml': noise must be a number >= 0"),
    ("family: sinusoid\nparameters: {noise: 0.1}\nfamily: compositional\n",
     r"duplicate key 'family' on line 3 \(first on line 1\)"),
    ("family: sinusoid\nparameters: {noise: 0.1, noise: 0.2}\n", r"duplicate key 'noise' on line 2"),
    ("- just a list\n", "must hold a mapping"),
    ("family: [unclosed\n", "not valid YAML"),
])
def test_bad_card_files(tmp_path, text, match):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_family(path)


def test_missing_card_file(tmp_path):
    with pytest.raises(ConfigError, match="no dataset card file"):
        load_family(tmp_path / "absent.yaml")


def test_cli_lists_the_cards_one_line_each(capsys):
    assert main(["datasets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == available_cards()
    assert lines[available_cards().index("alarm-latent")].split()[1] == "bayesnet"


def test_cli_shows_one_card_and_reports_unknown_ones(capsys):
    assert main(["datasets", "sinusoid"]) == 0
    out = capsys.readouterr().out
    assert "Finn" in out and "amplitude" in out
    assert main(["datasets", "nope"]) == 2
    assert "available:" in capsys.readouterr().err
