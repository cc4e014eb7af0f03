"""Meta-training, evaluation, checkpoints and run directories.

:class:`Trainer` is episodic (batch) meta-training; :class:`OnlineMetaLearner` learns from a
stream of tasks (FTML). The pieces both are built from stand alone, for other training loops:

- :mod:`.loop`: the outer step and the start (or resume) of a run, shared by both;
- :mod:`.config`: the YAML run config and its validation (``TrainConfig``, ``EvaluateConfig``);
- :mod:`.checkpoint`: atomic, verified, weights-only checkpoints and RNG states;
- :mod:`.run_dir`: the files of a run (``RunDirectory``: config, metrics.jsonl, summary);
- :mod:`.sampler`: a task stream whose state is one counter (``EpisodeSampler``);
- :mod:`.buffer`: the bounded task memory of online meta-learning (``TaskBuffer``);
- :mod:`.schedules`: learning-rate schedules; :mod:`.evaluation`: baselines and intervals;
- :mod:`.figures`: training curves and per-node task-graph pictures.
"""

from .buffer import TaskBuffer
from .config import EvaluateConfig, OnlineConfig, RunConfig, TrainConfig, load_config
from .evaluation import EvaluationReport
from .online import OnlineMetaLearner
from .run_dir import RunDirectory
from .trainer import Trainer

__all__ = ["EvaluateConfig", "EvaluationReport", "OnlineConfig", "OnlineMetaLearner", "RunConfig", "RunDirectory",
           "TaskBuffer", "TrainConfig", "Trainer", "load_config"]
