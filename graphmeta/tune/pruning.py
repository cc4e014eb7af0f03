"""Pruning: stopping a trial early, through the run loop's validation hook.

:class:`PruningHook` is a run-loop hook (:mod:`graphmeta.train.hooks`): after every validation
of a run it reports the objective to the Optuna trial, and when the study's pruner says the trial
should stop, its ``after_validation`` returns ``True``, which stops the run like any stop request
(a final checkpoint, status ``stopped``); the study then marks the trial pruned.

The pruners (``tune.pruner``):

- ``median`` (Optuna's ``MedianPruner``): stop when the value at a validation step is worse than
  the median of the other trials' values at that step.
- ``successive_halving`` (``SuccessiveHalvingPruner``): at validation steps ``r * eta^k`` (rungs),
  keep only the best ``1 / eta`` of the trials that reached the rung.
- ``wilcoxon`` (``WilcoxonPruner``): between the seeds of a trial, a one-sided Wilcoxon
  signed-rank test of its seeds' values against the best trial's values for the same seeds;
  stop when ``p < p_threshold``. With ``n`` seeds the smallest p-value is ``2^-n``, so at
  Optuna's threshold of 0.1 it needs 4 seeds to prune.
- ``none``: every trial runs to the end.

The curve pruners (median, successive halving) watch the validation curve of a trial's first
seed, so a trial that falls behind is stopped before its other seeds run; Optuna keys a
trial's reports by step, and the steps of the later seeds would collide with the first's.
A run's starting point (step 0, before any training) is not reported: it shows the seed, not
the settings' training.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from typing import Any

import optuna

from ..train.hooks import ValidationEvent
from ..validation import check_arguments

PRUNERS: dict[str, type[optuna.pruners.BasePruner]] = {
    "none": optuna.pruners.NopPruner, "median": optuna.pruners.MedianPruner,
    "successive_halving": optuna.pruners.SuccessiveHalvingPruner, "wilcoxon": optuna.pruners.WilcoxonPruner}
#: The pruners that watch the validation curve (the others work between seeds, or not at all).
CURVE_PRUNERS = ("median", "successive_halving")


def build_pruner(kind: str, options: Mapping[str, Any]) -> optuna.pruners.BasePruner:
    """The Optuna pruner ``kind`` with ``options`` (``tune.pruner_options``), checked against its signature."""
    options = check_arguments(PRUNERS[kind], options, "tune.pruner_options")
    with warnings.catch_warnings():  # graphmeta offers WilcoxonPruner knowingly: Optuna's "experimental" is not news
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return PRUNERS[kind](**options)


class PruningHook:
    """Report the ``objective`` (a key of the validation record: ``loss``, ``accuracy``) of every
    validation after the start to ``trial``; stop the run when the trial should be pruned, or when
    the value is not finite. ``pruned_step`` and ``nonfinite_step`` say which happened, and when."""

    def __init__(self, trial: optuna.Trial, objective: str = "loss") -> None:
        self.trial = trial
        self.objective = objective
        self.pruned_step: int | None = None
        self.nonfinite_step: int | None = None

    def __repr__(self) -> str:
        return f"PruningHook(trial {self.trial.number}, {self.objective})"

    def after_validation(self, event: ValidationEvent) -> bool:
        value = float(event.record[self.objective])
        if not math.isfinite(value):
            self.nonfinite_step = event.step
            return True
        if event.step == 0:
            return False
        self.trial.report(value, event.step)
        if self.trial.should_prune():
            self.pruned_step = event.step
            return True
        return False
