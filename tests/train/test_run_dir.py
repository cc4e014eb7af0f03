"""RunDirectory: metrics survive a torn last line, resume truncates them, TensorBoard only when
installed, one evaluation file per number of adaptation steps, config read back as written."""

import sys
import types

from graphmeta.train import RunDirectory
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


def test_tensorboard_scalars_when_installed(tmp_path, monkeypatch):
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

    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", types.SimpleNamespace(SummaryWriter=SummaryWriter))
    run = RunDirectory(tmp_path)
    run.log({"step": 5, "split": "val", "loss": 0.25, "best": True, "per_node": {"a": 1.0}})
    run.close()
    assert written == [("dir", str(tmp_path / "tensorboard")), ("val/loss", 0.25, 5), ("closed",)]


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
