"""Starting a run: a new run directory, or the run resumed from its ``checkpoints/last.pt``.

**Resume.** ``fit(resume=True)`` restores every state the loop and the learner keep (model,
Adam, schedule position, task stream, RNGs, window, best, counters, wall time) and drops the
metrics recorded after the checkpoint, so a killed run resumed ends bit for bit where the
uninterrupted run would have. The run's own ``config.yaml`` is the config of a resumed run: a
learner built with other settings is refused with a ConfigError listing them (``old -> new``,
:func:`~.config.config_changes`), unless ``allow_changes=True`` accepts them; then
``config.yaml`` takes the new settings and ``summary.json["config_changes"]`` records them and
the unit they took effect after. Keys that say where a run lives or whether a progress bar shows
(:data:`~.config.FREE_KEYS`) may differ freely. ``wall_time_s`` of the summary counts the time up
to the checkpoint resumed from plus the time after it.

Only the writer, rank 0, opens or resumes the run directory; in a run of several processes every
other process then takes the writer's state (:mod:`.distributed`).
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .checkpoint import seed_everything
from .config import config_changes
from .distributed import note_world_size_change


def start_run(learner: Any, resume: bool, allow_changes: bool) -> None:
    """Start the run of ``learner`` (a :class:`~.run_loop.RunLoop`) on every process: the writer
    opens or resumes its directory (see the module docstring), the others take its state."""
    if allow_changes and not resume:
        raise ConfigError("allow_changes accepts a changed config when a run is resumed: pass resume=True too "
                          "(graphmeta train --resume --allow-changes)")
    parallel, state = learner.parallel, learner.loop_state
    parallel.from_writer(lambda: open_run(learner, resume, allow_changes))
    if parallel.world_size > 1:
        writers_state, checkpointed = parallel.from_writer(lambda: (learner.state_dict(), state.checkpointed_step))
        if not parallel.is_writer:
            learner.load_state_dict(writers_state, source="the state of rank 0")
            state.checkpointed_step = checkpointed


def open_run(learner: Any, resume: bool, allow_changes: bool) -> None:
    """The writer's part of :func:`start_run`: a new run directory (every RNG seeded by ``train.seed``,
    the learner's ``begin_run``, its config and graph written), or the run resumed from ``last.pt``."""
    run, config = learner.run, learner.run_config()
    if not run.last.exists():
        seed_everything(learner.config.seed)
        learner.begin_run()
        run.write_config(config)
        run.write_graph(learner.model.graph)
        return
    if not resume:
        raise ConfigError(f"{run.path} already holds a run: resume it (resume=True, graphmeta train "
                          "--resume) or choose another name (train.name)")
    saved = run.read_config()
    changes = config_changes(saved, config) if saved else {}
    if changes and not allow_changes:
        listed = "; ".join(f"{key}: {old!r} -> {new!r}" for key, (old, new) in changes.items())
        raise ConfigError(f"{run.path} was trained with another config ({run.config}); this one "
                          f"changes {listed}. Resume with the run's own config, or accept the changes with "
                          "allow_changes=True (graphmeta train --resume --allow-changes); the run records them")
    learner.load(run.last)
    state, world_size = learner.loop_state, learner.parallel.world_size
    state.checkpointed_step = state.step
    if state.world_size != world_size:
        note_world_size_change(run, state.step, learner.unit, state.world_size, world_size)
    run.truncate_metrics(state.step)
    if changes:
        run.write_config(config)
        recorded = {key: [old, new] for key, (old, new) in changes.items()}
        history = run.read_summary().get("config_changes", [])
        run.update_summary("config_changes", [*history, {"after": state.step, "unit": learner.unit,
                                                         "changes": recorded}])
