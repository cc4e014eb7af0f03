"""ALPaCA's closed-form head: least squares under a flat prior, the prior's pull without data, the
mixture following the component that explains the support, and steps past the first adding
nothing (the engine against the per-node reference: tests/test_reference.py)."""

import torch

import graphmeta as gm
from graphmeta.adapt.algorithms import ALPaCA


def one_node(hidden: tuple[int, ...], components: int = 1) -> gm.GraphMetaLearner:
    graph = gm.TaskGraph().add_subtask("y", in_dim=2, learner=gm.MLP(hidden=hidden))
    torch.manual_seed(0)
    return gm.GraphMetaLearner(graph, algorithm="alpaca", message_passing=False,
                               algorithm_options={"prior_components": components}).double()


def support(model: gm.GraphMetaLearner, x: torch.Tensor, y: torch.Tensor) -> gm.TaskBatch:
    data = {"y": (x[None], y[None, :, None])}
    return gm.TaskBatch.from_tensors(model.graph, data, data)


def head(model: gm.GraphMetaLearner, batch: gm.TaskBatch, steps: int = 1) -> torch.Tensor:
    fast = model.adapt(batch, steps=steps).fast[0]
    return torch.cat([fast["head_weight"][0, 0], fast["head_bias"][0, 0][None]])  # [D, O]


def test_a_flat_prior_gives_the_least_squares_head_on_the_hidden_features():
    model = one_node(hidden=(3,))
    assert isinstance(model.algorithm, ALPaCA)
    with torch.no_grad():
        model.algorithm.precision_factors["0"].diagonal(dim1=-2, dim2=-1).fill_(-15.0)  # P = e^-30 I
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(12, 2, generator=generator, dtype=torch.float64)
    y = torch.randn(12, generator=generator, dtype=torch.float64)
    theta = model.banks[0].theta
    features = torch.relu(x @ theta["hidden0_weight"][0] + theta["hidden0_bias"][0]).detach()
    phi = torch.cat([features, torch.ones(12, 1, dtype=torch.float64)], dim=1)
    expected = torch.linalg.lstsq(phi, y[:, None]).solution
    torch.testing.assert_close(head(model, support(model, x, y)), expected, rtol=1e-6, atol=1e-8)


def test_a_tight_prior_keeps_the_head_at_its_mean():
    model = one_node(hidden=(3,))
    with torch.no_grad():
        model.algorithm.precision_factors["0"].diagonal(dim1=-2, dim2=-1).fill_(10.0)  # P = e^20 I
    x, y = torch.randn(5, 2, dtype=torch.float64), 100 * torch.randn(5, dtype=torch.float64)
    theta = model.banks[0].theta
    expected = torch.cat([theta["head_weight"][0], theta["head_bias"][0][None]]).detach()
    torch.testing.assert_close(head(model, support(model, x, y)), expected, rtol=0, atol=1e-5)


def test_the_mixture_follows_the_component_whose_prior_explains_the_support():
    """Two tight components, slopes +2 and -2 on the first input: the adapted head is the one
    whose prior the support's slope fits, whichever sign the support has."""
    model = one_node(hidden=(), components=2)
    with torch.no_grad():
        theta = model.banks[0].theta
        theta["head_weight"].zero_()
        theta["head_weight"][0, 0, 0] = 2.0
        theta["head_bias"].zero_()
        model.algorithm.mean_offsets["0"].zero_()
        model.algorithm.mean_offsets["0"][0, 0, 0, 0] = -4.0  # the second component's slope: -2
        model.algorithm.precision_factors["0"].diagonal(dim1=-2, dim2=-1).fill_(4.0)
        model.algorithm.log_noise["0"].fill_(-2.0)
    x = torch.linspace(-1, 1, 8, dtype=torch.float64)[:, None].repeat(1, 2)
    for slope in (2.0, -2.0):
        fitted = head(model, support(model, x, slope * x[:, 0]))
        torch.testing.assert_close(fitted[0, 0], torch.tensor(slope, dtype=torch.float64), rtol=0, atol=1e-2)


def test_steps_after_the_first_change_nothing():
    model = one_node(hidden=(4,), components=3)
    x, y = torch.randn(6, 2, dtype=torch.float64), torch.randn(6, dtype=torch.float64)
    batch = support(model, x, y)
    once = head(model, batch, steps=1)
    assert not torch.equal(once, head(model, batch, steps=0))
    torch.testing.assert_close(head(model, batch, steps=5), once, rtol=0, atol=0)


def test_a_degenerate_prior_gives_a_nan_head_not_an_exception():
    """A precision that underflows to 0 with fewer shots than features: ``A`` is singular in float32,
    and the head is NaN (which the run loop's ``train.on_nonfinite`` handles), not a LinAlgError."""
    model = one_node(hidden=(8,)).float()
    with torch.no_grad():
        model.algorithm.precision_factors["0"].diagonal(dim1=-2, dim2=-1).fill_(-200.0)  # exp underflows to 0
    x, y = torch.randn(2, 2), torch.randn(2)
    assert torch.isnan(head(model, support(model, x, y))).all()
