"""Stable learned inner rates: the rate schedule past the trained steps, the clamp into
``[min_rate, max_rate]`` and the outer optimizer's own group for the rates."""

from __future__ import annotations

import pytest
import torch

import graphmeta as gm
from graphmeta.adapt.algorithms.base import trained_step
from graphmeta.train.config import TrainConfig
from graphmeta.train.outer_step import outer_parameter_groups
from tests.adapt.test_support_guard import support_losses

LEARNED = {"metasgd": {}, "mamlpp": {}, "maml": {"learn_inner_lr": True}}


def line_graph() -> gm.TaskGraph:
    """One linear regression node: its support loss is a quadratic of curvature 2 in each weight."""
    return gm.TaskGraph("line").add_subtask("y", in_dim=1, learner=gm.MLP(hidden=()))


def line_tasks(num_tasks: int = 3, shots: int = 8) -> gm.TaskBatch:
    """``x = +-1`` (so the slope and the intercept decouple) and ``y = a x + b``."""
    x = torch.tensor([1.0, -1.0]).repeat(shots // 2)[None, :, None].expand(num_tasks, shots, 1)
    slope, intercept = torch.linspace(-2, 2, num_tasks)[:, None, None], torch.linspace(1, -1, num_tasks)[:, None, None]
    data = {"y": (x, slope * x + intercept)}
    return gm.TaskBatch.from_tensors(line_graph(), data, data)


@pytest.mark.parametrize("trained, steps", [(1, 1), (5, 5), (5, 3), (1, 10), (5, 20), (3, 7), (2, 3)])
def test_past_the_trained_steps_the_last_rate_shrinks_by_trained_over_steps(trained, steps):
    schedule = [trained_step(k, steps, trained) for k in range(steps)]
    assert schedule[:trained] == [(k, 1.0) for k in range(min(trained, steps))]  # the trained steps, as trained
    assert schedule[trained:] == [(trained - 1, trained / steps)] * max(steps - trained, 0)
    extra = sum(share for _, share in schedule[trained:])
    assert extra < trained  # together the extra steps move less than S times the last trained step


@pytest.mark.parametrize("algorithm", list(LEARNED))
def test_a_trained_step_applies_inner_lr_times_the_parameters_value(algorithm):
    model = gm.GraphMetaLearner(line_graph(), algorithm, inner_steps=2, inner_lr=0.1, message_passing=False,
                                **LEARNED[algorithm])
    with torch.no_grad():
        for scales in model.algorithm.learned_rates():
            scales.uniform_(0.5, 5.0)
    for name in model.banks[0].theta:
        for step in range(2):
            scale = {"metasgd": lambda: model.algorithm.rate_scales[0][name],
                     "mamlpp": lambda: model.algorithm.rate_scales[0][name][step],
                     "maml": lambda: model.algorithm.rate_scales[step]}[algorithm]()
            rate = model.algorithm.rate(0, name, step, 2)
            torch.testing.assert_close(rate, 0.1 * scale, rtol=0, atol=0)
            assert rate.requires_grad


@pytest.mark.parametrize("algorithm", list(LEARNED))
def test_a_step_reads_every_learned_rate_inside_its_range(algorithm):
    """Whatever an optimizer did to the parameters, a step reads ``clamp(inner_lr u, min_rate,
    max_rate)``, with no gradient pushing a rate further out of range."""
    model = gm.GraphMetaLearner(line_graph(), algorithm, inner_steps=1, inner_lr=0.1, message_passing=False,
                                max_rate=0.3, **LEARNED[algorithm])
    name = "head_weight"
    for value, expected in ((-2.0, 0.0), (1.5, 0.15), (7.0, 0.3)):
        with torch.no_grad():
            for scales in model.algorithm.learned_rates():
                scales.fill_(value)
        rate = model.algorithm.rate(0, name, 0, 1)
        assert torch.all(rate == expected)
        gradients = torch.autograd.grad(rate.sum(), model.algorithm.learned_rates(), allow_unused=True)
        assert (sum(float(g.abs().sum()) for g in gradients if g is not None) > 0) == (value == 1.5)


def test_more_steps_than_trained_take_the_last_rate_shrunk():
    model = gm.GraphMetaLearner(line_graph(), "mamlpp", inner_steps=2, inner_lr=0.1, message_passing=False)
    with torch.no_grad():
        model.algorithm.rate_scales[0]["head_weight"].copy_(torch.tensor([3.0, 5.0]).view(2, 1, 1, 1))
    rates = [float(model.algorithm.rate(0, "head_weight", k, 6).detach()) for k in range(6)]
    assert rates == pytest.approx([0.3, 0.5, 0.5 / 3, 0.5 / 3, 0.5 / 3, 0.5 / 3])
    metasgd = gm.GraphMetaLearner(line_graph(), "metasgd", inner_steps=2, inner_lr=0.1, message_passing=False)
    assert float(metasgd.algorithm.rate(0, "head_bias", 4, 8).detach()) == pytest.approx(0.1 * 2 / 8)


def test_a_fixed_rate_is_the_protocols_at_every_step():
    model = gm.GraphMetaLearner(line_graph(), "maml", inner_steps=2, inner_lr=0.1, message_passing=False)
    assert [model.algorithm.rate(0, "head_weight", k, 20) for k in (0, 5, 19)] == [pytest.approx(0.1)] * 3
    assert model.algorithm.learned_rates() == []


def test_one_overshooting_step_scales_the_error():
    """The linear node's error after one step at ``alpha = 1.25`` is ``1 - 2 alpha = -1.5`` times the
    error before (curvature 2), so its support loss is 2.25 times the loss before: such a rate,
    reused for every step, diverges. The support guard refuses that step (the loss stays)."""
    model = gm.GraphMetaLearner(line_graph(), "metasgd", inner_steps=1, inner_lr=1.25, message_passing=False)
    support = line_tasks().support
    before = support_losses(model, support, 0)
    torch.testing.assert_close(support_losses(model, support, 1, guarded=False), 2.25 * before, rtol=1e-4, atol=1e-6)
    torch.testing.assert_close(support_losses(model, support, 1), before, rtol=0, atol=0)


@pytest.mark.parametrize("algorithm", list(LEARNED))
def test_adapting_past_the_trained_steps_does_not_diverge(algorithm):
    """The overshooting rate above, trained for one step: that step, then 29 at a 30th of the rate,
    which contract the error by ``1 - 2.5 / 30`` each; unguarded, the loss ends at
    ``2.25 (1 - 2.5 / 30)^58`` (0.014) of the loss before, where reusing the rate would multiply it
    by ``1.5^60``. Guarded (the first step refused, the next at half of it), it ends lower still."""
    model = gm.GraphMetaLearner(line_graph(), algorithm, inner_steps=1, inner_lr=1.25, message_passing=False,
                                **LEARNED[algorithm])
    support = line_tasks().support
    before = support_losses(model, support, 0)
    unguarded = support_losses(model, support, 30, guarded=False)
    torch.testing.assert_close(unguarded, 2.25 * (1 - 2.5 / 30) ** 58 * before, rtol=1e-3, atol=1e-6)
    assert (support_losses(model, support, 30) < unguarded).all()


@pytest.mark.parametrize("algorithm", list(LEARNED))
def test_projection_keeps_learned_rates_in_range(algorithm):
    def scales_from(model):
        learned = model.algorithm.learned_rates()
        values = torch.linspace(-10, 10, sum(s.numel() for s in learned)).split([s.numel() for s in learned])
        with torch.no_grad():
            for scales, value in zip(learned, values):
                scales.copy_(value.view_as(scales))
        return model

    unbounded = scales_from(gm.GraphMetaLearner(line_graph(), algorithm, inner_steps=2, inner_lr=0.1,
                                                message_passing=False, min_rate=None, **LEARNED[algorithm]))
    unbounded.algorithm.project_rates_()
    assert min(float(s.detach().min()) for s in unbounded.algorithm.learned_rates()) == -10.0
    bounded = scales_from(gm.GraphMetaLearner(line_graph(), algorithm, inner_steps=2, inner_lr=0.1,
                                              message_passing=False, max_rate=0.5, **LEARNED[algorithm]))
    bounded.algorithm.project_rates_()
    flat = torch.cat([s.detach().flatten() for s in bounded.algorithm.learned_rates()])
    assert float(flat.min()) == 0.0 and float(flat.max()) == pytest.approx(5.0)  # rates 0 and 0.5


def test_learned_rates_are_the_rate_parameters():
    graph = line_graph()
    for algorithm, options in LEARNED.items():
        model = gm.GraphMetaLearner(graph, algorithm, message_passing=False, **options)
        learned = {id(p) for p in model.algorithm.learned_rates()}
        named = {name for name, p in model.named_parameters() if id(p) in learned}
        assert len(named) == len(learned) > 0
        assert all(name.startswith("algorithm.rate_scales") for name in named)
    for algorithm in ("maml", "fomaml", "anil", "reptile", "cavia"):
        assert gm.GraphMetaLearner(graph, algorithm, message_passing=False).algorithm.learned_rates() == []


def test_the_rates_have_their_own_outer_rate(tmp_path):
    family = gm.load_family("arml-2d")
    model = gm.GraphMetaLearner(family.graph, "metasgd", inner_steps=1, inner_lr=0.01, message_passing=False)
    config = gm.Trainer(model, family, progress=False, run_dir=str(tmp_path)).config
    groups = outer_parameter_groups(model, config)
    assert len(groups) == 2 and groups[1]["lr"] == pytest.approx(config.outer_lr)
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.algorithm.learned_rates()}
    assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
    assert outer_parameter_groups(model, config.replace(rate_lr=0.5))[1]["lr"] == 0.5
    plain = gm.GraphMetaLearner(family.graph, "maml", message_passing=False)
    assert len(outer_parameter_groups(plain, config)) == 1


def test_the_trainer_projects_the_rates_after_every_outer_step(tmp_path):
    """An outer rate far too large for the rates drives some out of range; the projection brings them back."""
    family = gm.load_family("arml-2d")
    batch = family.sample(4, 5, 5, seed=0)
    for bounds, inside in (({"max_rate": 0.01}, True), ({"min_rate": None}, False)):
        torch.manual_seed(0)
        model = gm.GraphMetaLearner(family.graph, "metasgd", inner_steps=2, inner_lr=1e-3, message_passing=False,
                                    **bounds)
        trainer = gm.Trainer(model, family, steps=3, meta_batch_size=4, shots=5, query_shots=5, rate_lr=10.0,
                             progress=False, run_dir=str(tmp_path / str(inside)))
        trainer.outer_step(batch, metrics=False)
        rates = 1e-3 * torch.cat([r.detach().flatten() for r in model.algorithm.learned_rates()])
        if inside:
            assert float(rates.min()) == 0.0 and float(rates.max()) == pytest.approx(0.01)
        else:
            assert float(rates.min()) < 0


def test_rate_bounds_are_checked_and_live_with_the_model():
    with pytest.raises(gm.ConfigError, match=r"min_rate \(0.5\) is above max_rate \(0.1\)"):
        gm.GraphMetaLearner(line_graph(), "metasgd", min_rate=0.5, max_rate=0.1)
    with pytest.raises(gm.ConfigError, match="key 'min_rate' of train has moved: .*model.min_rate"):
        TrainConfig.from_dict({"min_rate": 0.5}, "train")
    with pytest.raises(gm.ConfigError, match="train.rate_lr must be"):
        TrainConfig.from_dict({"rate_lr": -1.0}, "train")


@pytest.mark.parametrize("algorithm", ["metasgd", "mamlpp"])
def test_learned_rates_stay_finite_in_a_plain_user_loop(algorithm):
    """ARML's 2-d protocol (Adam 1e-3 on every parameter, 5 inner steps at 0.001) in the loop a user
    writes, with no Trainer and no projection call: Meta-SGD's rates, trained directly, went
    negative at once and its weights were NaN after 94 iterations."""
    family = gm.load_family("arml-2d")
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph, algorithm, inner_steps=5, inner_lr=0.001, message_passing=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    for iteration in range(120):
        loss, _ = model.meta_loss(family.sample(25, 10, 10, seed=iteration), metrics=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        assert torch.isfinite(loss), iteration
    assert all(torch.isfinite(p).all() for p in model.parameters())
    rates = torch.cat([0.001 * s.detach().flatten() for s in model.algorithm.learned_rates()])
    assert float(rates.max()) < 0.01  # moved by about 1e-3 of their size per step, not by their size
