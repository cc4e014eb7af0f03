"""The ``training`` section of a run's ``summary.json``: how the run ended and what it keeps.

``status`` is ``completed``, ``early stopped`` (``train.early_stopping_patience`` validations
without a new best) or ``stopped`` (a stop request, whose ``stop_reason`` is given); then the
learner's own fields (``summary_fields``: the steps and final training loss of a batch run, the
online learning curve's windows), ``updates`` and ``skipped_updates``, ``wall_time_s`` (before
the last resume plus since), ``world_size``, for a learner that validates ``best_step`` and
``best_val_loss``, and the paths of its ``checkpoints``.
"""

from __future__ import annotations

from typing import Any

import torch

from .checkpoint import load_checkpoint


def write_training_summary(learner: Any) -> tuple[dict[str, Any], dict[str, torch.Tensor] | None]:
    """The training summary of ``learner`` (a :class:`~.run_loop.RunLoop` whose ``fit`` ended),
    written to ``summary.json``, and the weights of ``best.pt`` for a learner that validates
    (``None``: none)."""
    state, run, reason = learner.loop_state, learner.run, learner.stop_reason
    status = "stopped" if reason else "early stopped" if state.early_stopped else "completed"
    summary: dict[str, Any] = {"status": status, **({"stop_reason": reason} if reason else {}),
                               **learner.summary_fields(), "updates": state.updates,
                               "skipped_updates": state.skipped_updates, "wall_time_s": round(learner.elapsed_s, 2),
                               "world_size": learner.parallel.world_size,
                               **({"compile": learner.compilation.record()} if learner.compilation else {})}
    checkpoints = {"last": str(run.last)}
    if learner.validates:
        summary.update(best_step=state.best_step, best_val_loss=state.best_loss)
        checkpoints["best"] = str(run.best)
    summary["checkpoints"] = checkpoints
    run.update_summary("training", summary)
    if learner.validates and run.best.is_file():
        return summary, load_checkpoint(run.best, required=("model",))["model"]
    return summary, None
