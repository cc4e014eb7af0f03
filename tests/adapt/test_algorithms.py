"""The algorithm classes: what each adapts, its learned rates, MAML++'s multi-step loss and
CAVIA's context, each against the per-node reference where it changes the meta-loss."""

import pytest
import torch

import graphmeta as gm
from graphmeta.adapt.algorithms import ALGORITHMS, CAVIA, MAMLPlusPlus, algorithm_options
from graphmeta.testing.reference import reference_meta_loss
from graphmeta.testing.reference_algorithms import REFERENCE_ALGORITHMS
from tests.test_model import build, engine_and_reference, mixed_graph, task_data


def test_every_algorithm_is_registered_under_its_name_and_defined_by_the_reference():
    assert {"maml", "fomaml", "metasgd", "anil", "reptile", "mamlpp", "cavia", "alpaca"} <= set(ALGORITHMS)
    assert all(cls.name == name for name, cls in ALGORITHMS.items())
    assert set(REFERENCE_ALGORITHMS) == set(ALGORITHMS)
    for name, cls in ALGORITHMS.items():  # the reference tests every option with values of its type
        assert set(REFERENCE_ALGORITHMS[name].test_options) == set(algorithm_options(cls)), name
    with pytest.raises(gm.ConfigError, match="algorithm must be one of .*, got 'cavai'.*did you mean 'cavia'"):
        gm.GraphMetaLearner(mixed_graph(), algorithm="cavai")


def test_an_algorithm_registered_twice_is_refused():
    with pytest.raises(gm.ConfigError, match="algorithm 'maml' is already registered"):
        ALGORITHMS.register(type("Again", (ALGORITHMS["maml"],), {"name": "maml"}))


def test_algorithm_options_are_checked_against_the_algorithms_own_signature():
    model = gm.GraphMetaLearner(mixed_graph(), "cavia", algorithm_options={"context_dim": 7})
    assert model.algorithm.context_dim == 7 and model.config["algorithm_options"] == {"context_dim": 7}
    with pytest.raises(gm.ConfigError, match="unknown key 'context_dims'.*did you mean 'context_dim'"):
        gm.GraphMetaLearner(mixed_graph(), "cavia", algorithm_options={"context_dims": 7})
    with pytest.raises(gm.ConfigError, match="context_dim must be an integer >= 1, got 0"):
        gm.GraphMetaLearner(mixed_graph(), "cavia", algorithm_options={"context_dim": 0})
    with pytest.raises(gm.ConfigError, match="maml takes no options, got \\['context_dim'\\]"):
        gm.GraphMetaLearner(mixed_graph(), "maml", algorithm_options={"context_dim": 7})


@pytest.mark.parametrize("key, algorithm", [("context_dim", "cavia"), ("prior_components", "alpaca")])
def test_an_option_given_where_it_used_to_live_names_its_new_place(key, algorithm):
    with pytest.raises(gm.ConfigError, match=f"keyword '{key}' of GraphMetaLearner has moved: it is an option of "
                                             f"the {algorithm} algorithm now: pass algorithm_options="):
        gm.GraphMetaLearner(mixed_graph(), algorithm, **{key: 3})


def test_the_engine_reads_what_an_algorithm_declares_not_what_it_overrides():
    """The low-rank step is a declared setting: an algorithm that says it has another step gets
    dense weights at every step (no weight stays low-rank), with the same result."""
    from graphmeta.learners.banks.low_rank import LowRankWeight

    graph = mixed_graph()
    support = task_data(graph, 2, 3, 5)
    batch = gm.TaskBatch.from_tensors(graph, support, support)
    plain = build(graph, "maml", message_passing=False)
    declared = build(graph, "maml", message_passing=False)
    declared.algorithm.low_rank_step = False

    def low_rank_weights(model):
        adaptation = model._adapt(batch.support, 3, create_graph=False, track_meta_gradient=False)
        return sum(isinstance(w, LowRankWeight) for weights in adaptation.plain for w in weights.values())

    assert low_rank_weights(plain) > 0 and low_rank_weights(declared) == 0
    torch.testing.assert_close(declared.adapt(batch, steps=3).fast, plain.adapt(batch, steps=3).fast,
                               rtol=1e-9, atol=1e-12)


def adapted_weights(algorithm: str) -> tuple[gm.GraphMetaLearner, list[dict[str, torch.Tensor]]]:
    graph = mixed_graph(gnn=True)
    model = build(graph, algorithm, message_passing=False)
    support = task_data(graph, 2, 3, 5)
    return model, model.adapt(gm.TaskBatch.from_tensors(graph, support, support)).fast


@pytest.mark.parametrize("algorithm", ["anil", "cavia"])
def test_shared_weights_stay_at_theta(algorithm):
    """ANIL moves the head only; CAVIA moves no network weight but the first bias (its context)."""
    model, fast = adapted_weights(algorithm)
    for bank, weights in zip(model.banks, fast):
        moving = set(bank.head) if algorithm == "anil" else {bank.first_bias}
        for name, weight in weights.items():
            theta = bank.theta[name].detach().expand_as(weight)
            assert torch.equal(weight, theta) != (name in moving), (bank, name)


def test_maml_moves_every_weight():
    model, fast = adapted_weights("maml")
    for bank, weights in zip(model.banks, fast):
        for name, weight in weights.items():
            assert not torch.equal(weight, bank.theta[name].detach().expand_as(weight)), (bank, name)


@pytest.mark.parametrize("algorithm", ["metasgd", "mamlpp"])
@pytest.mark.parametrize("message_passing", [False, True])
def test_learned_rates_of_every_parameter_equal_reference(algorithm, message_passing):
    """Rates that differ per parameter, node and step are applied where they belong."""
    graph = mixed_graph()
    model = build(graph, algorithm, message_passing)
    with torch.no_grad():
        for scales in model.algorithm.learned_rates():
            scales.uniform_(0.2, 2.0)
    (loss, grads), (ref_loss, ref_grads), _ = engine_and_reference(model, graph, masked=True)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-9)
    for g, r in zip(grads, ref_grads):
        if g is not None or r is not None:
            torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-9)


def test_mamlpp_anneals_its_multi_step_loss_to_the_last_step():
    graph = mixed_graph()
    model = build(graph, "mamlpp", message_passing=True)
    algorithm = model.algorithm
    assert isinstance(algorithm, MAMLPlusPlus)
    torch.testing.assert_close(algorithm.importances(4), torch.full((4,), 0.25, dtype=torch.float64))  # the model's dtype
    algorithm.set_progress(1.0)
    annealed = algorithm.importances(4)
    torch.testing.assert_close(annealed, torch.tensor([0.0075, 0.0075, 0.0075, 0.9775], dtype=torch.float64))
    support, query = task_data(graph, 3, 4, 1), task_data(graph, 3, 4, 2)
    batch = gm.TaskBatch.from_tensors(graph, support, query)
    losses = []
    for progress in (0.0, 0.05, 1.0):
        algorithm.set_progress(progress)
        loss, _ = model.meta_loss(batch)
        torch.testing.assert_close(loss, reference_meta_loss(model, support, query), rtol=1e-6, atol=1e-9)
        losses.append(float(loss.detach()))
    assert len(set(losses)) == 3  # the weights of the steps really change the meta-loss


def test_mamlpp_progress_is_saved_with_the_model():
    model = build(mixed_graph(), "mamlpp", message_passing=False)
    model.algorithm.set_progress(0.4)
    state = model.state_dict()
    fresh = build(mixed_graph(), "mamlpp", message_passing=False)
    fresh.load_state_dict(state)
    assert float(fresh.algorithm.progress) == pytest.approx(0.4)


def test_cavia_adapts_a_context_of_its_size_and_learns_its_projection():
    graph = mixed_graph()
    model = build(graph, "cavia", message_passing=False, algorithm_options={"context_dim": 3})
    assert isinstance(model.algorithm, CAVIA)
    assert {tuple(p.shape[1:2]) for p in model.algorithm.projections.values()} == {(3,)}
    (loss, grads), (ref_loss, ref_grads), parameters = engine_and_reference(model, graph)
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    by_name, ref_by_name = dict(zip(names, grads)), dict(zip(names, ref_grads))
    for b in model.algorithm.projections:
        projection = f"algorithm.projections.{b}"
        assert by_name[projection].abs().sum() > 0
        torch.testing.assert_close(by_name[projection], ref_by_name[projection], rtol=1e-6, atol=1e-9)
