"""Meta-training, evaluation, checkpoints and run directories.

:class:`Trainer` is episodic (batch) meta-training; :class:`OnlineMetaLearner` learns from a
stream of tasks (FTML). Both are thin learners on ONE run loop; the pieces stand alone, for
other training loops:

- :mod:`.run_loop`: the run loop both learners share (``RunLoop``): progress, validation,
  checkpoints, early stopping, stop requests; :mod:`.run_state`: what a run is made of, how it is
  built and its checkpoint (``RunState``, its counters :mod:`.loop_state`, log window
  :mod:`.metric_window`); :mod:`.run_start`: a new or resumed run; :mod:`.training_summary`;
- :mod:`.hooks`: what tuning and distributed training attach to it (``Hook`` and its events);
- :mod:`.outer_step`: one meta-update (``meta_update``);
- :mod:`.distributed`: data-parallel training on several processes (torchrun, DDP);
  :mod:`.launch`: ``--nproc N``, those processes started on this machine;
- :mod:`.config`: the YAML run config, its validation and comparison (``TrainConfig``, ``EvaluateConfig``);
- :mod:`.interrupts`: Ctrl-C or SIGTERM ends ``fit`` after the unit under way, checkpointed
  (``RunInterrupted``, a ``KeyboardInterrupt`` saying how to resume);
- :mod:`.checkpoint`: atomic, verified, weights-only checkpoints and RNG states;
- :mod:`.run_dir`: the files of a run (``RunDirectory``: config, metrics.jsonl, summary);
- :mod:`.episode_sampler`: a task stream whose state is one counter (``EpisodeSampler``);
- :mod:`.buffer`: the bounded task memory of online meta-learning (``TaskBuffer``);
- :mod:`.schedules`: learning-rate schedules; :mod:`.evaluation`: a run's evaluation, its
  baselines (from scratch, pooled, the ablation) and intervals (numbers);
- :mod:`.figures`: training curves and per-node task-graph pictures, drawn from those numbers.
"""

from .buffer import TaskBuffer
from .config import EvaluateConfig, OnlineConfig, RunConfig, TrainConfig, load_config
from .evaluation import EvaluationReport
from .hooks import CheckpointEvent, Hook, StepEvent, ValidationEvent
from .interrupts import RunInterrupted
from .online import OnlineMetaLearner
from .run_dir import RunDirectory
from .run_loop import RunLoop
from .trainer import Trainer

__all__ = ["CheckpointEvent", "EvaluateConfig", "EvaluationReport", "Hook", "OnlineConfig", "OnlineMetaLearner",
           "RunConfig", "RunDirectory", "RunInterrupted", "RunLoop", "StepEvent", "TaskBuffer", "TrainConfig", "Trainer",
           "ValidationEvent", "load_config"]
