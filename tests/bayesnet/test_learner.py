"""BayesNetMetaLearner: CPD export, pgmpy inference on the result, meta-fitting, persistence, bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import graphmeta
from graphmeta import DataError, GraphError
from graphmeta.bayesnet import BayesNetMetaLearner, NetworkStructure
from graphmeta.bayesnet.tabular import probe_codes


def learner_with_prior(model, pseudo_counts: float, **config) -> BayesNetMetaLearner:
    """A learner whose prior is ``pseudo_counts`` times ``model``'s CPDs."""
    learner = BayesNetMetaLearner(model, message_passing=False, **config)
    learner._initialise_prior(pseudo_counts * learner.structure.pack_network(model))
    return learner


def test_probe_rows_enumerate_configurations_in_pgmpy_order(tiny_structure):
    probe = probe_codes(tiny_structure)
    table = tiny_structure.table
    block = probe[table.offsets[2]: table.offsets[2] + 6]
    # C's parents in evidence order (B, A): B slowest
    assert block[:, [1, 0]].tolist() == [[b, a] for b in range(2) for a in range(3)]
    assert (tiny_structure.configurations(block)[:, 2] == np.arange(6)).all()


def test_exported_cpds_are_the_conjugate_posterior_in_pgmpy_order(tiny):
    support = pd.DataFrame({"A": ["lo", "hi", "hi"], "B": ["no", "no", "yes"], "C": ["x", "z", "z"]})
    exported = learner_with_prior(tiny, 4.0).adapt(support)
    assert exported.check_model()
    for name in ("A", "B", "C"):
        assert exported.get_cpds(name).state_names == tiny.get_cpds(name).state_names
    assert exported.get_cpds("C").variables == ["C", "B", "A"]
    # A: states lo, mid, hi; prior 4 * (0.2, 0.5, 0.3) plus one "lo" and two "hi"
    np.testing.assert_allclose(exported.get_cpds("A").get_values()[:, 0], np.array([1.8, 2.0, 3.2]) / 7, atol=1e-6)
    # C's column (B=no, A=hi) saw one "z"; (B=yes, A=hi) one "z"; (B=no, A=mid) nothing
    prior = tiny.get_cpds("C").get_values()  # columns in evidence order (B, A), A fastest
    expected = prior.copy()
    for column in (2, 5):
        expected[:, column] = (4 * prior[:, column] + [0, 0, 1]) / 5
    expected[:, 0] = (4 * prior[:, 0] + [1, 0, 0]) / 5  # (B=no, A=lo) saw one "x"
    np.testing.assert_allclose(exported.get_cpds("C").get_values(), expected, atol=1e-6)


def test_exported_columns_sum_to_one_and_inference_runs(asia):
    from pgmpy.inference import VariableElimination

    family = graphmeta.load_family("asia-dirichlet")
    learner = BayesNetMetaLearner("asia", message_passing=True)
    support = family.sample_dataframes(1, 7, "test", seed=3)[0]
    model = learner.adapt(support)
    assert model.check_model()
    for cpd in model.get_cpds():
        np.testing.assert_allclose(cpd.get_values().sum(0), 1.0, atol=1e-9)
        assert cpd.state_names[cpd.variable] == list(asia.get_cpds(cpd.variable).state_names[cpd.variable])
    posterior = VariableElimination(model).query(["lung"], evidence={"smoke": "yes", "xray": "yes"},
                                                 show_progress=False)
    assert posterior.values.sum() == pytest.approx(1.0)


def test_cpd_tables_of_several_sites_match_one_at_a_time():
    family = graphmeta.load_family("asia-dirichlet")
    learner = BayesNetMetaLearner("asia")
    sites = family.sample_dataframes(3, 6, "test", seed=1)
    together = learner.cpd_tables(sites)
    alone = np.stack([learner.cpd_tables([site])[0] for site in sites])
    np.testing.assert_allclose(together, alone, atol=1e-6)


def test_meta_fitted_learner_beats_bdeu_on_held_out_sites():
    from pgmpy.models import DiscreteBayesianNetwork
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator

    family = graphmeta.load_family("asia-dirichlet")
    structure = NetworkStructure.from_pgmpy("asia")
    torch.manual_seed(0)
    learner = BayesNetMetaLearner("asia", message_passing=False)
    summary = learner.meta_fit(family.sample_dataframes(40, 200, "train", seed=0), steps=60, shots=5,
                               query_shots=100, val_every=20, progress=False)
    assert summary["steps"] == 60
    sites = family.sample_dataframes(10, 305, "test", seed=0)
    supports = [site.iloc[:5] for site in sites]
    query = structure.encode([site.iloc[5:] for site in sites])
    ours = structure.log_likelihood(learner.cpd_tables(supports), query).mean()
    bdeu = []
    for support in supports:
        model = DiscreteBayesianNetwork(structure.graph.edges)
        model.add_nodes_from(structure.names)
        fitted = model.fit(support, estimator=DiscreteBayesianEstimator(state_names=structure.states))
        bdeu.append(structure.pack_network(fitted))
    theirs = structure.log_likelihood(np.stack(bdeu), query).mean()
    assert ours > theirs + 0.3


def test_rows_with_missing_values_are_used():
    family = graphmeta.load_family("asia-dirichlet")
    learner = BayesNetMetaLearner("asia", message_passing=False)
    site = family.sample_dataframes(1, 6, "test", seed=2)[0]
    site.loc[0, "xray"] = "yes" if site.loc[0, "xray"] == "no" else "no"  # a row unlike the others
    holed = site.copy()
    holed.loc[0, "xray"] = np.nan
    complete, partial = learner.cpd_tables([site, holed])
    table = learner.structure.table
    n = learner.structure.names.index
    assert not np.allclose(complete, partial)
    # xray's CPD changes (one row fewer); a variable that needs none of the holed values does not
    xray = slice(table.offsets[n("xray")], table.offsets[n("xray")] + table.configs[n("xray")])
    assert not np.allclose(complete[xray], partial[xray])
    asia = table.offsets[n("asia")]
    np.testing.assert_allclose(complete[asia], partial[asia], atol=1e-6)


def test_save_and_load_round_trip(tmp_path):
    family = graphmeta.load_family("asia-dirichlet")
    learner = BayesNetMetaLearner("asia", message_channels=8)
    learner.meta_fit(family.sample_dataframes(6, 40, "train", seed=0), steps=3, shots=5, query_shots=10,
                     val_every=3, progress=False)
    path = learner.save(tmp_path / "asia.pt")
    assert torch.load(path, weights_only=True)["config"]["message_channels"] == 8
    again = BayesNetMetaLearner.load(path)
    site = family.sample_dataframes(1, 5, "test", seed=0)
    np.testing.assert_allclose(again.cpd_tables(site), learner.cpd_tables(site), atol=1e-7)
    assert again.shots == (5, 5)
    with pytest.warns(UserWarning, match="meta-fitted for 5 support rows but adapts to 30"):
        again.cpd_tables(family.sample_dataframes(1, 30, "test", seed=0))


def test_default_meta_fit_serves_every_support_size_without_a_warning(tmp_path):
    family = graphmeta.load_family("asia-latent")
    learner = BayesNetMetaLearner("asia", message_channels=8)
    learner.meta_fit(family.sample_dataframes(6, 60, "train", seed=0), steps=2, query_shots=10, val_every=2,
                     progress=False)
    assert learner.shots == (1, 200)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for rows in (1, 30, 200):
            learner.cpd_tables(family.sample_dataframes(1, rows, "test", seed=0))
    with pytest.warns(UserWarning, match=r"meta-fitted for 1 to 200 support rows but adapts to 1000.*shots=\(1, 1000\)"):
        learner.cpd_tables(family.sample_dataframes(1, 1000, "test", seed=0))
    state = torch.load(learner.save(tmp_path / "asia.pt"), weights_only=True)
    torch.save({**state, "shots": 20}, tmp_path / "specialised.pt")  # written before ranges: one count
    assert BayesNetMetaLearner.load(tmp_path / "specialised.pt").shots == (20, 20)


def test_more_rows_bring_every_column_to_its_own_frequencies():
    """Message passing corrects the prior, never the data: with its gates wide open, every seen
    column still goes to its own frequencies as its rows grow, as fast as under a fixed prior."""
    torch.manual_seed(0)
    learner = BayesNetMetaLearner("asia")
    with torch.no_grad():
        for gate in learner.model.message_passing.gates:
            gate.fill_(1.0)
        learner.model.message_passing.node_embedding.normal_()
    structure = learner.structure
    site = graphmeta.load_family("asia-latent").sample_dataframes(1, 50, "test", seed=0)[0]
    deviations = []
    for repeat in (1, 10, 100, 1000):
        support = pd.concat([site] * repeat, ignore_index=True)
        counts = structure.counts(structure.encode([support]))[0]
        seen = counts.sum(-1) > 0
        frequencies = counts[seen] / counts[seen].sum(-1, keepdims=True)
        deviations.append(np.abs(learner.cpd_tables([support])[0][seen] - frequencies).max())
    assert deviations[0] > 0.05  # the correction is there
    assert all(later < earlier / 5 for earlier, later in zip(deviations, deviations[1:]))  # about 1 / rows
    assert deviations[-1] < 1e-3


def test_a_checkpoint_of_another_learner_is_a_checkpoint_error(tmp_path, tiny):
    learner = BayesNetMetaLearner(tiny)
    path = learner.save(tmp_path / "tiny.pt")
    state = torch.load(path, weights_only=True)
    torch.save({**state, "config": {**state["config"], "algorithm": "metasgd"}}, tmp_path / "old.pt")
    with pytest.raises(graphmeta.CheckpointError, match="old.pt.*'algorithm'"):
        BayesNetMetaLearner.load(tmp_path / "old.pt")
    state["model"] = {key: value[..., :1] for key, value in state["model"].items()}
    torch.save(state, tmp_path / "shapes.pt")
    with pytest.raises(graphmeta.CheckpointError, match="shapes.pt"):
        BayesNetMetaLearner.load(tmp_path / "shapes.pt")


def test_structure_cpds_are_ignored(tiny):
    """Only the DAG and the states count: two networks differing in CPD values give the same learner."""
    other = tiny.copy()
    cpd = other.get_cpds("A")
    other.remove_cpds(cpd)
    other.add_cpds(type(cpd)("A", 3, [[0.9], [0.05], [0.05]], state_names={"A": ["lo", "mid", "hi"]}))
    support = pd.DataFrame({"A": ["mid"], "B": ["yes"], "C": ["y"]})
    torch.manual_seed(0)
    first = BayesNetMetaLearner(tiny).cpd_tables([support])
    torch.manual_seed(0)
    second = BayesNetMetaLearner(other).cpd_tables([support])
    np.testing.assert_array_equal(first, second)


@pytest.mark.parametrize("support, error, message", [
    (pd.DataFrame({"A": ["lo"], "B": ["no"], "C": ["x"], "D": [1]}), DataError, "column 'D'"),
    (pd.DataFrame({"A": ["lo"], "B": ["maybe"], "C": ["x"]}), DataError, "column 'B': value 'maybe'"),
    (pd.DataFrame({"A": [], "B": [], "C": []}), DataError, "no observed value"),
    (pd.DataFrame({"A": [None], "B": [None], "C": [None]}), DataError, "no observed value"),
    ({"A": ["lo"]}, DataError, "pandas DataFrame"),
])
def test_bad_support_names_the_offender(tiny, support, error, message):
    with pytest.raises(error, match=message):
        BayesNetMetaLearner(tiny).adapt(support)


def test_bad_task_tables_name_the_offender(tiny):
    learner = BayesNetMetaLearner(tiny)
    good = pd.DataFrame({"A": ["lo", "hi"], "B": ["no", "yes"], "C": ["x", "z"]})
    with pytest.raises(DataError, match="task table 1, column 'C': value 'q'"):
        learner.meta_fit([good, good.assign(C=["x", "q"])], progress=False)
    with pytest.raises(DataError, match="at least 2 task tables"):
        learner.meta_fit([good], progress=False)
    with pytest.raises(graphmeta.ConfigError, match="'shot'"):
        learner.meta_fit([good, good], shot=3)
    with pytest.raises(graphmeta.ConfigError, match=r"meta_fit\(\): val_fraction must be a number > 0 and < 1, got 1\.5"):
        learner.meta_fit([good, good], val_fraction=1.5)
    with pytest.raises(graphmeta.ConfigError, match=r"meta_fit\(\): tasks must be a list of DataFrame objects"):
        learner.meta_fit(good)


def test_keywords_are_checked(tiny):
    with pytest.raises(graphmeta.ConfigError, match=r"unknown keyword 'message_chanels' in BayesNetMetaLearner "
                                                    r"\(did you mean 'message_channels'\?\)"):
        BayesNetMetaLearner(tiny, message_chanels=8)
    with pytest.raises(graphmeta.ConfigError, match=r"BayesNetMetaLearner\.message_rounds must be an integer >= 0"):
        BayesNetMetaLearner(tiny, message_rounds=-1)


def test_structure_without_state_names_is_a_graph_error(tiny):
    from pgmpy.models import DiscreteBayesianNetwork

    with pytest.raises(GraphError, match="no state names"):
        BayesNetMetaLearner(DiscreteBayesianNetwork(tiny.edges()))
    learner = BayesNetMetaLearner(DiscreteBayesianNetwork(tiny.edges()),
                                  state_names={"A": ["lo", "hi"], "B": ["no", "yes"], "C": ["x", "y"]})
    assert learner.adapt(pd.DataFrame({"A": ["hi"], "B": ["no"], "C": ["y"]})).check_model()


def test_adapt_before_meta_fit_says_so():
    learner = BayesNetMetaLearner("asia")
    rows = pd.DataFrame({name: [learner.structure.states[name][0]] for name in learner.structure.names})
    with pytest.warns(UserWarning, match="has not been meta-fitted: its CPDs are the conjugate posterior"):
        learner.adapt(rows)


def test_a_checkpoint_with_all_tables_in_one_bank_is_an_older_layout(tmp_path, tiny, monkeypatch):
    """Before Table nodes were grouped into banks by table size one bank held them all: such a
    checkpoint names the layout change instead of failing deep in ``load_state_dict``."""
    monkeypatch.setattr("graphmeta.learners.banks.table.BANK_COST", 1e9)  # one bank, as before
    path = BayesNetMetaLearner(tiny).save(tmp_path / "one_bank.pt")
    monkeypatch.setattr("graphmeta.learners.banks.table.BANK_COST", 0)  # a bank per table size
    assert len(BayesNetMetaLearner(tiny).model.banks) == 3
    with pytest.raises(graphmeta.CheckpointError, match=r"one_bank.pt holds .* older layout.*\(3, 6, 3\).*meta-fit"):
        BayesNetMetaLearner.load(path)
