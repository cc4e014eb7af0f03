"""The functions family: two elementary functions of x on hidden nodes, summed or multiplied by the
sink; its shapes, its draws checked by hand, seeding, its latent card and the supervised twin."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import graphmeta as gm
from graphmeta import ConfigError
from graphmeta.cli import main
from graphmeta.families import FunctionsFamily

#: Each elementary function written out again, independently of the family's table.
BY_HAND = {
    "sine": lambda x, p: p["sine_amplitude"] * np.sin(x + p["sine_phase"]),
    "line": lambda x, p: p["line_slope"] * x + p["line_intercept"],
    "quadratic": lambda x, p: p["quadratic_a"] * x * x + p["quadratic_b"] * x + p["quadratic_c"],
    "abs": lambda x, p: p["abs_slope"] * np.abs(x) + p["abs_intercept"],
}


def test_the_graph_is_two_hidden_functions_of_x_feeding_one_sink():
    graph = FunctionsFamily().graph
    assert graph.names == ["f1", "f2", "y"]
    assert sorted(tuple(edge) for edge in graph.edges) == [("f1", "y"), ("f2", "y")]
    assert [graph.subtask(name).in_dim for name in graph.names] == [1, 1, 0]
    assert not graph.latent
    assert FunctionsFamily(latent_nodes="non-sinks").graph.latent == ["f1", "f2"]


def test_shapes_of_the_cards_protocol(matches_from_tensors):
    batch = gm.load_family("functions-latent").sample(3, 16, 64, seed=0)
    assert batch.support.features.shape == (3, 16, 2) and batch.support.values.shape == (3, 16, 3)
    assert batch.query.features.shape == (3, 64, 2) and batch.query.values.shape == (3, 64, 3)
    for side in (batch.support, batch.query):  # both hidden nodes read the same x, drawn in x_range
        assert torch.equal(side.features[..., 0], side.features[..., 1])
        assert side.features.min() >= -3 and side.features.max() <= 3
    matches_from_tensors(batch)


def test_every_value_is_its_tasks_functions_and_combination_computed_by_hand():
    family = FunctionsFamily(noise=0.0)
    tasks = 200
    batch, params = family.sample(tasks, 4, 6, seed=5), family.task_params(tasks, seed=5)
    x = torch.cat([batch.support.features, batch.query.features], 1).double().numpy()[..., 0]  # [T, R]
    values = torch.cat([batch.support.values, batch.query.values], 1).double().numpy()  # [T, R, 3]
    seen = set()
    for t in range(tasks):
        own = {key: value[t] for key, value in params.items()}
        hidden = []
        for node in range(2):
            function = family.functions[own["function"][node]]
            hidden.append(BY_HAND[function](x[t], {key: value[node] for key, value in own.items()
                                                   if key.startswith(function)}))
            seen.add(function)
        combination = family.combinations[own["combination"]]
        expected = hidden[0] + hidden[1] if combination == "sum" else hidden[0] * hidden[1]
        seen.add(combination)
        np.testing.assert_allclose(values[t], np.stack([*hidden, expected], -1), rtol=1e-5, atol=1e-5)
    assert seen == {"sine", "line", "quadratic", "abs", "sum", "product"}


def test_choices_are_uniform_and_parameters_lie_in_their_ranges():
    params = FunctionsFamily().task_params(20_000, seed=0)
    for key, choices in (("function", 4), ("combination", 2)):
        counts = np.bincount(params[key].ravel(), minlength=choices) / params[key].size
        p = 1 / choices
        assert np.all(np.abs(counts - p) < 5 * math.sqrt(p * (1 - p) / params[key].size)), key
    assert params["function"].shape == (20_000, 2) and params["combination"].shape == (20_000,)
    assert params["sine_amplitude"].min() >= 0.5 and params["sine_amplitude"].max() <= 2.0
    assert params["quadratic_a"].min() >= -0.3 and params["quadratic_a"].max() <= 0.3


def test_the_same_seeds_give_the_same_tasks_and_others_do_not():
    family = gm.load_family("functions-latent")
    first, again = family.sample(4, 16, 64, seed=3), family.sample(4, 16, 64, seed=3)
    assert torch.equal(first.support.values, again.support.values)
    assert torch.equal(first.query.features, again.query.features)
    assert not torch.equal(first.support.features, family.sample(4, 16, 64, seed=4).support.features)
    assert not torch.equal(first.support.features, family.sample(4, 16, 64, split="val", seed=3).support.features)
    other = gm.load_family("functions-latent", seed=1)  # another family seed: other tasks for the same call
    assert not torch.equal(first.support.values, other.sample(4, 16, 64, seed=3).support.values)


def test_hidden_nodes_are_unlabelled_on_the_card_and_labelled_in_its_supervised_twin():
    family = gm.load_family("functions-latent")
    supervised = family.supervised()
    assert isinstance(supervised, FunctionsFamily) and not supervised.graph.latent
    assert supervised.config == {**family.config, "latent_nodes": "none"}
    assert [tuple(e) for e in supervised.graph.edges] == [tuple(e) for e in family.graph.edges]
    batch, full = family.sample(5, 16, 64, seed=2), supervised.sample(5, 16, 64, seed=2)
    for side, given in ((batch.support, full.support), (batch.query, full.query)):
        assert not side.observed[..., :2].any() and side.observed[..., 2].all()
        assert (side.values[..., :2] == 0).all() and (given.values[..., :2] != 0).all()
        assert given.observed.all()
        torch.testing.assert_close(side.values[..., 2], given.values[..., 2])  # the same draws, the sink given
        torch.testing.assert_close(side.features, given.features)


def test_noise_is_added_to_every_node_with_its_scale():
    clean = FunctionsFamily(combinations=("sum",), noise=0.0).sample(50, 100, 1, seed=1).support.values
    noisy = FunctionsFamily(combinations=("sum",), noise=0.1).sample(50, 100, 1, seed=1).support.values
    difference = (noisy - clean).double()
    assert float(difference[..., :2].std()) == pytest.approx(0.1, rel=0.05)
    assert float(difference[..., 2].std()) == pytest.approx(0.1 * math.sqrt(3), rel=0.05)  # its parents' noise too


def test_the_card_loads_and_is_listed(capsys):
    family = gm.load_family("functions-latent")
    assert isinstance(family, FunctionsFamily) and family.card.family == "functions"
    assert family.config == {"functions": ["sine", "line", "quadratic", "abs"], "combinations": ["sum", "product"],
                             "x_range": [-3.0, 3.0], "noise": 0.0, "latent_nodes": "non-sinks", "seed": 0}
    assert "Alet" in family.card.citation and "Modular meta-learning" in family.card.citation
    assert "16 support and 64 query" in family.card.intended_use
    assert main(["datasets"]) == 0
    listed = {line.split()[0]: line.split()[1] for line in capsys.readouterr().out.strip().splitlines()}
    assert listed["functions-latent"] == "functions"


@pytest.mark.parametrize("arguments, match", [
    ({"functions": ("sine", "sine")}, "functions names one twice"),
    ({"combinations": ("sum", "sum")}, "combinations names one twice"),
    ({"functions": ("sin",)}, "functions must be a list of one of sine, line, quadratic, abs, got"),
    ({"combinations": ()}, "combinations"),
    ({"latent_nodes": "all"}, "latent_nodes must be one of none, non-sinks"),
])
def test_bad_arguments_name_themselves(arguments, match):
    with pytest.raises(ConfigError, match=match):
        FunctionsFamily(**arguments)


def test_a_model_meta_trains_through_the_latent_nodes():
    family = gm.load_family("functions-latent")
    model = gm.GraphMetaLearner(family.graph, inner_steps=1)
    loss, metrics = model.meta_loss(family.sample(4, 16, 64, seed=0))
    loss.backward()
    assert torch.isfinite(loss) and metrics["loss_after"][:2].isnan().all()
    bank = model.banks[0]
    rows = [bank.names.index(name) for name in ("f1", "f2")]
    assert bank.theta["head_bias"].grad[rows].abs().sum() > 0  # reached through the sink alone
