"""The ARML 2-d family matches the authors' generator: the function mix, the parameter ranges,
the functions themselves, the constant second input of the 1-d functions and the noise."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import graphmeta
from graphmeta import ConfigError
from graphmeta.families import ARML2DFamily
from graphmeta.families.arml import FUNCTIONS, ONE_DIMENSIONAL


def test_graph_is_one_node_with_two_inputs():
    graph = ARML2DFamily().graph
    assert graph.names == ["y"] and graph.subtask("y").in_dim == 2 and graph.subtask("y").out_dim == 1


def test_the_card_is_the_papers_protocol():
    family = graphmeta.load_family("arml-2d")
    assert family.config == {"functions": list(FUNCTIONS), "x_range": [-5.0, 5.0], "noise": 0.3, "seed": 0}
    assert "huaxiuyao/ARML" in family.card.provenance and "Yao" in family.card.citation


def test_functions_are_chosen_uniformly():
    draws = ARML2DFamily().task_params(60_000, seed=0)["function"]
    counts = np.bincount(draws, minlength=6)
    p = 1 / 6
    assert np.all(np.abs(counts / len(draws) - p) < 5 * math.sqrt(p * (1 - p) / len(draws)))


def test_parameters_lie_in_the_authors_ranges():
    params = ARML2DFamily().task_params(5_000, seed=1)
    for function, (ranges, _) in FUNCTIONS.items():
        for name, (low, high) in ranges.items():
            values = params[f"{function}_{name}"]
            assert values.min() >= low and values.max() <= high, (function, name)
            assert values.max() - values.min() > 0.9 * (high - low), (function, name)


def test_examples_are_the_task_function_of_uniform_inputs():
    family = ARML2DFamily(noise=0.0)
    batch = family.sample(300, 10, 20, seed=3)
    params = family.task_params(300, seed=3)
    x = torch.cat([batch.support.features, batch.query.features], 1).double().numpy()
    y = torch.cat([batch.support.values, batch.query.values], 1).double().numpy()[..., 0]
    assert x.min() >= -5 and x.max() <= 5
    for index, function in enumerate(family.functions):
        tasks = params["function"] == index
        assert tasks.any(), function
        ranges, f = FUNCTIONS[function]
        own = {name: params[f"{function}_{name}"][tasks, None] for name in ranges}
        np.testing.assert_allclose(y[tasks], f(x[tasks, :, 0], x[tasks, :, 1], own), rtol=1e-4, atol=1e-4)
        second = x[tasks, :, 1]
        assert np.all(second == 1.0) == (function in ONE_DIMENSIONAL), function


def test_a_sinusoid_task_by_hand():
    family = ARML2DFamily(functions=("sinusoid",), noise=0.0)
    batch, params = family.sample(1, 5, 1, seed=0), family.task_params(1, seed=0)
    x, y = batch.support.features[0].double(), batch.support.values[0, :, 0].double()
    amplitude, phase, frequency = (float(params[f"sinusoid_{k}"][0]) for k in ("amplitude", "phase", "frequency"))
    torch.testing.assert_close(y, amplitude * torch.sin(frequency * x[:, 0] + phase), rtol=1e-5, atol=1e-5)
    assert torch.all(x[:, 1] == 1)


def test_noise_is_added_with_its_scale():
    clean, noisy = ARML2DFamily(noise=0.0), ARML2DFamily(noise=0.3)
    assert torch.equal(clean.sample(40, 200, 1, seed=2).support.features, noisy.sample(40, 200, 1, seed=2).support.features)
    difference = noisy.sample(40, 200, 1, seed=2).support.values - clean.sample(40, 200, 1, seed=2).support.values
    assert float(difference.std()) == pytest.approx(0.3, rel=0.05)


def test_a_subset_of_functions():
    family = ARML2DFamily(functions=("ripple", "line"))
    draws = family.task_params(200, seed=0)
    assert set(np.unique(draws["function"])) == {0, 1}
    assert set(draws) == {"function", "ripple_a", "ripple_b", "line_slope", "line_intercept"}


@pytest.mark.parametrize("arguments, message", [
    ({"functions": ("sinus",)}, "functions"),
    ({"functions": ()}, "functions"),
    ({"functions": ("line", "line")}, "names a function twice"),
    ({"x_range": (5.0, -5.0)}, "x_range"),
    ({"noise": -0.1}, "noise"),
])
def test_bad_arguments(arguments, message):
    with pytest.raises(ConfigError, match=message):
        ARML2DFamily(**arguments)
