"""The search space of a study: what each trial draws, and the run config a draw gives.

A dimension of ``tune.space`` (checked by :meth:`~graphmeta.train.RunConfig.search_space`) is a
tuple of choices or a :class:`~graphmeta.train.config.SearchRange`, and becomes one Optuna
``suggest_*`` call named by its key path::

    [maml, metasgd]                       suggest_categorical("model.algorithm", ...)
    {low: 1, high: 3}  (an integer key)   suggest_int(..., 1, 3)             every integer, uniformly
    {low: 0.001, high: 1.0, log: true}    suggest_float(..., log=True)       log-uniform: P(x) ~ 1 / x
    {low: 0.1, high: 0.5, step: 0.1}      suggest_float(..., step=0.1)       uniform on the grid

The ``fixed`` and ``grid`` strategies evaluate a list of settings instead (:func:`settings`);
each trial takes one whole setting, and its values are recorded as categorical parameters over
the values listed for each key, so every strategy's trials share one table.
"""

from __future__ import annotations

import dataclasses
import itertools
import random
from collections.abc import Mapping
from typing import Any

import optuna

from ..train.config import RunConfig, SearchRange

Dimension = SearchRange | tuple[Any, ...]


def suggest(trial: optuna.Trial, space: Mapping[str, Dimension]) -> dict[str, Any]:
    """``{key path: value}`` drawn by ``trial`` from every dimension of ``space``."""
    values = {}
    for path, dimension in space.items():
        if isinstance(dimension, tuple):
            values[path] = trial.suggest_categorical(path, dimension)
        elif dimension.integer:
            values[path] = trial.suggest_int(path, dimension.low, dimension.high, step=dimension.step or 1,
                                             log=dimension.log)
        else:
            values[path] = trial.suggest_float(path, dimension.low, dimension.high, step=dimension.step,
                                               log=dimension.log)
    return values


def settings(config: RunConfig) -> list[dict[str, Any]] | None:
    """The settings that ``fixed`` (``tune.trials``, in order) and ``grid`` (every combination of
    the grid values, in an order shuffled by ``tune.sampler_seed``) evaluate; ``None`` for the
    strategies that sample."""
    tune = config.tune
    if tune.strategy == "fixed":
        return [dict(setting) for setting in tune.trials]
    if tune.strategy != "grid":
        return None
    space = config.search_space()
    grids = [dimension if isinstance(dimension, tuple) else dimension.grid() for dimension in space.values()]
    combinations = [dict(zip(space, values)) for values in itertools.product(*grids)]
    random.Random(tune.sampler_seed).shuffle(combinations)
    return combinations


def settings_space(listed: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """``{key path: the values listed for it}``: the categorical parameters of ``fixed`` and ``grid`` trials."""
    space: dict[str, tuple[Any, ...]] = {}
    for setting in listed:
        for path, value in setting.items():
            if value not in space.setdefault(path, ()):
                space[path] += (value,)
    return space


def with_settings(config: RunConfig, values: Mapping[str, Any]) -> RunConfig:
    """``config`` with ``values`` at their key paths and no ``tune:`` section: the run config of a trial."""
    return dataclasses.replace(config, tune=None).with_values(values)
