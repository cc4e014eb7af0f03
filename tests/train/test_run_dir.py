"""RunDirectory: metrics survive a torn last line, resume truncates them, TensorBoard and MLflow
read back what a run logged (skipped when not installed), one evaluation file per number of adaptation steps, config read back as written."""

import sys
import types

import pytest

from graphmeta.errors import ConfigError
from graphmeta.train import RunDirectory, loggers
from graphmeta.train.config import TrainConfig
from graphmeta.train.figures import plot_run_figures
from graphmeta.train.loggers import flat_hyperparameters
from graphmeta.train.run_dir import as_written


def test_metrics_log_read_and_truncate(tmp_path):
    run = RunDirectory(tmp_path / "run")
    for step in (1, 2, 3):
        run.log({"step": step, "split": "train", "loss": float(step), "nan": float("nan")})
    with run.metrics.open("a") as file:
        file.write('{"step": 4, "spl')  # a run killed mid-write
    records = run.read_metrics()
    assert [r["step"] for r in records] == [1, 2, 3] and records[0]["nan"] is None
    run.truncate_metrics(2)
    assert [r["step"] for r in run.read_metrics()] == [1, 2]


def test_summary_sections_are_kept(tmp_path):
    run = RunDirectory(tmp_path)
    run.update_summary("training", {"steps": 3, "best_val_loss": float("inf")})
    run.update_summary("evaluation", {"loss": 0.5})
    run.update_summary("training", {"steps": 4})
    assert run.summary.read_text().count("steps") == 1
    assert '"evaluation"' in run.summary.read_text() and '"steps": 4' in run.summary.read_text()


def test_tensorboard_scalars_and_per_node_losses_when_installed(tmp_path, monkeypatch):
    written = []

    class SummaryWriter:
        def __init__(self, log_dir):
            written.append(("dir", log_dir))

        def add_scalar(self, tag, value, step):
            written.append((tag, value, step))

        def flush(self):
            pass

        def close(self):
            written.append(("closed",))

    monkeypatch.setattr(loggers, "installed", lambda name: name == "tensorboard")
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter))
    run = RunDirectory(tmp_path)
    run.log({"step": 5, "split": "val", "loss": 0.25, "best": True, "per_node": {"a": 1.0, "b": None}})
    run.close()
    assert written == [("dir", str(tmp_path / "tensorboard")), ("val/loss", 0.25, 5), ("val/per_node/a", 1.0, 5),
                       ("closed",)]


def test_no_logger_by_default_without_tensorboard(tmp_path, monkeypatch):
    monkeypatch.setattr(loggers, "installed", lambda name: False)
    run = RunDirectory(tmp_path)
    run.log({"step": 1, "split": "train", "loss": 0.5})
    run.close()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["metrics.jsonl"]


def test_a_named_logger_that_is_not_installed_is_an_error_naming_its_extra(tmp_path, monkeypatch):
    monkeypatch.setattr(loggers, "installed", lambda name: name != "mlflow")
    run = RunDirectory(tmp_path)
    run.write_config({"train": {"loggers": ["mlflow"]}})
    with pytest.raises(ConfigError, match=r"pip install graphmeta\[mlflow\]"):
        run.log({"step": 1, "split": "train", "loss": 0.5})


def test_a_typo_in_train_loggers_is_refused_with_the_config():
    with pytest.raises(ConfigError, match="tensorboard, mlflow"):
        TrainConfig.from_dict({"loggers": ["tensorbord"]})


def test_hyperparameters_are_flattened_to_section_keys():
    config = {"model": {"hidden": [40, 40], "inner_lr": 0.1, "options": None}, "train": {"progress": False}}
    assert flat_hyperparameters(config) == {"model.hidden": "[40, 40]", "model.inner_lr": 0.1,
                                            "model.options": "None", "train.progress": False}


def test_a_run_with_tensorboard_writes_event_files_it_reads_back(make_trainer):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    trainer = make_trainer(loggers=["tensorboard"])
    trainer.fit()
    plot_run_figures(trainer.run, trainer.evaluate(num_tasks=4, scratch_steps=2, tasks_per_batch=4, ablation=False))
    events = EventAccumulator(str(trainer.run.path / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    events.Reload()
    tags = events.Tags()
    logged = {record["step"]: record["loss"] for record in trainer.run.read_metrics() if record["split"] == "val"}
    assert {event.step: event.value for event in events.Scalars("val/loss")} == pytest.approx(logged)
    assert {"train/loss", "val/per_node/n0", "val/per_node/n2"} <= set(tags["scalars"])
    assert {"figures/curves", "figures/graph-test-loss"} <= set(tags["images"])
    hparams = events.PluginTagToContent("hparams")
    assert "_hparams_/session_start_info" in hparams
    assert b"train.outer_lr" in hparams["_hparams_/session_start_info"]


def test_a_run_with_mlflow_writes_a_local_store_it_reads_back(make_trainer, monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    trainer = make_trainer(loggers=["mlflow"])
    trainer.fit()
    plot_run_figures(trainer.run)
    store = trainer.run.path.parent / "mlflow.db"
    client = MlflowClient(tracking_uri=f"sqlite:///{store}")
    (run,) = client.search_runs([client.get_experiment_by_name("graphmeta").experiment_id])
    assert run.info.run_name == trainer.run.path.name and run.info.status == "FINISHED"
    logged = {record["step"]: record["loss"] for record in trainer.run.read_metrics() if record["split"] == "val"}
    history = client.get_metric_history(run.info.run_id, "val/loss")
    assert {metric.step: metric.value for metric in history} == pytest.approx(logged)
    assert "val/per_node/n1" in run.data.metrics
    assert run.data.params["train.outer_lr"] == str(trainer.config.outer_lr)
    assert [item.path for item in client.list_artifacts(run.info.run_id, "figures")] == ["figures/curves.png"]


def test_one_evaluation_file_per_number_of_adaptation_steps(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.evaluation("test", 10) == tmp_path / "evaluation-test-10steps.json"
    assert run.evaluation("val", 1) == tmp_path / "evaluation-val-1step.json"
    assert run.evaluation("test", 0) == tmp_path / "evaluation-test-0steps.json"


def test_config_reads_back_as_written(tmp_path):
    run = RunDirectory(tmp_path)
    assert run.read_config() == {} and run.read_summary() == {}
    config = {"model": {"hidden": (32, 32), "lr": float("inf")}, "train": {"steps": 3}}
    run.write_config(config)
    assert run.read_config() == as_written(config) == {"model": {"hidden": [32, 32], "lr": None}, "train": {"steps": 3}}
