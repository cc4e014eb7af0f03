"""OnlineMetaLearner: every task is scored before it trains the model, the buffer bound, the
support-size metric, exact resume, config checks."""

import json

import pytest
import torch

import graphmeta as gm
from graphmeta.data import Split, TaskBatch
from graphmeta.train import OnlineMetaLearner, RunConfig
from graphmeta.train.checkpoint import load_checkpoint
from graphmeta.train.online import support_sizes
from graphmeta.train.schedules import LearningRateSchedule

TINY = {"tasks": 8, "updates_per_task": 2, "buffer_size": 3, "meta_batch_size": 2, "shots": 4, "query_shots": 5,
        "outer_lr": 1e-2, "checkpoint_every": 2, "progress": False, "name": "run"}


@pytest.fixture
def make_learner(tmp_path, family):
    """``make_learner(message_passing=..., **config)``: a fresh, seeded model and its online learner in ``tmp_path``."""

    def make(message_passing: bool = False, seed: int = 0, **config) -> OnlineMetaLearner:
        torch.manual_seed(seed)
        model = gm.GraphMetaLearner(family.graph, inner_steps=1, inner_lr=0.1, message_passing=message_passing,
                                    message_channels=8, message_rounds=1)
        return OnlineMetaLearner(model, family, **{**TINY, "run_dir": str(tmp_path), "seed": seed, **config})

    return make


def online_records(learner: OnlineMetaLearner) -> list[dict]:
    return [r for r in learner.run.read_metrics() if r["split"] == "online"]


def test_each_task_is_scored_before_it_is_stored_or_trained_on(make_learner, monkeypatch):
    learner = make_learner()
    events = []
    score, update = OnlineMetaLearner.score, OnlineMetaLearner.outer_step

    def spy_score(self, task):
        stored = self.buffer.tasks().query.values if len(self.buffer) else torch.empty(0)
        events.append(("score", self.sampler.drawn, self.buffer.seen, self.updates,
                       any(torch.equal(task.query.values[0], q) for q in stored)))
        return score(self, task)

    def spy_update(self, batch, metrics=True):
        events.append(("update", self.sampler.drawn))
        return update(self, batch, metrics)

    monkeypatch.setattr(OnlineMetaLearner, "score", spy_score)
    monkeypatch.setattr(OnlineMetaLearner, "outer_step", spy_update)
    learner.fit()
    expected = []
    for task in range(1, 9):
        expected += [("score", task, task - 1, 2 * (task - 1), False), ("update", task), ("update", task)]
    assert events == expected


def test_the_score_is_the_loss_of_the_parameters_before_the_task(make_learner, family):
    """Task 5's recorded loss is what the model trained on tasks 1-4 alone scores on it."""
    full = make_learner(name="full", tasks=5)
    full.fit()
    prefix = make_learner(name="prefix", tasks=4)
    prefix.fit()
    fifth = prefix.sampler.next()
    assert online_records(full)[4]["loss"] == prefix.score(fifth)["loss"]
    untrained = make_learner(name="untrained", tasks=1, updates_per_task=0)
    assert online_records(full)[0]["loss"] == untrained.score(untrained.sampler.next())["loss"]


def test_records_summary_and_figure(make_learner):
    learner = make_learner(loss_threshold=0.3)
    summary = learner.fit()
    records = online_records(learner)
    assert [r["step"] for r in records] == list(range(1, 9))
    assert [r["buffer"] for r in records] == [1, 2, 3, 3, 3, 3, 3, 3]
    assert [r["updates"] for r in records] == list(range(2, 17, 2))
    losses = [r["loss"] for r in records]
    assert [r["cumulative_loss"] for r in records] == pytest.approx(torch.tensor(losses).cumsum(0).tolist())
    for record in records:
        by_shots = record["loss_by_shots"]
        assert list(by_shots) == ["1", "2", "4"] and by_shots["4"] == record["loss"]
        reached = [int(k) for k, loss in by_shots.items() if loss <= 0.3]
        assert record["shots_to_threshold"] == (reached[0] if reached else None)
        assert "train_loss" in record and "accuracy" not in record  # regression nodes: no accuracy
    assert summary["tasks"] == 8 and summary["updates"] == 16 and summary["window"] == 1
    assert summary["loss_last_window"] == losses[-1]
    assert summary["cumulative_loss"] == pytest.approx(sum(losses))
    assert json.loads(learner.run.summary.read_text())["training"]["status"] == "completed"
    assert not learner.run.figures.exists() and load_checkpoint(learner.run.last)["step"] == 8
    assert len(learner.buffer) == 3


def test_fewer_support_examples_mean_the_first_ones(make_learner, family):
    """``loss_by_shots[K']`` is the score of the task cut to its first K' support examples."""
    learner = make_learner(shots=5)
    task = learner.sampler.next()
    scores = learner.score(task)["loss_by_shots"]
    assert list(scores) == [1, 2, 4, 5]
    support = task.support
    cut = Split(support.features[:, :2], support.values[:, :2], support.observed[:, :2])
    assert learner.score(TaskBatch(family.graph, cut, task.query))["loss"] == pytest.approx(scores[2], rel=1e-6)


@pytest.mark.parametrize("shots, sizes", [(1, [1]), (2, [1, 2]), (4, [1, 2, 4]), (5, [1, 2, 4, 5]),
                                          (10, [1, 2, 4, 8, 10])])
def test_support_sizes(shots, sizes):
    assert support_sizes(shots) == sizes


class Interrupt(Exception):
    pass


def test_interrupted_stream_resumes_exactly(make_learner, assert_same_state, monkeypatch):
    options = {"message_passing": True, "schedule": "cosine", "grad_clip": 0.5, "buffer_policy": "reservoir"}
    reference = make_learner(name="reference", **options)
    reference.fit()

    interrupted = make_learner(name="interrupted", **options)
    score = OnlineMetaLearner.score

    def crash_in_task_6(self, task):
        if self.sampler.drawn == 6:
            raise Interrupt
        return score(self, task)

    monkeypatch.setattr(OnlineMetaLearner, "score", crash_in_task_6)
    with pytest.raises(Interrupt):
        interrupted.fit()
    monkeypatch.undo()
    assert load_checkpoint(interrupted.run.last)["step"] == 4

    with pytest.raises(gm.ConfigError, match="already holds a run"):
        make_learner(name="interrupted", **options).fit()
    resumed = make_learner(name="interrupted", **options)
    resumed.fit(resume=True)
    a, b = load_checkpoint(reference.run.last), load_checkpoint(resumed.run.last)
    assert_same_state(a["model"], b["model"])
    for side in ("support", "query"):
        assert_same_state(*({key: state["buffer"]["tasks"][side][key] for key in ("features", "values", "observed")}
                            for state in (a, b)))
    assert {**a["buffer"], "tasks": None} == {**b["buffer"], "tasks": None}
    assert a["online"] == b["online"] and a["sampler"] == b["sampler"]
    assert {**a["loop"], "elapsed_s": None} == {**b["loop"], "elapsed_s": None}
    for index, state in a["optimizer"]["state"].items():
        assert all(torch.equal(state[key], b["optimizer"]["state"][index][key]) for key in state)
    timeless = [[{k: v for k, v in r.items() if k != "elapsed_s"} for r in online_records(learner)]
                for learner in (reference, resumed)]
    assert timeless[0] == timeless[1]


def test_a_checkpoint_of_other_settings_is_refused(make_learner):
    make_learner(tasks=2).fit()
    with pytest.raises(gm.ConfigError, match=r"online\.buffer_size: 3 -> 4; online\.tasks: 2 -> 4"):
        make_learner(tasks=4, buffer_size=4).fit(resume=True)
    with pytest.raises(gm.CheckpointError, match="task buffer has capacity 3, this run 4"):
        make_learner(tasks=4, buffer_size=4).fit(resume=True, allow_changes=True)


def test_config_keys_are_checked():
    config = RunConfig.from_dict({"family": "sinusoid", "train": {"mode": "online"}, "online": {"tasks": 20}})
    assert config.train.mode == "online" and config.online.tasks == 20
    assert RunConfig.from_dict(config.to_dict()) == config
    assert config.with_overrides(["buffer_policy=fifo"]).online.buffer_policy == "fifo"
    with pytest.raises(gm.ConfigError, match="'bufer_size'.*did you mean 'buffer_size'"):
        RunConfig.from_dict({"family": "sinusoid", "online": {"bufer_size": 20}})
    with pytest.raises(gm.ConfigError, match=r"train\.mode must be one of batch, online, got 'onlin'"):
        RunConfig.from_dict({"family": "sinusoid", "train": {"mode": "onlin"}})
    with pytest.raises(gm.ConfigError, match=r"online\.updates_per_task must be .*>= 0"):
        RunConfig.from_dict({"family": "sinusoid", "online": {"updates_per_task": -1}})


def test_learner_arguments_are_checked(make_learner):
    with pytest.raises(gm.ConfigError, match="'buffer_sise'.*did you mean 'buffer_size'"):
        make_learner(buffer_sise=3)
    with pytest.raises(gm.ConfigError, match="use Trainer for batch meta-training"):
        make_learner(mode="batch")


def test_resume_with_a_longer_stream_follows_the_new_schedule(make_learner, rates_used):
    """8 updates of a 4-task stream, resumed as an 8-task stream: updates 8-15 follow the 16-update schedule."""
    make_learner(tasks=4, schedule="cosine", final_lr_ratio=0.1).fit()
    resumed = make_learner(tasks=8, schedule="cosine", final_lr_ratio=0.1)
    rates = rates_used(resumed)
    resumed.fit(resume=True, allow_changes=True)
    schedule = LearningRateSchedule("cosine", steps=16, final_lr_ratio=0.1)
    assert resumed.scheduler.lr_lambdas[0] == schedule
    assert rates == pytest.approx([1e-2 * schedule(update) for update in range(8, 16)])
    assert rates[-1] == pytest.approx(1e-3)
    assert [r["lr"] for r in online_records(resumed)[4:]] == pytest.approx(
        [1e-2 * schedule(update) for update in range(10, 17, 2)])


def test_from_run_loads_the_end_of_the_stream(make_learner, make_trainer, assert_same_state, tmp_path):
    learner = make_learner(message_passing=True, tasks=4)
    learner.fit()
    moved = learner.run.path.rename(tmp_path / "moved")
    loaded = OnlineMetaLearner.from_run(moved, checkpoint="best")
    assert loaded.run.path == moved and loaded.sampler.drawn == 4 and loaded.updates == 8
    assert loaded.online == learner.online and loaded.config == learner.config.replace(name="moved")
    assert_same_state(loaded.model.state_dict(), load_checkpoint(moved / "checkpoints" / "last.pt")["model"])
    with pytest.raises(gm.ConfigError, match="checkpoint must be 'best' or 'last'"):
        OnlineMetaLearner.from_run(moved, checkpoint="first")
    batch = make_trainer(name="batch", steps=2, val_every=2)
    batch.fit()
    with pytest.raises(gm.ConfigError, match="use Trainer for batch meta-training"):
        OnlineMetaLearner.from_run(batch.run.path)
