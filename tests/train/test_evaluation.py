"""EvaluationReport: the table names the adaptation steps it was evaluated with, and shows the
regression nodes' squared error and predictive negative log-likelihood beside the loss."""

import math

import torch

from graphmeta.train.evaluation import Estimate, EvaluationReport, MethodResult, nanmean


def report(adapt_steps: int) -> EvaluationReport:
    loss = torch.tensor([[0.5, 1.0], [0.7, 0.9], [0.6, 1.1]])
    methods = {key: MethodResult(loss + shift, torch.full_like(loss, float("nan")))
               for key, shift in (("no_adaptation", 0.3), ("adapted", 0.0), ("from_scratch", 0.5))}
    return EvaluationReport("run", "test", 5, adapt_steps, ["a", "b"], methods)


def test_the_table_names_the_adaptation_steps():
    one, ten = report(1).table(per_node=True), report(10).table(per_node=True)
    assert "5 shots, 1 adaptation step (mean" in one and "after adaptation (1 step)" in one
    assert "5 shots, 10 adaptation steps (mean" in ten and ten.count("after adaptation (10 steps)") == 2
    assert report(10).to_dict()["methods"]["adapted"]["label"] == "after adaptation"
    assert report(10).to_dict()["adapt_steps"] == 10


def test_from_scratch_settings_are_the_best_on_validation_tasks(monkeypatch):
    """The baseline's steps and rate are the grid point whose learners, each trained afresh on the
    validation supports, have the lowest validation query loss; a fixed value is kept."""
    import graphmeta as gm
    from graphmeta.train import evaluation

    monkeypatch.setattr(evaluation, "SCRATCH_STEPS", (1, 20))
    monkeypatch.setattr(evaluation, "SCRATCH_RATES", (1e-4, 0.03))
    family = gm.load_family("sinusoid")
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph)
    validation = family.sample(6, 5, 10, "val", seed=1)
    losses = {(steps, rate): evaluation.query_results(
                  model, validation, 6, lambda chunk: model.fit_from_scratch(chunk.support, steps, rate, seed=0)
              ).total_loss().mean
              for steps in (1, 20) for rate in (1e-4, 0.03)}
    assert len(set(losses.values())) == 4  # the grid points differ, so the choice means something
    assert evaluation.choose_scratch_settings(model, validation, seed=0) == min(losses, key=losses.get)
    assert evaluation.choose_scratch_settings(model, validation, 0, steps=1)[0] == 1
    assert evaluation.choose_scratch_settings(model, validation, 0, rate=1e-4)[1] == 1e-4
    assert evaluation.choose_scratch_settings(model, validation, 0, steps=5, rate=0.5) == (5, 0.5)


def test_evaluate_names_the_from_scratch_settings_it_chose(tmp_path, monkeypatch):
    import graphmeta as gm
    from graphmeta.train import evaluation

    monkeypatch.setattr(evaluation, "SCRATCH_STEPS", (1, 3))
    config = {"family": "sinusoid", "model": {"inner_steps": 1},
              "train": {"steps": 2, "meta_batch_size": 2, "shots": 3, "query_shots": 4, "val_every": 2,
                        "val_tasks": 4, "run_dir": str(tmp_path), "name": "run", "progress": False},
              "evaluate": {"num_tasks": 4, "ablation": False}}
    trainer = gm.Trainer.from_config(config)
    trainer.fit()
    report = trainer.evaluate()
    label = report.label("from_scratch")
    assert label.startswith("trained from scratch (") and label.endswith(", chosen on validation tasks)")
    assert report.to_dict()["methods"]["from_scratch"]["settings"] == report.settings["from_scratch"]
    assert report.methods["from_scratch"].nll.isnan().all()  # no predictive variance: shown as "-"
    assert not report.methods["from_scratch"].mse.isnan().any()
    for key in ("no_adaptation", "adapted"):  # the meta-learned noise scale
        assert report.methods[key].nll.isfinite().all()
    assert "query MSE" in report.table() and "query NLL" in report.table()
    fixed = trainer.evaluate(scratch_steps=3, scratch_lr=0.01)
    assert fixed.label("from_scratch") == "trained from scratch (3 steps at rate 0.01)"


def scored_report() -> EvaluationReport:
    """Node ``a`` regression, ``b`` classification; the from-scratch row has no predictive variance."""
    loss = torch.tensor([[0.5, 1.0], [0.7, 0.9], [0.6, 1.1]])
    nan = torch.full((3, 1), math.nan)
    accuracy = torch.cat([nan, torch.tensor([[0.5], [0.7], [0.4]])], dim=1)
    mse = torch.cat([loss[:, :1], nan], dim=1)
    nll = torch.cat([torch.tensor([[0.9], [1.3], [1.1]]), nan], dim=1)
    methods = {"no_adaptation": MethodResult(loss + 0.3, accuracy, mse + 0.3, nll + 0.2),
               "adapted": MethodResult(loss, accuracy, mse=mse, nll=nll),
               "from_scratch": MethodResult(loss + 0.5, accuracy, mse=mse + 0.5)}
    return EvaluationReport("run", "test", 5, 1, ["a", "b"], methods)


def test_a_method_result_without_mse_or_nll_has_them_undefined():
    loss = torch.rand(4, 3)
    result = MethodResult(loss, loss)
    assert result.mse.shape == result.nll.shape == loss.shape
    assert result.mse.isnan().all() and result.nll.isnan().all()
    assert str(result.total_mse()) == str(result.node_nll(0)) == "-"


def test_the_table_shows_the_regression_nodes_mse_and_nll_and_a_dash_without_a_variance():
    report = scored_report()
    assert report.regression_nodes == [0]
    table = report.table(per_node=True)
    header = table.splitlines()[1]
    assert header.index("query loss") < header.index("accuracy") < header.index("query MSE") < header.index("query NLL")
    for key, result in report.methods.items():
        row = next(line for line in table.splitlines() if line.startswith(report.label(key)))
        mse, nll = Estimate.over_tasks(result.mse[:, 0]), Estimate.over_tasks(result.nll[:, 0])
        assert row.rstrip().endswith(f"{mse}  {nll}" if key != "from_scratch" else f"{mse}  -")
    for title in ("per-node query MSE", "per-node query NLL"):
        section = table.split(title)[1].split("per-node")[0]
        node_rows = section.strip().splitlines()[2:]
        assert [line.split()[0] for line in node_rows] == ["a"]  # the regression node alone
    summary = report.to_dict()["methods"]
    adapted = report.methods["adapted"]
    assert summary["adapted"]["nll"] == Estimate.over_tasks(nanmean(adapted.nll, dim=1)).to_dict()
    assert summary["adapted"]["per_node"]["a"]["mse"] == adapted.node_mse(0).to_dict()
    assert "mse" not in summary["adapted"]["per_node"]["b"] and "nll" not in summary["adapted"]["per_node"]["b"]
    assert math.isnan(summary["from_scratch"]["nll"]["mean"]) and summary["from_scratch"]["nll"]["tasks"] == 0


def test_a_report_without_regression_nodes_has_no_mse_or_nll_columns():
    text, summary = report(1).table(per_node=True), report(1).to_dict()
    assert "query MSE" not in text and "query NLL" not in text
    assert "mse" not in summary["methods"]["adapted"] and "nll" not in summary["methods"]["adapted"]


def test_the_pooled_model_predicts_with_the_noise_of_its_training_rows():
    """Each learned noise scale of the pooled model is the root mean squared residual of its output
    on the training rows (the maximum-likelihood Gaussian noise), by hand from its predictions."""
    import graphmeta as gm
    from graphmeta.train import evaluation

    family = gm.load_family("compositional-chain", num_nodes=3)
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph)
    rows = family.sample(1, 600, 1, "train", seed=3).support  # one task of 600 rows: several chunks of 256
    pooled = evaluation.with_training_noise(model.fit_from_scratch(rows, steps=20, lr=0.01), rows)
    assert all(bank.log_noise_std.abs().sum() == 0 for bank in model.banks)  # the model's own are untouched
    observed = {name: rows.values[..., pooled.layout.value_slices[name]] for name in family.graph.names}
    inputs = {name: rows.features[..., pooled.layout.feature_slices[name]] for name in family.graph.names
              if family.graph.subtask(name).in_dim}
    predicted = pooled.predict(inputs, observed)
    for bank in pooled.banks:
        for row, name in enumerate(bank.names):
            residual = (predicted[name] - observed[name])[0]
            expected = residual.pow(2).mean(0).sqrt()
            torch.testing.assert_close(bank.log_noise_std[row].exp(), expected, rtol=1e-5, atol=0)
