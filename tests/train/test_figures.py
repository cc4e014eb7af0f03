"""Figures are drawn by the caller from what training and evaluation recorded; evaluation never imports them."""

import ast
import importlib.util
from pathlib import Path

import pytest

from graphmeta.train import OnlineMetaLearner
from graphmeta.train.figures import plot_run_figures


def test_plot_run_figures_draws_the_run_its_ablation_and_the_evaluation(make_trainer):
    trainer = make_trainer(message_passing=True)
    trainer.fit()
    report = trainer.evaluate(num_tasks=4, scratch_steps=2, tasks_per_batch=4)
    run = trainer.run
    assert not run.figures.exists() and not (run.ablation / "figures").exists()
    paths = plot_run_figures(run, report)
    expected = [run.figures / "curves.png", run.ablation / "figures" / "curves.png",
                run.figures / "graph-test-loss.png", run.figures / "graph-test-improvement.png"]
    assert paths == expected and all(path.is_file() for path in expected)


def test_plot_run_figures_of_an_online_run(tmp_path, family):
    import graphmeta as gm

    model = gm.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.1, message_passing=False)
    learner = OnlineMetaLearner(model, family, tasks=4, buffer_size=2, meta_batch_size=2, shots=2, query_shots=3,
                                loss_threshold=0.5, progress=False, run_dir=str(tmp_path), name="online")
    learner.fit()
    assert plot_run_figures(str(learner.run.path)) == [learner.run.figures / "online.png"]
    assert (learner.run.figures / "online.png").is_file()


def imported_modules(module: str) -> set[str]:
    """Every module ``module`` imports, at its top or inside a function (relative imports resolved)."""
    tree = ast.parse(Path(importlib.util.find_spec(module).origin).read_text())
    package = module.rsplit(".", 1)[0].split(".")
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = ".".join(package[:len(package) - node.level + 1]) if node.level else ""
            names.add(".".join(filter(None, [base, node.module])))
    return names


@pytest.mark.parametrize("module", ["evaluation", "run_loop", "trainer", "online", "outer_step", "hooks"])
def test_training_and_evaluation_never_draw(module):
    """figures imports evaluation, never the reverse; the learners and their loop draw nothing."""
    imported = imported_modules(f"graphmeta.train.{module}")
    assert not {name for name in imported if name == "graphmeta.train.figures" or name.startswith("matplotlib")}
