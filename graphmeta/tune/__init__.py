"""Hyperparameter search on Optuna: ``graphmeta tune CONFIG`` and ``graphmeta.tune(config)``.

A run config with a ``tune:`` section (:class:`~graphmeta.train.config.TuneConfig`) is a study:
each trial draws settings from the search space, trains the config with them once per seed on
the ONE run loop (:mod:`graphmeta.train.run_loop`), and is scored by its validation objective,
the mean over its seeds; a pruner stops trials that fall behind through the loop's validation
hook. ::

    import graphmeta

    result = graphmeta.tune("examples/configs/sinusoid-tune.yaml")   # or a RunConfig, or a mapping
    result.study              # the Optuna study (trials, best_trial, ...)
    result.best_config        # the RunConfig of the best trial, also in <study folder>/best.yaml
    result.trials             # the trials table, also in <study folder>/trials.csv

``graphmeta.tune`` is this module, callable as :func:`~.study.tune`. The pieces:

- :mod:`.search_space`: what a trial draws and the run config it gives;
- :mod:`.trial_sampler`: Optuna's samplers, seeded per trial for parallel workers;
- :mod:`.pruning`: :class:`PruningHook` (report each validation, stop a pruned run) and the pruners;
- :mod:`.objective`: one trial: its seeds' runs and their mean (:class:`TrialObjective`);
- :mod:`.seeds`: multi-run averaging without a search (``graphmeta train --seeds``);
- :mod:`.study`: the study, its folder, storage and resume (:func:`tune`);
- :mod:`.workers`: parallel workers, and trials whose worker died;
- :mod:`.results`, :mod:`.figures`: the trials table, ``best.yaml`` and the figures.
"""

from __future__ import annotations

import sys
import types
from typing import Any

from .objective import TrialObjective
from .pruning import PruningHook
from .results import best_config, trials_table
from .seeds import SeedsReport, train_seeds
from .study import TuneResult, tune

__all__ = ["PruningHook", "SeedsReport", "TrialObjective", "TuneResult", "best_config", "train_seeds", "trials_table",
           "tune"]


class _CallableModule(types.ModuleType):
    """This module, callable as :func:`tune` (Python's documented way to customise a module:
    setting its ``__class__``), so ``graphmeta.tune(config)`` runs a study and
    ``graphmeta.tune.PruningHook`` still names a class."""

    def __call__(self, *args: Any, **kwargs: Any) -> TuneResult:
        return tune(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
