"""The sinusoid family matches Finn et al. (2017): parameter moments, input range, the function itself."""

from __future__ import annotations

import math

import pytest
import torch

from graphmeta import ConfigError
from graphmeta.families import SinusoidFamily


def test_graph_is_one_scalar_node():
    graph = SinusoidFamily().graph
    assert graph.names == ["sine"] and graph.subtask("sine").in_dim == 1 and graph.subtask("sine").out_dim == 1


def test_parameter_moments_match_the_uniform_priors():
    params = SinusoidFamily().task_params(40_000, seed=0)
    amplitude, phase = params["amplitude"], params["phase"]
    assert amplitude.min() >= 0.1 and amplitude.max() <= 5.0 and phase.min() >= 0 and phase.max() <= math.pi
    # U[a, b]: mean (a + b) / 2, variance (b - a)^2 / 12; tolerances are 5 standard errors
    for draws, low, high in ((amplitude, 0.1, 5.0), (phase, 0.0, math.pi)):
        sd = (high - low) / math.sqrt(12)
        assert abs(draws.mean() - (low + high) / 2) < 5 * sd / math.sqrt(len(draws))
        assert abs(draws.var() - sd**2) < 5 * sd**2 * math.sqrt(0.8 / len(draws))


def test_examples_are_the_task_function_of_uniform_inputs():
    family = SinusoidFamily()
    batch = family.sample(50, 10, 30, seed=4)
    params = family.task_params(50, seed=4)
    x = torch.cat([batch.support.features, batch.query.features], 1).double()
    y = torch.cat([batch.support.values, batch.query.values], 1).double()
    assert x.min() >= -5 and x.max() <= 5 and abs(x.mean()) < 0.1
    amplitude = torch.from_numpy(params["amplitude"])[:, None, None]
    phase = torch.from_numpy(params["phase"])[:, None, None]
    torch.testing.assert_close(y, amplitude * torch.sin(x - phase), atol=1e-5, rtol=1e-5)


def test_noise_is_added_with_its_scale():
    family = SinusoidFamily(noise=0.3)
    params = family.task_params(20, seed=1)
    batch = family.sample(20, 500, 1, seed=1)
    x, y = batch.support.features.double(), batch.support.values.double()
    amplitude, phase = (torch.from_numpy(params[key])[:, None, None] for key in ("amplitude", "phase"))
    clean = amplitude * torch.sin(x - phase)
    assert float((y - clean).std()) == pytest.approx(0.3, rel=0.05)


@pytest.mark.parametrize("arguments", [{"amplitude": (5.0, 0.1)}, {"phase": "wide"}, {"noise": -1.0}])
def test_bad_parameters(arguments):
    with pytest.raises(ConfigError, match=next(iter(arguments))):
        SinusoidFamily(**arguments)

