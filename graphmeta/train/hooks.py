"""Hooks: how later features (a tuner that prunes, a distributed trainer, a time budget) attach
to the run loop (:mod:`.run_loop`) without editing it.

A hook is any object with one or more of these methods; the loop calls the ones it has, in the
order the hooks were added. :class:`Hook` builds one from plain functions::

    from graphmeta.train import Hook

    class Pruner:                               # an Optuna trial: report each validation, prune
        def __init__(self, trial):
            self.trial = trial

        def after_validation(self, event):
            self.trial.report(event.loss, event.step)
            return self.trial.should_prune()    # True stops the run

    steps = []
    trainer = graphmeta.Trainer(model, family, hooks=[Hook(after_step=lambda event: steps.append(event.step))])
    trainer.add_hook(Pruner(trial))

=====================================  ================================================================
``after_step(event: StepEvent)``       after every unit of work (a batch step, an arriving online
                                       task), with its number and metrics. Return ``True`` to stop.
``after_validation(event)``            after every validation (:class:`ValidationEvent`), with the
                                       validation loss and the best so far. Return ``True`` to stop:
                                       a tuner prunes a trial this way.
``before_checkpoint(event)``           before ``last.pt`` or ``best.pt`` is written
                                       (:class:`CheckpointEvent`). Return ``False`` to skip the write
                                       in this process: a distributed trainer lets only rank 0 write.
``after_checkpoint(event)``            after it was written, or skipped (``event.written``).
=====================================  ================================================================

A stop request (a hook returning ``True``, or :meth:`~graphmeta.train.run_loop.RunLoop.request_stop`
called from anywhere, e.g. a signal handler) ends the run cleanly after the current unit: the
final state is written to ``last.pt`` and ``summary.json`` says ``"status": "stopped"`` with the
reason. ``fit(resume=True)`` continues a stopped run. A hook may also raise: the exception ends
``fit`` as any error does, and the run resumes from its last checkpoint.

Any other return value (``None`` included) asks for nothing. Every event carries ``learner``:
the :class:`~graphmeta.train.Trainer` or :class:`~graphmeta.train.OnlineMetaLearner` that runs
(its ``model``, ``optimizer``, ``run`` directory, ``request_stop``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..errors import ConfigError


@dataclass(frozen=True)
class StepEvent:
    """Unit ``step`` of ``total`` is done. ``metrics`` are its numbers (batch: ``loss``,
    ``grad_norm``, and on the step that ends a log window ``loss_before``, ``loss_after``,
    ``accuracy_after`` (:meth:`~.trainer.Trainer.run_unit`); online: the arriving
    task's ``loss`` and ``accuracy``, the ``train_loss`` of its meta-updates; NaN where
    undefined, such as the accuracy of regression nodes); empty when a batch step's meta-update
    was skipped as non-finite."""

    step: int
    total: int
    unit: str
    metrics: Mapping[str, float]
    learner: Any = field(repr=False)


@dataclass(frozen=True)
class ValidationEvent:
    """The validation after unit ``step``: ``loss`` is the mean query loss after adaptation on the
    fixed validation tasks (lower is better), ``best_loss`` the lowest so far (at ``best_step``,
    this one when ``improved``); ``record`` is what ``metrics.jsonl`` got (``loss_before``,
    ``accuracy``, ``per_node``)."""

    step: int
    loss: float
    best_loss: float
    best_step: int | None
    improved: bool
    record: Mapping[str, Any]
    learner: Any = field(repr=False)


@dataclass(frozen=True)
class CheckpointEvent:
    """The checkpoint ``kind`` (``"last"`` or ``"best"``) at ``path`` of the state after unit
    ``step``; ``written`` is ``False`` before the write and when a hook skipped it."""

    step: int
    kind: str
    path: Path
    written: bool
    learner: Any = field(repr=False)


@dataclass(frozen=True)
class Hook:
    """A hook from plain functions; leave out the ones you do not need (see the module docstring)."""

    after_step: Callable[[StepEvent], Any] | None = None
    after_validation: Callable[[ValidationEvent], Any] | None = None
    before_checkpoint: Callable[[CheckpointEvent], Any] | None = None
    after_checkpoint: Callable[[CheckpointEvent], Any] | None = None

    def __repr__(self) -> str:
        given = [(name, getattr(self, name)) for name in HOOK_METHODS if getattr(self, name) is not None]
        return "Hook(" + ", ".join(f"{name}={getattr(function, '__qualname__', function)}"
                                   for name, function in given) + ")"


HOOK_METHODS = tuple(f.name for f in fields(Hook))


def check_hook(hook: Any) -> Any:
    """``hook``, or a ConfigError when it has none of the hook methods (a bare function, say)."""
    if not any(callable(getattr(hook, name, None)) for name in HOOK_METHODS):
        raise ConfigError(f"{hook!r} is not a hook: it has none of the methods {', '.join(HOOK_METHODS)}; wrap a "
                          "function as graphmeta.train.Hook(after_step=function), or another of those names")
    return hook


def call_hooks(hooks: list[Any], method: str, event: Any) -> list[tuple[Any, Any]]:
    """Call ``method(event)`` on every hook that has it, in order; ``(hook, returned value)`` of each."""
    results = []
    for hook in hooks:
        function = getattr(hook, method, None)
        if function is not None:
            results.append((hook, function(event)))
    return results
