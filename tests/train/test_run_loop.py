"""The run loop's hooks, on both learners: after each step, after each validation (a tuner that
prunes), around each checkpoint (only one process writes), and stop requests."""

import json

import pytest

import graphmeta as gm
from graphmeta.train import Hook, OnlineMetaLearner, Trainer
from graphmeta.train.checkpoint import load_checkpoint


class StepRecorder:
    """A hook as a plain object with one of the hook methods."""

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def after_step(self, event):
        self.calls.append(("recorder", event.step))


def test_after_step_hooks_see_every_step_in_order(make_trainer):
    calls, events = [], []

    def record(event):
        calls.append(("hook", event.step))
        events.append(event)

    trainer = make_trainer(hooks=[Hook(after_step=record)])
    trainer.add_hook(StepRecorder(calls))
    trainer.fit()
    assert calls == [(name, step) for step in range(1, 13) for name in ("hook", "recorder")]
    assert {(event.total, event.unit) for event in events} == {(12, "step")}
    # the per-node metrics cost a forward pass, taken on the step that ends a log window (log_every 2)
    assert [{"loss_before", "loss_after"} <= set(event.metrics) for event in events] == [False, True] * 6
    assert all({"loss", "grad_norm"} <= set(event.metrics) for event in events)
    logged = [r for r in trainer.run.read_metrics() if r["split"] == "train"]
    assert logged[0]["loss"] == pytest.approx((events[0].metrics["loss"] + events[1].metrics["loss"]) / 2)
    assert logged[0]["loss_before"] == pytest.approx(events[1].metrics["loss_before"])


def test_a_validation_hook_stops_the_run(make_trainer, assert_same_state):
    """A tuner prunes at the validation of step 4: the run ends there, stopped, with a checkpoint
    to resume from; resumed, it ends where the run that was never stopped does."""
    seen = []

    def prune(event):
        seen.append((event.step, event.loss, event.best_loss, event.improved))
        return event.step == 4

    trainer = make_trainer(hooks=[Hook(after_validation=prune)])
    summary = trainer.fit()
    assert summary["status"] == "stopped" and summary["steps"] == 4
    assert summary["stop_reason"].startswith("after_validation of Hook(after_validation=")
    assert summary["stop_reason"].endswith("returned True at step 4")
    assert json.loads(trainer.run.summary.read_text())["training"]["status"] == "stopped"
    validations = [r for r in trainer.run.read_metrics() if r["split"] == "val"]
    assert [(r["step"], r["loss"]) for r in validations] == [(step, loss) for step, loss, _, _ in seen]
    assert [best for _, _, best, _ in seen] == [min(loss for _, loss, _, _ in seen[:n + 1]) for n in range(len(seen))]
    assert max(r["step"] for r in trainer.run.read_metrics()) == 4
    assert make_trainer(name="loaded").load(trainer.run.last).step == 4

    resumed = make_trainer()
    assert resumed.fit(resume=True)["status"] == "completed"
    reference = make_trainer(name="reference")
    reference.fit()
    assert_same_state(load_checkpoint(reference.run.last)["model"], load_checkpoint(resumed.run.last)["model"])


def test_request_stop_ends_the_run_after_the_current_step(make_trainer):
    def budget(event):
        if event.step == 3:
            event.learner.request_stop("time budget spent")

    trainer = make_trainer(hooks=[Hook(after_step=budget)])
    summary = trainer.fit()
    assert summary["status"] == "stopped" and summary["stop_reason"] == "time budget spent"
    assert load_checkpoint(trainer.run.last)["step"] == 3
    assert [r["step"] for r in trainer.run.read_metrics() if r["split"] == "train"] == [2, 3]


def test_a_stop_at_the_first_validation_writes_a_checkpoint(make_trainer):
    trainer = make_trainer(hooks=[Hook(after_validation=lambda event: True)])
    summary = trainer.fit()
    assert summary["status"] == "stopped" and summary["steps"] == 0
    assert load_checkpoint(trainer.run.last)["step"] == 0 and load_checkpoint(trainer.run.best)["step"] == 0
    make_trainer().fit(resume=True)  # the start was validated already: no second record of it
    assert [r["step"] for r in trainer.run.read_metrics() if r["split"] == "val"] == [0, 4, 8, 12]


def test_checkpoint_hooks_surround_every_write(make_trainer):
    calls = []

    def before(event):
        on_disk = load_checkpoint(event.path)["step"] if event.path.is_file() else None
        calls.append(("before", event.kind, event.step, event.written, on_disk))

    def after(event):
        calls.append(("after", event.kind, event.step, event.written, load_checkpoint(event.path)["step"]))

    trainer = make_trainer(hooks=[Hook(before_checkpoint=before, after_checkpoint=after)])
    trainer.fit()
    best = [r["step"] for r in trainer.run.read_metrics() if r["split"] == "val" and r["best"]]
    writes = sorted([("best", step) for step in best] + [("last", step) for step in (4, 8, 12)],
                    key=lambda write: (write[1], write[0] == "last"))
    assert [(kind, step) for _, kind, step, _, _ in calls] == [write for write in writes for _ in range(2)]
    for (stage, _, step, written, on_disk), position in zip(calls, range(len(calls))):
        assert stage == ("before", "after")[position % 2]
        assert written is (stage == "after") and (on_disk == step) is (stage == "after")


def test_before_checkpoint_can_keep_a_process_from_writing(make_trainer):
    """A distributed trainer lets only rank 0 write: on the other ranks the loop runs on, writing nothing."""
    written = []
    trainer = make_trainer(hooks=[Hook(before_checkpoint=lambda event: False,
                                       after_checkpoint=lambda event: written.append(event.written))])
    summary = trainer.fit()
    assert summary["status"] == "completed" and summary["steps"] == 12
    assert not trainer.run.checkpoints.exists() and written and not any(written)


def test_a_hook_must_have_a_hook_method(make_trainer):
    with pytest.raises(gm.ConfigError, match=r"not a hook.*Hook\(after_step=function\)"):
        make_trainer(hooks=[print])
    with pytest.raises(gm.ConfigError, match="not a hook"):
        make_trainer().add_hook(Hook())


def test_online_hooks_and_stop(tmp_path, family):
    """The online learner's unit is an arriving task: the hooks see each task's loss, every write
    of last.pt (an online run keeps no best.pt), and a stop ends the stream with a checkpoint."""
    events, checkpoints = [], []
    model = gm.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.1, message_passing=False)
    hook = Hook(after_step=lambda event: events.append(event) or event.step == 5,
                after_checkpoint=lambda event: checkpoints.append((event.kind, event.step)))
    learner = OnlineMetaLearner(model, family, tasks=8, updates_per_task=1, buffer_size=3, meta_batch_size=2, shots=4,
                                query_shots=5, checkpoint_every=2, progress=False, run_dir=str(tmp_path), name="online",
                                hooks=[hook])
    summary = learner.fit()
    assert [(event.step, event.unit, event.total) for event in events] == [(step, "task", 8) for step in range(1, 6)]
    records = [r for r in learner.run.read_metrics() if r["split"] == "online"]
    assert [event.metrics["loss"] for event in events] == [r["loss"] for r in records]
    assert checkpoints == [("last", 2), ("last", 4), ("last", 5)]
    assert summary["status"] == "stopped" and summary["tasks"] == 5 and load_checkpoint(learner.run.last)["step"] == 5


def test_both_learners_share_the_loop():
    assert issubclass(Trainer, gm.train.RunLoop) and issubclass(OnlineMetaLearner, gm.train.RunLoop)
    shared = {"fit", "evaluate", "train_ablation", "save", "load", "state_dict", "load_state_dict", "from_config",
              "from_run", "add_hook", "request_stop", "outer_step"}
    for learner in (Trainer, OnlineMetaLearner):
        assert not shared & set(vars(learner)), f"{learner.__name__} redefines the loop's own methods"


def test_typed_configs_pass_through_unparsed(family, tmp_path, monkeypatch):
    train = gm.train.TrainConfig(steps=2, meta_batch_size=2, shots=3, query_shots=4, progress=False,
                                 run_dir=str(tmp_path), name="typed")
    model = gm.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.1, message_passing=False)
    assert Trainer(model, family, train).config is train
    with pytest.raises(gm.ConfigError, match="given as a TrainConfig and as the keywords steps"):
        Trainer(model, family, train, steps=3)
    config = gm.train.RunConfig.from_dict({"family": {"name": "compositional-chain", "num_nodes": 3},
                                           "train": {**train.to_dict(), "mode": "online"},
                                           "online": {"tasks": 3, "buffer_size": 2}})
    parsed = []
    monkeypatch.setattr(gm.train.TrainConfig, "from_dict", classmethod(lambda cls, *args: parsed.append(args)))
    online = OnlineMetaLearner.from_config(config)
    assert online.config is config.train and online.online is config.online and not parsed
    assert online.run_config()["online"] == config.online.to_dict()
