"""Experiment trackers a run writes to besides ``metrics.jsonl``: TensorBoard and MLflow.

``train.loggers`` names them (``[tensorboard, mlflow]``); left out (``null``), a run logs to
TensorBoard when it is installed and to nothing else. A logger that is named but not installed
is an error naming the extra that installs it (``pip install graphmeta[mlflow]``). Every logger
receives the same things from the :class:`~graphmeta.train.RunDirectory`:

- the run's hyperparameters (its ``config.yaml``, flattened to ``section.key``), once per opening;
- every record of ``metrics.jsonl`` as scalars ``<split>/<key>``, the per-node losses as
  ``<split>/per_node/<node>``;
- the figures :func:`~graphmeta.train.figures.plot_run_figures` draws (training curves, the task
  graph coloured by per-node loss), as images (TensorBoard) or artifacts (MLflow).

TensorBoard writes event files to ``RUN/tensorboard/`` (``tensorboard --logdir runs``). MLflow
writes to ``MLFLOW_TRACKING_URI`` when it is set, otherwise to a local SQLite store beside the
runs, ``<train.run_dir>/mlflow.db`` with artifacts in ``<train.run_dir>/mlartifacts/``, offline
(``mlflow ui --backend-store-uri sqlite:///runs/mlflow.db``); a resumed run goes on in the same
MLflow run, found by its folder.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError

#: Each logger, and the module that must be importable for it (what its extra installs).
REQUIREMENTS = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
DEFAULT_LOGGERS = ("tensorboard",)  # when train.loggers is null, and only those installed
MLFLOW_EXPERIMENT = "graphmeta"
RUN_PATH_TAG = "graphmeta.run_path"


class Logger(Protocol):
    """What a run directory asks of an experiment tracker."""

    def log_hyperparameters(self, hyperparameters: Mapping[str, Any]) -> None: ...

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None: ...

    def log_figure(self, path: Path, step: int) -> None: ...

    def close(self) -> None: ...


def installed(name: str) -> bool:
    """Whether the package logger ``name`` writes with can be imported."""
    return importlib.util.find_spec(REQUIREMENTS[name]) is not None


def open_loggers(names: Sequence[str] | None, run_path: Path) -> list[Logger]:
    """The loggers ``names`` (``None``: :data:`DEFAULT_LOGGERS` that are installed) of the run in ``run_path``."""
    if names is None:
        names = [name for name in DEFAULT_LOGGERS if installed(name)]
    for name in names:
        if name not in REQUIREMENTS:
            raise ConfigError(f"train.loggers names {name!r}; the loggers are {', '.join(REQUIREMENTS)}")
        if not installed(name):
            raise ConfigError(f"train.loggers names {name}, which is not installed: pip install graphmeta[{name}]")
    openers = {"tensorboard": TensorBoardLogger, "mlflow": MLflowLogger}
    return [openers[name](run_path) for name in names]


def scalars_of(record: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a ``metrics.jsonl`` record as ``{"<split>/<key>": value}``, the numbers of a
    mapping in it (the per-node losses) as ``<split>/<key>/<name>``; flags, ``None`` and text are left out."""
    split = record["split"]
    scalars = {}
    for key, value in record.items():
        if key == "step":
            continue
        if isinstance(value, Mapping):
            scalars.update({f"{split}/{key}/{name}": float(item) for name, item in value.items() if _number(item)})
        elif _number(value):
            scalars[f"{split}/{key}"] = float(value)
    return scalars


def flat_hyperparameters(config: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``config`` flattened to ``{"section.key": value}``; lists and ``None`` as text, so every value
    is a number, a flag or a string, as both trackers take them."""
    flat: dict[str, Any] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flat_hyperparameters(value, f"{name}."))
        else:
            flat[name] = value if isinstance(value, (bool, int, float, str)) else str(value)
    return flat


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class TensorBoardLogger:
    """Event files in ``RUN/tensorboard/``: scalars, the hyperparameters (TensorBoard's HParams tab)
    and figures as images."""

    def __init__(self, run_path: Path) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(str(run_path / "tensorboard"))

    def log_hyperparameters(self, hyperparameters: Mapping[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        for summary in hparams(dict(hyperparameters), {"val/loss": 0.0}):
            self.writer.file_writer.add_summary(summary)

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        for tag, value in scalars.items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def log_figure(self, path: Path, step: int) -> None:
        from matplotlib.image import imread

        self.writer.add_image(f"figures/{path.stem}", imread(path)[..., :3], step, dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


class MLflowLogger:
    """One MLflow run per graphmeta run (named after its folder, tagged with its path), in the
    experiment ``graphmeta``: parameters, metrics and figures as artifacts under ``figures/``."""

    def __init__(self, run_path: Path) -> None:
        from mlflow.tracking import MlflowClient

        folder = run_path.resolve().parent
        uri = os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{folder / 'mlflow.db'}"
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(MLFLOW_EXPERIMENT)
        experiment_id = (experiment.experiment_id if experiment is not None else self.client.create_experiment(
            MLFLOW_EXPERIMENT, artifact_location=None if "MLFLOW_TRACKING_URI" in os.environ
            else (folder / "mlartifacts").as_uri()))
        path = str(run_path.resolve())
        found = self.client.search_runs([experiment_id], filter_string=f"tags.`{RUN_PATH_TAG}` = '{path}'",
                                        max_results=1)
        run = found[0] if found else self.client.create_run(experiment_id, run_name=run_path.name,
                                                            tags={RUN_PATH_TAG: path})
        self.run_id = run.info.run_id
        self.logged_parameters = set(run.data.params)

    def log_hyperparameters(self, hyperparameters: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        new = [Param(key, str(value)) for key, value in hyperparameters.items() if key not in self.logged_parameters]
        if new:  # MLflow refuses to change a logged parameter: a resumed run keeps those it started with
            self.client.log_batch(self.run_id, params=new)
            self.logged_parameters.update(param.key for param in new)

    def log_scalars(self, scalars: Mapping[str, float], step: int) -> None:
        from mlflow.entities import Metric

        timestamp = int(time.time() * 1000)
        metrics = [Metric(tag, value, timestamp, step) for tag, value in scalars.items()]
        for start in range(0, len(metrics), 1000):  # MLflow's limit per batch
            self.client.log_batch(self.run_id, metrics=metrics[start:start + 1000])

    def log_figure(self, path: Path, step: int) -> None:
        self.client.log_artifact(self.run_id, str(path), "figures")

    def close(self) -> None:
        self.client.set_terminated(self.run_id)
