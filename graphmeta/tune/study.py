"""`tune`: a hyperparameter search over a run config, as an Optuna study.

The study lives in its folder, ``train.run_dir/<study name>``::

    study.yaml      the run config the study runs, tune: section included (what a resume checks)
    study.journal   Optuna's journal storage (unless tune.storage names another): every trial,
                    appended under a lock file and synced, so it survives a crash and serves
                    parallel workers (SQLite would lock them out)
    trials/<n>/seed-<s>/   the run directory of each trial's seed
    trials.csv, best.yaml, figures/   the results (:mod:`.results`, :mod:`.figures`)

Running the same command again (or :func:`tune` on the same config) resumes the study: the
trials it holds count, and it runs until ``tune.n_trials`` trials have completed or been pruned.
Only ``tune.n_trials`` and ``tune.timeout`` may change between runs; any other change of the
config is refused, listing it, since the trials so far would not be trials of the new config
(name the study anew instead). Parallel workers and killed workers: :mod:`.workers`.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import yaml
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.study import StudyDirection
from optuna.trial import TrialState

from ..errors import ConfigError, TrainingError
from ..train import RunConfig, load_config
from ..train.checkpoint import atomic_write_text
from ..train.config import OBJECTIVES, TuneConfig, config_changes
from ..train.run_dir import as_written
from ..validation import PositiveInt, check_arguments, keywords_checked, load_yaml
from .objective import TrialObjective
from .pruning import build_pruner
from .results import describe_trial, write_results
from .search_space import Dimension, settings, settings_space
from .trial_sampler import build_sampler
from .workers import TrialLock, fail_interrupted_trials, start_workers, this_worker

#: What a resumed study may change: how many trials, and how long a worker keeps starting them.
RESUMABLE_CHANGES = ("tune.n_trials", "tune.timeout")


@dataclass(frozen=True)
class TuneResult:
    """What :func:`tune` returns: the Optuna ``study``, the ``best_config`` (``None`` before a trial
    completes), the study's ``folder``, its ``trials`` table and the ``figures`` drawn."""

    study: optuna.Study
    best_config: RunConfig | None
    folder: Path
    trials: pd.DataFrame
    figures: list[Path]


@keywords_checked
def tune(config: RunConfig | Mapping[str, Any] | str | Path, n_trials: int | None = None,
         timeout: float | None = None, workers: PositiveInt = 1, storage: str | None = None,
         results: bool = True, progress: bool = True) -> TuneResult:
    """Run (or resume) the study of ``config``'s ``tune:`` section; see :mod:`graphmeta.tune`.

    Args:
        config: a run config with a ``tune:`` section: a :class:`RunConfig`, its mapping, or a
            YAML file (whose name is the study's name unless ``tune.study_name`` or
            ``train.name`` gives one).
        n_trials, timeout, storage: replace ``tune.n_trials``, ``tune.timeout``, ``tune.storage``.
        workers: worker processes on the study, this one included.
        results: write ``trials.csv``, ``best.yaml`` and the figures when the workers are done.
        progress: print a line for every finished trial.

    Example::

        result = graphmeta.tune("examples/configs/sinusoid-tune.yaml", n_trials=20)
        print(result.study.best_trial.params)
        graphmeta.Trainer.from_config(result.best_config).fit()
    """
    workers = check_arguments(tune, {"workers": workers}, "tune()")["workers"]
    config = study_config(config, {"n_trials": n_trials, "timeout": timeout, "storage": storage})
    section = tune_section(config)
    assert section.study_name is not None  # study_config names the study
    objective_name = study_objective(config)
    listed = settings(config)
    space: dict[str, Dimension] = config.search_space() if listed is None else dict(settings_space(listed))
    sampler = build_sampler(section.strategy, section.sampler_seed, section.sampler_options)
    pruner = build_pruner(section.pruner, section.pruner_options)
    folder = Path(config.train.run_dir) / section.study_name
    start_study_folder(config, folder)  # everything is checked: from here on, the study exists
    study = optuna.create_study(
        study_name=section.study_name, load_if_exists=True, sampler=sampler, pruner=pruner,
        storage=section.storage or JournalStorage(JournalFileBackend(str(folder / "study.journal"))),
        direction=StudyDirection[(section.direction or OBJECTIVES[objective_name]).upper()])
    objective = TrialObjective(config, folder, space, objective_name, listed)
    others = start_workers(workers - 1, folder / "study.yaml")
    try:
        run_worker(study, objective, progress)
    except BaseException:
        for worker in others:
            worker.terminate()
        raise
    failed = sum(worker.wait() != 0 for worker in others)
    table, best, figures = (write_results(study, config, folder, objective_name, space) if results
                            else (pd.DataFrame(), None, []))
    if failed:
        raise TrainingError(f"{failed} of {workers} workers of study {folder} failed (see their output above); "
                            "the study keeps every trial so far: run the same command again to go on")
    return TuneResult(study, best, folder, table, figures)


def study_config(config: RunConfig | Mapping[str, Any] | str | Path, replaced: Mapping[str, Any]) -> RunConfig:
    """``config`` read and checked, with the ``replaced`` tune keys that are not ``None`` and its study name."""
    file_name = None
    if isinstance(config, (str, Path)):
        file_name = Path(config).stem
        config = load_config(config)
    elif not isinstance(config, RunConfig):
        config = RunConfig.from_dict(config)
    section = tune_section(config)
    if config.train.mode != "batch":
        raise ConfigError(f"a study scores the validation curve of batch meta-training; train.mode is "
                          f"{config.train.mode!r}: tune a batch config")
    name = section.study_name or config.train.name or file_name or f"{config.family['name']}-tune"
    values = {f"tune.{key}": value for key, value in replaced.items() if value is not None}
    return config.with_values({**values, "tune.study_name": name})


def tune_section(config: RunConfig) -> TuneConfig:
    """``config``'s ``tune:`` section; a :class:`~graphmeta.ConfigError` where it has none."""
    if config.tune is None:
        raise ConfigError("the config has no tune: section: add one naming the keys to search, e.g. "
                          "tune: {space: {model.inner_lr: {low: 0.001, high: 1.0, log: true}}} "
                          "(see examples/configs/sinusoid-tune.yaml)")
    return config.tune


def start_study_folder(config: RunConfig, folder: Path) -> None:
    """Create ``folder`` with ``study.yaml``, or check ``config`` against the ``study.yaml`` there
    (see the module docstring) and update it."""
    saved = folder / "study.yaml"
    if saved.is_file():
        changes = {key: change for key, change in config_changes(load_yaml(saved), config.to_dict()).items()
                   if key not in RESUMABLE_CHANGES}
        if changes:
            listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
            raise ConfigError(f"study {folder} was started with another config ({saved}); this one changes {listed}. "
                              "Resume it with its own config (only tune.n_trials and tune.timeout may change), or "
                              "give the new search another tune.study_name")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(saved, yaml.safe_dump(as_written(config.to_dict()), sort_keys=False))


def study_objective(config: RunConfig) -> str:
    """``tune.objective``, or the default: ``accuracy`` when every subtask classifies, ``loss`` otherwise."""
    from ..families import FamilySection

    graph = FamilySection.read(config.family).build().graph  # a card, a class of your own, or a table
    classifies = [graph.subtask(name).kind == "classification" for name in graph.names]
    objective = tune_section(config).objective
    if objective == "accuracy" and not any(classifies):
        raise ConfigError(f"tune.objective is accuracy, but no subtask of {graph.name!r} classifies: use loss")
    return objective or ("accuracy" if all(classifies) else "loss")


def run_worker(study: optuna.Study, objective: TrialObjective, progress: bool = True) -> None:
    """Take and run trials of ``study`` until it has its ``tune.n_trials`` (or this worker's
    ``tune.timeout`` has passed)."""
    tune = tune_section(objective.config)
    limit = tune.n_trials if objective.settings is None else min(tune.n_trials, len(objective.settings))
    started = time.monotonic()
    lock = TrialLock(objective.folder)
    while tune.timeout is None or time.monotonic() - started < tune.timeout:
        with lock:
            for number in fail_interrupted_trials(study):
                if progress:
                    print(f"trial {number} failed: its worker ended during it")
            trial = claim_trial(study, limit, objective.settings)
        if trial is None:
            break
        finished = objective.run(study, trial)
        if progress:
            print(describe_trial(finished, objective.objective), flush=True)


def claim_trial(study: optuna.Study, limit: int, listed: list[dict[str, Any]] | None) -> optuna.Trial | None:
    """A new trial for this worker, or ``None`` when the study has ``limit`` trials that are not
    failed (or, for listed settings, every setting has one). Call it holding the :class:`TrialLock`."""
    alive = [trial for trial in study.get_trials(deepcopy=False) if trial.state != TrialState.FAIL]
    if len(alive) >= limit:
        return None
    if listed is not None and not any(trial.state == TrialState.WAITING for trial in alive):
        taken = {trial.user_attrs.get("setting") for trial in alive}
        pending = [number for number in range(len(listed)) if number not in taken]
        if not pending:
            return None
        study.enqueue_trial(listed[pending[0]], user_attrs={"setting": pending[0]})
    trial = study.ask()
    trial.set_user_attr("worker", this_worker())
    return trial
