"""EvaluationReport: the table names the adaptation steps it was evaluated with."""

import torch

from graphmeta.train.evaluation import EvaluationReport, MethodResult


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
    fixed = trainer.evaluate(scratch_steps=3, scratch_lr=0.01)
    assert fixed.label("from_scratch") == "trained from scratch (3 steps at rate 0.01)"
