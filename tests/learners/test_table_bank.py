"""Table learners: the conjugate Dirichlet update against the per-node reference and by hand."""

import pytest
import torch

import graphmeta as gm
from graphmeta.testing.reference import reference_meta_loss
from tests.test_model import observed_masks, task_data


def table_graph() -> gm.TaskGraph:
    """Table nodes with 0, 1 and 2 parents of different widths, an MLP parent and an MLP child."""
    return (gm.TaskGraph()
            .add_subtask("weather", kind="classification", num_classes=2, learner="table")
            .add_subtask("season", in_dim=1, kind="classification", num_classes=3)
            .add_subtask("traffic", kind="classification", num_classes=4, learner=gm.Table(prior_strength=2.0))
            .add_subtask("late", kind="classification", num_classes=2, learner="table")
            .add_subtask("delay", in_dim=0, out_dim=1)
            .add_dependency("weather", "traffic").add_dependency("season", "traffic")
            .add_dependency("traffic", "late").add_dependency("traffic", "delay"))


def build(algorithm: str, message_passing: bool) -> gm.GraphMetaLearner:
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(table_graph(), algorithm=algorithm, inner_steps=2, inner_lr=0.25,
                                message_passing=message_passing).double()
    with torch.no_grad():
        for bank in model.banks:
            first = next(iter(bank.theta.values()))  # a Table's log_counts, an MLP's first weight
            first.add_(torch.randn_like(first))  # tables that differ between columns
        if message_passing:
            for gate in model.message_passing.gates:
                gate.uniform_(0.1, 0.5)
            model.message_passing.node_embedding.normal_()
    return model


@pytest.mark.parametrize("algorithm", ["maml", "fomaml", "metasgd", "anil", "mamlpp", "cavia"])
@pytest.mark.parametrize("message_passing", [False, True])
def test_meta_loss_and_meta_gradient_equal_reference(algorithm, message_passing):
    assert_meta_loss_and_gradient_equal_reference(build(algorithm, message_passing))


def assert_meta_loss_and_gradient_equal_reference(model: gm.GraphMetaLearner) -> None:
    """The engine's meta-loss and meta-gradient of every parameter equal the per-node reference's
    on random data and masks, and some gradient is not zero."""
    graph = model.graph
    support, query = task_data(graph, 3, 6, 1), task_data(graph, 3, 6, 2)
    s_obs, q_obs = observed_masks(graph, 3, 6, 3), observed_masks(graph, 3, 6, 4)
    parameters = [p for p in model.parameters() if p.requires_grad]
    loss, _ = model.meta_loss(gm.TaskBatch.from_tensors(graph, support, query, s_obs, q_obs))
    grads = torch.autograd.grad(loss, parameters, allow_unused=True)
    ref_loss = reference_meta_loss(model, support, query, s_obs, q_obs)
    ref_grads = torch.autograd.grad(ref_loss, parameters, allow_unused=True)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-6, atol=1e-9)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    for p, g, r in zip(parameters, grads, ref_grads):
        g = torch.zeros_like(p) if g is None else g
        r = torch.zeros_like(p) if r is None else r
        torch.testing.assert_close(g, r, rtol=1e-6, atol=1e-9)


def test_adaptation_is_the_dirichlet_posterior_mean():
    model = build("maml", message_passing=False)
    graph = model.graph
    support = task_data(graph, 1, 9, 5)
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, support, support))
    bank = next(b for b in model.banks if "traffic" in b.names)
    row = bank.names.index("traffic")
    prior = bank.theta["log_counts"][row].detach().exp()[:, :4]
    weather, season, traffic = (support[name][1][0] for name in ("weather", "season", "traffic"))
    counts = torch.zeros_like(prior)
    for w, s, v in zip(weather, season, traffic):
        counts[w * 3 + s, v] += 1  # weather slowest, season's 3 classes fastest
    expected = (prior + counts) / (prior + counts).sum(-1, keepdim=True)
    posterior = adapted.fast[list(model.banks).index(bank)]["log_counts"][0, row].exp()[:, :4]
    torch.testing.assert_close(posterior / posterior.sum(-1, keepdim=True), expected)
    assert counts.sum() == 9  # every shot counted once


def test_steps_beyond_the_first_change_nothing():
    model = build("maml", message_passing=False)
    support = task_data(model.graph, 2, 5, 6)
    batch = gm.TaskBatch.from_tensors(model.graph, support, support)
    bank = next(b for b in model.banks if b.closed_form)
    one, three = (model.adapt(batch, steps=s).fast[list(model.banks).index(bank)]["log_counts"] for s in (1, 3))
    torch.testing.assert_close(one, three)
    zero = model.adapt(batch, steps=0).fast[list(model.banks).index(bank)]["log_counts"]
    torch.testing.assert_close(zero[0], bank.theta["log_counts"].detach())


def test_unobserved_parents_give_the_mixture_of_columns():
    model = build("maml", message_passing=False)
    graph = model.graph
    adapted = model.adapt(gm.TaskBatch.from_tensors(graph, task_data(graph, 1, 4, 7), task_data(graph, 1, 4, 7)))
    season = torch.tensor([[0.3], [-1.0]], dtype=torch.float64)[None]  # one task, two shots
    predictions = adapted.predict({"season": season}, observed={"weather": torch.tensor([[1, 0]])})
    bank = next(b for b in model.banks if "traffic" in b.names)
    table = adapted.fast[list(model.banks).index(bank)]["log_counts"][0, bank.names.index("traffic"), :, :4].softmax(-1)
    p_season = predictions["season"][0]
    for k, weather in enumerate((1, 0)):
        rows = weather * 3 + torch.arange(3)
        expected = (p_season[k, :, None] * table[rows]).sum(0)
        torch.testing.assert_close(predictions["traffic"][0, k], expected)


def test_table_learner_errors_name_the_subtask():
    with pytest.raises(gm.GraphError, match="'x'.*Table.*classification.*in_dim=0"):
        gm.TaskGraph().add_subtask("x", in_dim=2, kind="classification", num_classes=2, learner="table")
    with pytest.raises(gm.GraphError, match="'x'.*Table"):
        gm.TaskGraph().add_subtask("x", out_dim=1, learner="table")
    graph = (gm.TaskGraph().add_subtask("r", in_dim=1)
             .add_subtask("c", kind="classification", num_classes=2, learner="table").add_dependency("r", "c"))
    with pytest.raises(gm.GraphError, match="'c'.*parent 'r' is a regression subtask"):
        graph.validate()
    with pytest.raises(gm.GraphError, match="prior_strength"):
        gm.Table(prior_strength=0)
    with pytest.raises(gm.ConfigError, match="reptile"):
        gm.GraphMetaLearner(table_graph(), algorithm="reptile")


def test_table_learner_round_trips_through_a_dict():
    graph = table_graph()
    again = gm.TaskGraph.from_dict(graph.to_dict())
    assert again == graph
    assert again.subtask("traffic").learner == gm.Table(prior_strength=2.0)


def test_partition_puts_a_large_table_in_a_bank_of_its_own():
    """Twenty one-column nodes and one node with 512 parent configurations: one bank would pad
    every table to 512 rows, so the large one goes alone; a small graph keeps one bank."""
    from graphmeta.learners.banks.table import TableBank

    graph = gm.TaskGraph()
    for i in range(20):
        graph = graph.add_subtask(f"x{i}", kind="classification", num_classes=8, learner="table")
    graph = graph.add_subtask("big", kind="classification", num_classes=2, learner="table")
    for i in range(3):
        graph = graph.add_dependency(f"x{i}", "big")
    assert TableBank.partition(graph, graph.names) == [[f"x{i}" for i in range(20)], ["big"]]
    model = gm.GraphMetaLearner(graph)
    assert [len(bank) for bank in model.banks] == [20, 1]
    assert [bank.configurations for bank in model.banks] == [1, 512]
    small = table_graph()
    tables = [name for name in small.names if small.subtask(name).learner.type == "table"]
    assert TableBank.partition(small, tables) == [tables]


@pytest.mark.parametrize("algorithm", ["maml", "mamlpp"])
@pytest.mark.parametrize("message_passing", [False, True])
def test_tables_split_into_several_banks_equal_reference(monkeypatch, algorithm, message_passing):
    """With no cost per bank every distinct table size gets its own bank: the engine still
    matches the per-node reference, meta-loss and meta-gradient."""
    monkeypatch.setattr("graphmeta.learners.banks.table.BANK_COST", 0)
    model = build(algorithm, message_passing)
    assert sum(bank.closed_form for bank in model.banks) == 3  # weather and late (one spec) apart, traffic
    assert_meta_loss_and_gradient_equal_reference(model)
