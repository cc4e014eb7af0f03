"""Trainer: run directory, reproducibility, exact resume (and what a resume may change), non-finite
losses, early stopping, evaluation."""

import json
import math

import pytest
import torch
import yaml

import graphmeta as gm
from graphmeta.train import Hook, Trainer
from graphmeta.train.checkpoint import load_checkpoint
from graphmeta.train.schedules import LearningRateSchedule


def test_fit_writes_the_run_directory(make_trainer):
    trainer = make_trainer()
    summary = trainer.fit()
    run = trainer.run
    for path in (run.config, run.graph, run.metrics, run.last, run.best, run.summary):
        assert path.is_file(), path
    assert not run.figures.exists()  # training writes numbers; drawing is the caller's (graphmeta.train.figures)
    config = yaml.safe_load(run.config.read_text())
    assert config["family"] == {"name": "compositional-chain", "num_nodes": 3, "max_parents": 3, "branching": 2,
                                "latent_nodes": "none"}
    assert config["train"]["steps"] == 12 and config["model"]["inner_lr"] == 0.1
    assert gm.TaskGraph.load(run.graph) == trainer.model.graph
    records = [json.loads(line) for line in run.metrics.read_text().splitlines()]
    assert [r["step"] for r in records if r["split"] == "train"] == [2, 4, 6, 8, 10, 12]
    validations = [r for r in records if r["split"] == "val"]
    assert [r["step"] for r in validations] == [0, 4, 8, 12]  # the starting point, then every val_every steps
    assert set(validations[0]["per_node"]) == set(trainer.model.graph.names)
    best = min(validations, key=lambda r: r["loss"])
    assert summary["best_step"] == best["step"] == load_checkpoint(run.best)["step"]
    assert summary["status"] == "completed" and summary["steps"] == 12
    assert json.loads(run.summary.read_text())["training"]["best_step"] == best["step"]
    assert load_checkpoint(run.last)["step"] == 12


def test_model_ends_with_the_best_weights(make_trainer, assert_same_state):
    trainer = make_trainer(outer_lr=0.05)
    trainer.fit()
    assert_same_state(trainer.model.state_dict(), load_checkpoint(trainer.run.best)["model"])


def test_same_seed_same_run(make_trainer, assert_same_state, tmp_path):
    first = make_trainer(name="a")
    first.fit()
    second = make_trainer(name="b")
    second.fit()
    assert_same_state(load_checkpoint(first.run.last)["model"], load_checkpoint(second.run.last)["model"])
    third = make_trainer(name="c", seed=1)
    third.fit()
    a, c = (load_checkpoint(trainer.run.last)["model"] for trainer in (first, third))
    assert not all(torch.equal(a[name], c[name]) for name in a)


class Interrupt(Exception):
    pass


def test_interrupted_run_resumes_exactly(make_trainer, assert_same_state, monkeypatch):
    options = {"schedule": "cosine", "warmup_steps": 3, "grad_clip": 0.5, "message_passing": True}
    reference = make_trainer(name="reference", **options)
    reference.fit()

    interrupted = make_trainer(name="interrupted", **options)
    original = Trainer.run_unit

    def crash_at_step_7(self):
        if self.step == 6:
            raise Interrupt
        return original(self)

    monkeypatch.setattr(Trainer, "run_unit", crash_at_step_7)
    with pytest.raises(Interrupt):
        interrupted.fit()
    monkeypatch.undo()
    assert load_checkpoint(interrupted.run.last)["step"] == 4

    with pytest.raises(gm.ConfigError, match="already holds a run"):
        make_trainer(name="interrupted", **options).fit()
    resumed = make_trainer(name="interrupted", **options)
    resumed.fit(resume=True)
    for checkpoint in ("last", "best"):
        assert_same_state(load_checkpoint(getattr(reference.run, checkpoint))["model"],
                          load_checkpoint(getattr(resumed.run, checkpoint))["model"])
    steps = [(r["split"], r["step"]) for r in resumed.run.read_metrics()]
    assert steps == [(r["split"], r["step"]) for r in reference.run.read_metrics()]


def nan_at(model, steps):
    """Make ``model.meta_loss`` non-finite on the given (1-based) calls."""
    original, calls = model.meta_loss, []

    def meta_loss(batch, metrics=True):
        calls.append(1)
        loss, metrics = original(batch, metrics)
        return (loss * math.nan if len(calls) in steps else loss), metrics

    model.meta_loss = meta_loss


def test_nonfinite_loss_stops_with_a_clear_error(make_trainer):
    trainer = make_trainer(checkpoint_every=1)
    nan_at(trainer.model, {3})
    with pytest.raises(gm.TrainingError, match=r"non-finite meta-loss \(nan\) at step 3.*on_nonfinite"):
        trainer.fit()
    state = load_checkpoint(trainer.run.last)
    assert state["step"] == 2
    assert all(torch.isfinite(t).all() for t in state["model"].values())
    assert json.loads(trainer.run.summary.read_text())["training"]["status"] == "failed"


def test_nonfinite_loss_skips_the_step(make_trainer):
    trainer = make_trainer(on_nonfinite="skip")
    nan_at(trainer.model, {3, 4, 9})
    summary = trainer.fit()
    assert summary["skipped_updates"] == 3 and summary["steps"] == 12 and summary["updates"] == 12
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    skipped = [r.get("skipped", 0) for r in trainer.run.read_metrics() if r["split"] == "train"]
    assert sum(skipped) == 3


def test_nonfinite_parameters_are_never_checkpointed(make_trainer):
    trainer = make_trainer()
    with torch.no_grad():
        next(trainer.model.parameters())[0].fill_(math.nan)
    with pytest.raises(gm.TrainingError, match="is not finite"):
        trainer.save()
    assert not trainer.run.last.exists()


def test_early_stopping(make_trainer):
    trainer = make_trainer(outer_lr=0.0, steps=40, val_every=2, early_stopping_patience=3)
    summary = trainer.fit()
    assert summary["status"] == "early stopped"
    assert summary["best_step"] == 0 and summary["steps"] == 6  # nothing beats the start; 3 stale validations
    assert load_checkpoint(trainer.run.last)["step"] == 6


def test_learning_rate_follows_the_schedule(make_trainer):
    trainer = make_trainer(schedule="exponential", final_lr_ratio=0.1, outer_lr=1e-2, log_every=1)
    trainer.fit()
    rates = [r["lr"] for r in trainer.run.read_metrics() if r["split"] == "train"]
    assert rates[0] == pytest.approx(1e-2 * 0.1 ** (1 / 11)) and rates[-1] == pytest.approx(1e-3)


def test_evaluate_with_ablation(make_trainer):
    trainer = make_trainer(message_passing=True)
    trainer.fit()
    report = trainer.evaluate(num_tasks=10, scratch_steps=5, tasks_per_batch=4)
    assert list(report.methods) == ["no_adaptation", "adapted", "from_scratch", "no_message_passing"]
    assert report.num_tasks == 10 and not report.has_accuracy
    ablation = trainer.run.path / "ablation"
    assert (ablation / "checkpoints" / "best.pt").is_file()
    assert yaml.safe_load((ablation / "config.yaml").read_text())["model"]["message_passing"] is False

    written = json.loads((trainer.run.path / "evaluation-test-1step.json").read_text())
    adapted = written["methods"]["adapted"]
    per_task = report.methods["adapted"].loss.nanmean(1)
    assert adapted["loss"]["mean"] == pytest.approx(float(per_task.mean()))
    assert adapted["loss"]["ci95"] == pytest.approx(2.2621571628 * float(per_task.std()) / math.sqrt(10))
    assert set(adapted["per_node"]) == set(trainer.model.graph.names)
    assert json.loads(trainer.run.summary.read_text())["evaluation"]["num_tasks"] == 10
    assert not trainer.run.figures.exists() and not (ablation / "figures").exists()  # evaluation draws nothing
    table = report.table(per_node=True)
    assert "ablation: no message passing" in table and "± " in table and "n2" in table

    again = trainer.evaluate(num_tasks=10, scratch_steps=5, tasks_per_batch=4)
    assert torch.equal(again.methods["no_message_passing"].loss, report.methods["no_message_passing"].loss)


def test_evaluate_without_message_passing_has_no_ablation(make_trainer):
    trainer = make_trainer(steps=2, val_every=2)
    trainer.fit()
    report = trainer.evaluate(num_tasks=4, scratch_steps=2, split="val")
    assert "no_message_passing" not in report.methods
    assert trainer.run.evaluation("val", 1).is_file()
    assert not (trainer.run.path / "ablation").exists()


def test_trainer_refuses_online_mode(family):
    model = gm.GraphMetaLearner(family.graph, message_passing=False)
    with pytest.raises(gm.ConfigError, match="OnlineMetaLearner"):
        gm.Trainer(model, family, mode="online")


def test_resume_with_more_steps_follows_the_new_schedule(make_trainer, rates_used):
    """The resumed run's schedule is its own config's (steps, warmup, final ratio), from the step it stopped at."""
    make_trainer(steps=6, schedule="cosine", warmup_steps=2, final_lr_ratio=0.1).fit()
    resumed = make_trainer(steps=12, schedule="cosine", warmup_steps=3, final_lr_ratio=0.5, log_every=1)
    rates = rates_used(resumed)
    resumed.fit(resume=True, allow_changes=True)
    schedule = LearningRateSchedule("cosine", steps=12, warmup_steps=3, final_lr_ratio=0.5)
    assert resumed.scheduler.lr_lambdas[0] == schedule
    assert rates == pytest.approx([1e-2 * schedule(step) for step in range(6, 12)])
    logged = [r["lr"] for r in resumed.run.read_metrics() if r["split"] == "train" and r["step"] > 6]
    assert logged == pytest.approx([1e-2 * schedule(step) for step in range(7, 13)])
    assert rates[-1] == pytest.approx(5e-3)


def test_resume_with_another_config_is_refused_listing_the_changes(make_trainer):
    first = make_trainer(steps=6)
    first.fit()
    written = first.run.config.read_text()
    changed = make_trainer(steps=12, outer_lr=0.05)
    with pytest.raises(gm.ConfigError, match=r"train\.outer_lr: 0\.01 -> 0\.05; train\.steps: 6 -> 12.*allow_changes"):
        changed.fit(resume=True)
    assert first.run.config.read_text() == written and load_checkpoint(first.run.last)["step"] == 6
    assert "config_changes" not in json.loads(first.run.summary.read_text())
    make_trainer(steps=6, progress=True).fit(resume=True)  # how a run is watched is no change
    with pytest.raises(gm.ConfigError, match="pass resume=True too"):
        make_trainer(name="other").fit(allow_changes=True)


def test_accepted_changes_are_recorded(make_trainer):
    make_trainer(steps=6).fit()
    resumed = make_trainer(steps=12)
    summary = resumed.fit(resume=True, allow_changes=True)
    assert summary["steps"] == 12 and load_checkpoint(resumed.run.last)["step"] == 12
    assert yaml.safe_load(resumed.run.config.read_text())["train"]["steps"] == 12
    recorded = json.loads(resumed.run.summary.read_text())["config_changes"]
    assert recorded == [{"after": 6, "unit": "step", "changes": {"train.steps": [6, 12]}}]
    make_trainer(steps=12).fit(resume=True)  # the run's config is now the new one


def clock_hook(clock: list[float], crash_at: int | None = None) -> Hook:
    """A hook that spends 10 s of the fake ``clock`` on every unit, and crashes after unit ``crash_at``."""

    def tick(event):
        clock[0] += 10.0
        if event.step == crash_at:
            raise Interrupt

    return Hook(after_step=tick)


def test_wall_time_counts_the_time_before_an_interruption(make_trainer, monkeypatch):
    """A run killed after step 6 and resumed from its step-4 checkpoint took 40 s before and 80 s
    after: the 120 s of the uninterrupted run."""
    clock = [0.0]
    monkeypatch.setattr("graphmeta.train.loop_state.perf_counter", lambda: clock[0])
    assert make_trainer(name="reference", hooks=[clock_hook(clock)]).fit()["wall_time_s"] == 120.0
    interrupted = make_trainer(name="interrupted", hooks=[clock_hook(clock, crash_at=6)])
    with pytest.raises(Interrupt):
        interrupted.fit()
    assert load_checkpoint(interrupted.run.last)["loop"]["elapsed_s"] == 40.0
    resumed = make_trainer(name="interrupted", hooks=[clock_hook(clock)])
    assert resumed.fit(resume=True)["wall_time_s"] == 120.0
    assert json.loads(resumed.run.summary.read_text())["training"]["wall_time_s"] == 120.0
    assert [r["elapsed_s"] for r in resumed.run.read_metrics() if r["split"] == "train"] == [20, 40, 60, 80, 100, 120]


def test_a_model_of_another_graph_is_refused_naming_the_nodes(tmp_path, family):
    other = gm.load_family("compositional-chain", num_nodes=4)
    model = gm.GraphMetaLearner(other.graph)
    with pytest.raises(gm.DataError, match=r"nodes only in the model: \['n3'\]; edges only in the model: \[\('n2', 'n3'\)\]"):
        Trainer(model, family, run_dir=str(tmp_path), progress=False)


def test_trainer_tells_mamlpp_how_far_training_has_come(tmp_path, family):
    """MAML++ anneals its multi-step loss over training: the loop reports progress before each
    update, so the last of 12 updates sees 11/12."""
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph, algorithm="mamlpp", inner_steps=3, inner_lr=0.1, message_passing=False)
    seen = []
    original = model.algorithm.set_progress
    model.algorithm.set_progress = lambda fraction: (seen.append(fraction), original(fraction))[1]
    Trainer(model, family, steps=12, meta_batch_size=2, shots=3, query_shots=3, val_every=12, val_tasks=2,
            run_dir=str(tmp_path), progress=False).fit()
    assert seen == [step / 12 for step in range(12)]
