"""`RunState`: what a run is made of, how it is built, and the checkpoint that holds it.

A run is a model meta-trained on a task family under typed configs (:mod:`.config`): the
``train:`` section (:class:`~.config.TrainConfig`) and the learner's own sections (``sections``,
e.g. ``online:``), passed on as they are, never flattened and parsed again. Its parts:

- ``parallel``, this process's :class:`~.distributed.DataParallelGroup` (one process without
  torchrun's environment), with the model moved to this process's device;
- ``run``, the :class:`~.run_dir.RunDirectory` ``train.run_dir / train.name`` (by default
  ``<graph>-<kind>-<timestamp>``, named by the writer, rank 0);
- ``optimizer`` and ``scheduler``, Adam at ``outer_lr`` and its rate schedule over
  ``total_updates`` meta-updates (:func:`~.outer_step.outer_optimizer`);
- ``sampler``, the task stream (meta-batches of ``stream_batch_size`` tasks, this process's share
  of each) and the source of the fixed validation and evaluation tasks;
- ``loop_state``, the loop's counters (:class:`~.loop_state.LoopState`; ``step``, ``updates``,
  ``best_loss``, ... read through the run).

A checkpoint (:meth:`RunState.state_dict`) holds every one of them that changes, with the
learner's own (:meth:`~RunState.extra_state`), so a run restored from it goes on bit for bit.
The loop that drives a run is :class:`~.run_loop.RunLoop`, this class's subclass.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from time import strftime
from typing import Any, ClassVar, TypeVar

from ..errors import CheckpointError, ConfigError
from ..model import GraphMetaLearner
from .checkpoint import (
    graph_record,
    load_checkpoint,
    require_finite_parameters,
    restore_model_and_optimizer,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from .config import EvaluateConfig, RunConfig, TrainConfig, family_spec, load_family_and_model, load_run_config
from .device import resolve_device
from .distributed import join_data_parallel_group
from .episode_sampler import EpisodeSampler, Family
from .loop_state import LoopState, forwarded
from .outer_step import outer_optimizer
from .recorded_graph import check_recorded_graph, on_recorded_graph, recorded_graph_file
from .run_dir import RunDirectory
from .schedules import restore_scheduler

CHECKPOINT_KEYS = ("step", "model", "model_config", "optimizer", "scheduler", "sampler", "rng", "loop")

Learner = TypeVar("Learner", bound="RunState")


class RunState:
    """The parts of a run (see the module docstring); built by a learner, driven by :class:`~.run_loop.RunLoop`.

    ``family_spec`` is the ``family:`` section written to ``config.yaml`` (so ``graphmeta
    evaluate`` can rebuild the run): :meth:`from_config` sets it, otherwise it comes from the
    family's ``card`` and ``config`` (:func:`~.config.family_spec`). ``evaluate_config`` holds
    the defaults of ``evaluate``.
    """

    kind: ClassVar[str] = ""
    sections: ClassVar[tuple[str, ...]] = ()
    extra_checkpoint_keys: ClassVar[tuple[str, ...]] = ()
    unit: ClassVar[str]

    step = forwarded("step")
    updates = forwarded("updates")
    skipped_updates = forwarded("skipped_updates")
    best_step = forwarded("best_step")
    best_loss = forwarded("best_loss")
    stale_validations = forwarded("stale_validations")
    early_stopped = forwarded("early_stopped")

    def __init__(self, model: GraphMetaLearner, family: Family, config: TrainConfig, stream_batch_size: int,
                 total_updates: int) -> None:
        model.check_graph(family.graph)
        self.parallel = join_data_parallel_group(config.backend, config.device)
        device = self.parallel.process_device(config.device)
        if device is not None:
            model.to(resolve_device(device))
        self.config, self.model, self.family, self.total_updates = config, model, family, total_updates
        self.family_spec = family_spec(family)
        self.evaluate_config = EvaluateConfig()
        name = config.name or self.parallel.from_writer(lambda: "-".join(filter(None, [
            family.graph.name or "run", self.kind, strftime("%Y%m%d-%H%M%S")])))
        self.run = RunDirectory(Path(config.run_dir) / name)
        self.optimizer, self.scheduler = outer_optimizer(model, config, total_updates)
        share = self.parallel.share(stream_batch_size) if self.parallel.world_size > 1 else None
        self.sampler = EpisodeSampler(family, stream_batch_size, config.shots, config.query_shots, config.seed, share)
        self.loop_state = LoopState(world_size=self.parallel.world_size)

    @classmethod
    def from_config(cls: type[Learner], config: RunConfig | Mapping[str, Any], hooks: Iterable[Any] = ()) -> Learner:
        """Load the family of ``config``, build the model (seeded with ``train.seed``) and the learner
        of this class, which gets the typed sections of ``config`` as they are and ``hooks``.

        A run that already holds a checkpoint is rebuilt on its recorded ``graph.yaml``
        (:mod:`.recorded_graph`): a graph learned from a table is not learned again, and a family
        that now builds another graph is a CheckpointError naming the differences."""
        if not isinstance(config, RunConfig):
            config = RunConfig.from_dict(config)
        graph_file = recorded_graph_file(config)
        family, model = load_family_and_model(config if graph_file is None else on_recorded_graph(config, graph_file))
        if graph_file is not None:
            check_recorded_graph(family.graph, graph_file)
        sections = {name: getattr(config, name) for name in cls.sections}
        learner = cls(model, family, config.train, hooks=hooks, **sections)
        learner.family_spec = dict(config.family)
        learner.evaluate_config = config.evaluate
        return learner

    @classmethod
    def from_run(cls: type[Learner], path: str | Path, checkpoint: str = "best", hooks: Iterable[Any] = ()) -> Learner:
        """The learner of the run in ``path``, loaded from its ``best`` (or ``last``) checkpoint;
        a run without ``best.pt`` (an online run keeps only ``last``) loads ``last`` either way."""
        if checkpoint not in ("best", "last"):
            raise ConfigError(f"checkpoint must be 'best' or 'last', got {checkpoint!r}")
        learner = cls.from_config(load_run_config(path), hooks)
        run = learner.run
        if not run.best.is_file() and not run.last.is_file():
            raise CheckpointError(f"run {run.path} has no checkpoint ({run.last.parent} holds neither best.pt nor "
                                  "last.pt): train it first, or resume it with graphmeta train CONFIG --resume")
        return learner.load(run.best if checkpoint == "best" and run.best.is_file() else run.last)

    def run_config(self) -> dict[str, Any]:
        """The run config this learner runs, as ``config.yaml`` holds it."""
        return {"family": dict(self.family_spec), "model": dict(self.model.config), "train": self.config.to_dict(),
                "evaluate": self.evaluate_config.to_dict(), **{s: getattr(self, s).to_dict() for s in self.sections}}

    @property
    def elapsed_s(self) -> float:
        """Wall time of the run: before the last resume (up to its checkpoint) plus since."""
        return self.loop_state.elapsed_s

    def extra_state(self) -> dict[str, Any]:
        """What the learner adds to a checkpoint (tensors and primitive containers)."""
        return {}

    def load_extra_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`extra_state` added."""

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs, as tensors and primitive containers."""
        return {"step": self.step, "model": self.model.state_dict(), "model_config": dict(self.model.config),
                **graph_record(self.model.graph),
                "optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                "sampler": self.sampler.state_dict(), "rng": rng_state(),
                "loop": self.loop_state.state_dict(self.elapsed_s, self.parallel.world_size),
                "train_config": self.config.to_dict(), **self.extra_state()}

    def load_state_dict(self, state: Mapping[str, Any], source: str = "the state") -> None:
        """Restore a :meth:`state_dict`; a state that does not fit is a CheckpointError naming ``source``."""
        restore_model_and_optimizer(self.model, self.optimizer, state, source)
        restore_scheduler(self.scheduler, state["scheduler"])
        self.sampler.load_state_dict(state["sampler"])
        self.load_extra_state(state)
        set_rng_state(state["rng"])
        self.loop_state.load_state_dict(state["step"], state["loop"])

    def save(self, path: str | Path | None = None) -> Path:
        """Write the full state to ``path`` (default ``checkpoints/last.pt``) atomically; a
        non-finite parameter is a TrainingError naming it, and nothing is written."""
        require_finite_parameters(self.model, f"at {self.unit} {self.step}")
        return save_checkpoint(self.state_dict(), self.run.last if path is None else path)

    def load(self: Learner, path: str | Path | None = None) -> Learner:
        """Restore the full state from ``path`` (default ``checkpoints/last.pt``); returns ``self``."""
        path = self.run.last if path is None else Path(path)
        required = (*CHECKPOINT_KEYS, *self.extra_checkpoint_keys)
        self.load_state_dict(load_checkpoint(path, required=required), source=f"checkpoint {path}")
        return self
