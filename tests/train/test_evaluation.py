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
