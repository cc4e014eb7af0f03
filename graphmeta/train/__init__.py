"""Meta-training, evaluation, checkpoints and run directories.

:class:`Trainer` is episodic (batch) meta-training. Its pieces stand alone, for other training
loops (an online meta-learner reuses them as they are):

- :mod:`.config`: the YAML run config and its validation (``TrainConfig``, ``EvaluateConfig``);
- :mod:`.checkpoint`: atomic, verified, weights-only checkpoints and RNG states;
- :mod:`.run_dir`: the files of a run (``RunDirectory``: config, metrics.jsonl, summary);
- :mod:`.sampler`: a task stream whose state is one counter (``EpisodeSampler``);
- :mod:`.schedules`: learning-rate schedules; :mod:`.evaluation`: baselines and intervals;
- :mod:`.figures`: training curves and per-node task-graph pictures.
"""

from .config import EvaluateConfig, RunConfig, TrainConfig, load_config
from .evaluation import EvaluationReport
from .run_dir import RunDirectory
from .trainer import Trainer

__all__ = ["EvaluateConfig", "EvaluationReport", "RunConfig", "RunDirectory", "TrainConfig", "Trainer", "load_config"]
