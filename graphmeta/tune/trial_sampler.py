"""The sampler of a study: Optuna's, seeded per trial so that parallel workers draw the same trials.

An Optuna sampler seeded once draws the same sequence in every process, so N workers started
with one seed would evaluate the same settings N times. :class:`TrialSeededSampler` gives trial
``n`` a fresh sampler seeded from ``(seed, n)`` instead: trial numbers are unique across the
workers of a study, so each trial draws its own values, and a study run again with the same
seed draws the same trials whichever worker ran which. (TPE still depends on which trials had
finished when a trial started, as any parallel Bayesian optimisation does.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler
from optuna.trial import FrozenTrial, TrialState

from ..validation import check_arguments, parameters

#: The Optuna sampler of each strategy; ``fixed`` and ``grid`` trials take enqueued settings, so
#: their sampler never draws.
SAMPLERS: dict[str, type[BaseSampler]] = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler,
                                          "grid": optuna.samplers.RandomSampler,
                                          "fixed": optuna.samplers.RandomSampler}
#: What graphmeta sets unless ``tune.sampler_options`` says otherwise: TPE's constant liar treats
#: the trials other workers are running as bad ones, so parallel workers spread out.
SAMPLER_DEFAULTS: dict[str, dict[str, Any]] = {"tpe": {"constant_liar": True}}


class TrialSeededSampler(BaseSampler):
    """``sampler_class(seed=s_n, **options)`` for trial ``n``, ``s_n`` drawn from ``(seed, n)``."""

    def __init__(self, sampler_class: type[BaseSampler], seed: int, options: Mapping[str, Any]) -> None:
        self.sampler_class = sampler_class
        self.seed = seed
        self.options = dict(options)
        self._trial_number: int | None = None
        self._sampler: BaseSampler | None = None

    def __repr__(self) -> str:
        return f"TrialSeededSampler({self.sampler_class.__name__}, seed={self.seed}, options={self.options})"

    def for_trial(self, trial: FrozenTrial) -> BaseSampler:
        """The sampler of ``trial``, made on its first use."""
        if self._trial_number != trial.number:
            seed = int(np.random.SeedSequence([self.seed, trial.number]).generate_state(1)[0])
            self._trial_number, self._sampler = trial.number, self.sampler_class(seed=seed, **self.options)
        return self._sampler

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.for_trial(trial).before_trial(study, trial)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self.for_trial(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial,
                        search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return self.for_trial(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self.for_trial(trial).sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self.for_trial(trial).after_trial(study, trial, state, values)


def build_sampler(strategy: str, seed: int, options: Mapping[str, Any]) -> TrialSeededSampler:
    """The sampler of ``strategy`` with ``options`` (``tune.sampler_options``), checked against the
    Optuna sampler's signature; its keys that YAML cannot give (functions) and ``seed`` are refused."""
    sampler_class = SAMPLERS[strategy]
    settable = [name for name, hint in parameters(sampler_class).items() if hint is not Any and name != "seed"]
    checked = check_arguments(sampler_class, options, "tune.sampler_options",
                              exclude=set(parameters(sampler_class)) - set(settable))
    return TrialSeededSampler(sampler_class, seed, {**SAMPLER_DEFAULTS.get(strategy, {}), **checked})
