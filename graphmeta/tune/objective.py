"""The objective of a study: one trial is its settings trained with every seed, scored on validation.

Trial ``n`` draws its settings (:mod:`.search_space`), applies them to the study's run config and
meta-trains it once per seed ``s = train.seed, train.seed + 1, ...`` in
``<study>/trials/<n>/seed-<s>/`` (a run directory like any other). Each run's value ``v_s`` is the
objective of its best validation, the checkpoint it keeps: the mean query loss after adaptation
on its fixed validation tasks (``loss``), or the mean accuracy there (``accuracy``). The trial's
value is the mean over its ``S`` seeds,

    v = (1 / S) sum_s v_s,     with the 95% interval  t_{0.975, S-1} * sd(v_s) / sqrt(S),

and its user attributes keep ``seeds``, each seed's value (``values``) and ``ci95``. Test tasks
are never touched.

A trial ends in one of three states:

- **complete**, with the value ``v``;
- **pruned**: the pruner stopped it (:mod:`.pruning`; ``pruned`` says where), or it could not be
  scored: a loss or gradient went non-finite (a run's TrainingError), its best validation value
  is not finite, or a run config check refused its combination of settings (``failure`` says
  which). Pruned trials count towards the study's trials, and Optuna's samplers learn to avoid
  them;
- **failed**: anything else went wrong (the error is kept in ``failure`` and raised again), or
  its worker died during it (:mod:`.workers`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from ..errors import ConfigError, TrainingError
from ..train import RunConfig, Trainer
from .pruning import CURVE_PRUNERS, PruningHook
from .search_space import Dimension, suggest, with_settings
from .seeds import over_seeds, seed_config


class Unscorable(Exception):
    """A trial that cannot be scored (its message says why): recorded as pruned."""


def trial_folder(study_folder: Path, number: int) -> Path:
    """Where trial ``number`` keeps its runs, one ``seed-<s>`` directory per seed."""
    return study_folder / "trials" / f"{number:04d}"


def best_value(trainer: Trainer, objective: str) -> float:
    """The ``objective`` of ``trainer``'s best validation (NaN when no validation was finite)."""
    if objective == "loss":
        return trainer.best_loss if trainer.best_step is not None else math.nan
    records = [r for r in trainer.run.read_metrics() if r["split"] == "val" and r["step"] == trainer.best_step]
    return float(records[-1][objective]) if records else math.nan


@dataclass
class TrialObjective:
    """Runs trials of the study whose run config is ``config`` in ``folder``, scored by
    ``objective`` (``loss`` or ``accuracy``). A trial draws from ``space``; with ``settings``
    (``fixed`` and ``grid``), it takes the keys of its own setting (its user attribute
    ``setting`` numbers it), enqueued with their values."""

    config: RunConfig
    folder: Path
    space: dict[str, Dimension]
    objective: str
    settings: list[dict[str, Any]] | None = None

    def run(self, study: optuna.Study, trial: optuna.Trial) -> FrozenTrial:
        """Run ``trial`` to its end and tell ``study`` how it ended (see the module docstring)."""
        try:
            value = self._score(trial)
        except optuna.TrialPruned:
            return study.tell(trial, state=TrialState.PRUNED)
        except Unscorable as reason:
            trial.set_user_attr("failure", str(reason))
            return study.tell(trial, state=TrialState.PRUNED)
        except BaseException as error:
            trial.set_user_attr("failure", f"{type(error).__name__}: {error}")
            study.tell(trial, state=TrialState.FAIL)
            raise
        return study.tell(trial, value)

    def _score(self, trial: optuna.Trial) -> float:
        tune = self.config.tune
        try:
            space = self.space
            if self.settings is not None:
                space = {path: space[path] for path in self.settings[trial.user_attrs["setting"]]}
            trial_config = with_settings(self.config, suggest(trial, space))
        except ConfigError as refused:
            raise Unscorable(f"settings refused: {refused}") from None
        seeds = [trial_config.train.seed + index for index in range(tune.seeds)]
        trial.set_user_attr("seeds", seeds)
        values: list[float] = []
        for index, seed in enumerate(seeds):
            run_config = seed_config(trial_config, seed, trial_folder(self.folder, trial.number), f"seed-{seed}")
            hook = PruningHook(trial, self.objective) if index == 0 and tune.pruner in CURVE_PRUNERS else None
            trainer = Trainer.from_config(run_config.with_values({"train.progress": False}),
                                          hooks=[hook] if hook else [])
            try:
                trainer.fit()
            except TrainingError as error:
                raise Unscorable(f"seed {seed}: {error}") from None
            if hook is not None and hook.pruned_step is not None:
                trial.set_user_attr("pruned", f"at step {hook.pruned_step} of seed {seed}")
                raise optuna.TrialPruned()
            value = best_value(trainer, self.objective)
            if not math.isfinite(value):
                raise Unscorable(f"seed {seed}: the best validation {self.objective} is {value}")
            values.append(value)
            trial.set_user_attr("values", values)
            if tune.pruner == "wilcoxon":
                trial.report(value, index)
                if trial.should_prune():
                    trial.set_user_attr("pruned", f"after seed {seed}")
                    raise optuna.TrialPruned()
        estimate = over_seeds(values)
        trial.set_user_attr("ci95", estimate.ci95 if math.isfinite(estimate.ci95) else None)
        return estimate.mean

