"""The results of a study: its trials as a table, and the best configuration as a runnable YAML.

::

    <study folder>/
        trials.csv     one row per trial: trial, state, value, ci95, one column per searched key
                       path, seed <s> (each seed's value), duration_s, note (where a trial was
                       pruned, or why it failed)
        best.yaml      the study's run config with the best trial's settings and no tune: section,
                       named <study>-best: `graphmeta train best.yaml` trains it again (with the
                       trial's first seed, the same run as that seed's)
        figures/       see :mod:`.figures`

The best trial is the completed trial with the best mean over its seeds (Optuna's
``study.best_trial``); pruned and failed trials have no value.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import optuna
import pandas as pd
import yaml
from optuna.trial import FrozenTrial, TrialState

from ..train import RunConfig
from ..train.checkpoint import atomic_write_text
from ..train.run_dir import as_written
from .figures import plot_study_figures
from .search_space import Dimension, with_settings


def trials_table(study: optuna.Study) -> pd.DataFrame:
    """One row per trial of ``study`` (see the module docstring), in trial order."""
    rows = []
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        values = dict(zip(attrs.get("seeds", []), attrs.get("values", [])))
        rows.append({"trial": trial.number, "state": trial.state.name.lower(),
                     "value": trial.value if trial.state == TrialState.COMPLETE else math.nan,
                     "ci95": attrs.get("ci95") if attrs.get("ci95") is not None else math.nan,
                     **trial.params, **{f"seed {seed}": value for seed, value in values.items()},
                     "duration_s": trial.duration.total_seconds() if trial.duration is not None else math.nan,
                     "note": attrs.get("pruned") or attrs.get("failure") or ""})
    params = dict.fromkeys(name for trial in study.get_trials(deepcopy=False) for name in trial.params)
    seeds = dict.fromkeys(key for row in rows for key in row if key.startswith("seed "))
    return pd.DataFrame(rows, columns=["trial", "state", "value", "ci95", *params, *seeds, "duration_s", "note"])


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """The completed trial with the best value, ``None`` before one completes."""
    if not study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        return None
    return study.best_trial


def best_config(study: optuna.Study, config: RunConfig) -> RunConfig | None:
    """``config`` (the study's run config) with the settings of the best trial, named
    ``<study>-best`` and no ``tune:`` section; ``None`` before a trial completes."""
    trial = best_trial(study)
    if trial is None:
        return None
    return with_settings(config, trial.params).with_values({"train.name": f"{study.study_name}-best"})


def write_best_config(study: optuna.Study, config: RunConfig, path: Path, objective: str) -> RunConfig | None:
    """Write :func:`best_config` to ``path`` with a header naming the trial and its value; returns it."""
    best = best_config(study, config)
    if best is None:
        return None
    trial = best_trial(study)
    ci95 = trial.user_attrs.get("ci95")
    seeds = trial.user_attrs.get("seeds", [])
    header = (f"# The best configuration of study {study.study_name}: trial {trial.number}, validation {objective} "
              f"{trial.value:.4f}{f' ± {ci95:.4f}' if ci95 is not None else ''} (mean over seeds {seeds}).\n"
              f"# graphmeta train {path} trains it again.\n")
    atomic_write_text(path, header + yaml.safe_dump(as_written(best.to_dict()), sort_keys=False))
    return best


def format_trials(table: pd.DataFrame, direction: str, top: int = 10) -> str:
    """The ``top`` completed trials, best first, and a count of the trials in every state."""
    counts = ", ".join(f"{count} {state}" for state, count in table["state"].value_counts().items())
    completed = table[table["state"] == "complete"].sort_values("value", ascending=direction == "minimize")
    shown = completed.head(top).drop(columns=["state"]).replace("", math.nan).dropna(axis=1, how="all")
    heading = f"{len(table)} trials ({counts})" + (f"; the best {len(shown)}:" if len(shown) else "")
    if not len(shown):
        return heading
    return heading + "\n" + shown.to_string(index=False, float_format=lambda value: f"{value:.4g}")


def describe_trial(trial: FrozenTrial, objective: str) -> str:
    """One line for a finished trial: its state, value and settings."""
    attrs = trial.user_attrs
    settings = " ".join(f"{path}={value:.4g}" if isinstance(value, float) else f"{path}={value}"
                        for path, value in trial.params.items())
    state = trial.state.name.lower()
    if trial.state == TrialState.COMPLETE:
        ci95 = attrs.get("ci95")
        outcome = (f"{state}: validation {objective} {trial.value:.4f}{f' ± {ci95:.4f}' if ci95 is not None else ''} "
                   f"over seeds {attrs.get('seeds')}")
    elif attrs.get("pruned"):
        outcome = f"{state} {attrs['pruned']}"
    else:
        outcome = f"{state}: {attrs.get('failure', 'no reason recorded')}"
    return f"trial {trial.number} {outcome}; {settings or 'the config as given'}"


def write_results(study: optuna.Study, config: RunConfig, folder: Path, objective: str,
                  space: Mapping[str, Dimension]) -> tuple[pd.DataFrame, RunConfig | None, list[Path]]:
    """Write ``trials.csv``, ``best.yaml`` and the figures (:mod:`.figures`) of ``study`` in
    ``folder``; the trials table, the best configuration and the figures' paths."""
    table = trials_table(study)
    atomic_write_text(folder / "trials.csv", table.to_csv(index=False))
    best = write_best_config(study, config, folder / "best.yaml", objective)
    return table, best, plot_study_figures(study, table, space, objective, folder / "figures")
