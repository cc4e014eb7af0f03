"""Run configuration: the YAML layout of a run, its validation, and ``--set`` overrides.

A run config has five sections, each optional but ``family``::

    family:   compositional-dag          # a card name or path, or {name: ..., <card overrides>}
    model:    {algorithm: maml, ...}     # GraphMetaLearner arguments
    train:    {steps: 2000, ...}         # Trainer arguments, see TrainConfig
    evaluate: {num_tasks: 200, ...}      # Trainer.evaluate arguments, see EvaluateConfig
    online:   {tasks: 300, ...}          # with train.mode: online, see OnlineConfig
    tune:     {space: {...}, ...}        # graphmeta tune: a hyperparameter search, see TuneConfig

Every section is checked by :mod:`graphmeta.validation` against the signature it configures:
``train``, ``evaluate`` and ``online`` against the dataclasses below, ``model`` against
:class:`~graphmeta.GraphMetaLearner`'s constructor, ``family`` against the constructor of the
card's family. An unknown key is a :class:`ConfigError` naming it and the closest valid key; a
wrong type or range names the key path, what it needs and what it got
(``train.outer_lr must be a number >= 0, got -1 (int)``). Files are read with
:func:`~graphmeta.validation.load_yaml`, which refuses a repeated key. The ``tune:`` search space
is checked the same way: every value it can draw goes through the schema of the key it sets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar

import torch

from ..errors import CheckpointError, ConfigError, check_keys, closest
from ..model import GraphMetaLearner
from ..validation import (
    Ge,
    Gt,
    NonNegativeFloat,
    NonNegativeInt,
    OneOf,
    PositiveFloat,
    PositiveInt,
    check_arguments,
    checked,
    defaults,
    load_yaml,
    parameters,
)
from .buffer import BUFFER_POLICIES
from .distributed import BACKENDS
from .episode_sampler import Family, Shots
from .run_dir import RunDirectory, as_written
from .schedules import SCHEDULES

MODES = ("batch", "online")
SPLITS = ("train", "val", "test")
NONFINITE_POLICIES = ("stop", "skip")

Section = TypeVar("Section", bound="CheckedSection")


class CheckedSection:
    """Base of the section dataclasses: built from a mapping, checked against the fields' types."""

    @classmethod
    def from_dict(cls: type[Section], values: Mapping[str, Any] | None = None, where: str = "") -> Section:
        """The section of ``values``; ``where`` (``"train"``) names its keys in messages."""
        where = where or cls.__name__
        return cls(**check_arguments(cls, _mapping(values, where), where))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self: Section, **changes: Any) -> Section:
        """A copy with ``changes`` applied, checked like ``from_dict``."""
        return type(self).from_dict({**self.to_dict(), **changes})

    @classmethod
    def from_given(cls: type[Section], section: Section | None, keywords: Mapping[str, Any], where: str,
                   defaults: Mapping[str, Any] | None = None) -> Section:
        """The section a learner was given: ``section`` itself, typed (then no ``keywords``), or the
        section of ``keywords`` over ``defaults``; ``where`` names it in messages."""
        if section is None:
            return cls.from_dict({**(defaults or {}), **keywords}, where)
        if not isinstance(section, cls):
            raise ConfigError(f"{where} must be a {cls.__name__}, got {type(section).__name__}: pass a "
                              f"{cls.__name__} or its keys as keyword arguments")
        if keywords:
            raise ConfigError(f"{where} was given as a {cls.__name__} and as the keywords {', '.join(keywords)}: "
                              f"give one (change a {cls.__name__} with its .replace({next(iter(keywords))}=...))")
        return section


@checked(moved={key: f"the range of learned inner rates is the model's now: model.{key} "
                     f"(GraphMetaLearner(..., {key}=...))" for key in ("min_rate", "max_rate")})
@dataclass(frozen=True)
class TrainConfig(CheckedSection):
    """The ``train:`` section: the arguments of :class:`~graphmeta.train.Trainer`.

    Args:
        mode: ``batch`` (episodic, :class:`~graphmeta.train.Trainer`) or ``online``
            (:class:`~graphmeta.train.OnlineMetaLearner`, on a stream of ``online.tasks`` tasks;
            ``steps``, ``val_every``, ``val_tasks``, ``early_stopping_patience`` and ``log_every``
            do not apply there, and ``checkpoint_every`` counts tasks).
        steps: outer (meta-)optimizer steps.
        meta_batch_size: tasks per meta-batch.
        shots, query_shots: support and query examples per task; ``shots`` may be a range
            ``[low, high]`` (batch mode): each task then draws its support size log-uniformly
            from it (:mod:`.episode_sampler`), so one model serves every size in the range.
        outer_lr: Adam learning rate of the meta-parameters.
        rate_lr: Adam learning rate of the learned inner rates (Meta-SGD's and MAML++'s
            ``rate_scales``, ``rate_scales`` with ``learn_inner_lr``), their own parameter group
            (``null``: ``outer_lr``; a rate is ``inner_lr`` times its scale, so Adam moves it by about
            ``rate_lr`` of its initial size per step). Follows the schedule like ``outer_lr``. The
            range of the rates is the model's (``model.min_rate``, ``model.max_rate``).
        schedule, warmup_steps, final_lr_ratio: learning-rate schedule (see :mod:`.schedules`):
            ``exponential`` and ``cosine`` end at ``final_lr_ratio * outer_lr``; the exponential
            schedule's decay per step is ``final_lr_ratio ** (1 / (steps - warmup_steps - 1))``.
        grad_clip: clip the total gradient norm to this value (``null``: no clipping).
        val_every: validate every this many steps, on ``val_tasks`` fixed validation tasks.
        early_stopping_patience: stop after this many validations without a new best (``null``: never).
        checkpoint_every: write ``checkpoints/last.pt`` every this many steps (and at the end).
        log_every: append the mean training metrics of this many steps to ``metrics.jsonl``.
        seed: seeds the model (when built from a config), the task stream and every RNG.
        run_dir, name: the run lives in ``run_dir/name`` (``name`` defaults to a timestamp).
        device: move the model there (``null``: where it is); checked to exist (:mod:`.device`).
        backend: the torch.distributed backend of a run on several processes (torchrun): ``auto`` is
            NCCL when ``device`` is a GPU, gloo otherwise (see :mod:`.distributed`).
        threads: torch's intra-op threads while the run trains and evaluates; ``auto``: the cores
            idle now. One thread by default: graphmeta's many small batched ops gain little from
            more, a machine shared with other jobs can make threads wait a hundredfold, and a
            fixed count keeps resumed runs bit-identical (see :mod:`.device`).
        compile: run the meta-step through ``torch.compile`` (``model.compile()``): ``true``, ``false``, or
            ``auto``, which times eager and compiled steps in a long run and keeps the faster (see
            :mod:`.compilation`).
        progress: show a progress bar.
        on_nonfinite: on a non-finite loss or gradient, ``stop`` with a TrainingError or ``skip`` the step.
    """

    mode: Annotated[str, OneOf(MODES)] = "batch"
    steps: NonNegativeInt = 1000
    meta_batch_size: PositiveInt = 16
    shots: Shots = 5
    query_shots: PositiveInt = 15
    outer_lr: NonNegativeFloat = 1e-3
    rate_lr: NonNegativeFloat | None = None
    schedule: Annotated[str, OneOf(SCHEDULES)] = "constant"
    warmup_steps: NonNegativeInt = 0
    final_lr_ratio: NonNegativeFloat = 0.01
    grad_clip: NonNegativeFloat | None = None
    val_every: PositiveInt = 100
    val_tasks: PositiveInt = 64
    early_stopping_patience: PositiveInt | None = None
    checkpoint_every: PositiveInt = 100
    log_every: PositiveInt = 10
    seed: NonNegativeInt = 0
    run_dir: str = "runs"
    name: str | None = None
    device: str | None = None
    backend: Annotated[str, OneOf(BACKENDS)] = "auto"
    threads: PositiveInt | Annotated[str, OneOf(("auto",))] = 1
    compile: bool | Annotated[str, OneOf(("auto",))] = "auto"
    progress: bool = True
    on_nonfinite: Annotated[str, OneOf(NONFINITE_POLICIES)] = "stop"
    # experiment trackers besides metrics.jsonl (graphmeta.train.loggers); null: TensorBoard when installed
    loggers: tuple[Annotated[str, OneOf(("tensorboard", "mlflow"))], ...] | None = None

    def __post_init__(self) -> None:
        if self.mode == "online" and not isinstance(self.shots, int):
            raise ConfigError(f"train.shots is the range {list(self.shots)}, which batch mode trains on; online mode "
                              "keeps every arriving task at one support size: give train.shots as one count")
        if self.schedule == "exponential" and self.final_lr_ratio == 0:
            raise ConfigError("train.final_lr_ratio must be above 0 with the exponential schedule, which multiplies "
                              "the rate by final_lr_ratio ** (1 / (steps - warmup_steps - 1)) every step")


@checked
@dataclass(frozen=True)
class EvaluateConfig(CheckedSection):
    """The ``evaluate:`` section: the arguments of :meth:`~graphmeta.train.Trainer.evaluate`.

    Args:
        split: which tasks (``train``, ``val`` or ``test``); always the same tasks for a seed.
        num_tasks: how many tasks; confidence intervals are over tasks (``null``: every task of
            the split where the family holds a fixed set of them, a table, whose tasks then also
            give every row past their support as query; else 100).
        adapt_steps: inner steps at test time (``null``: the model's ``inner_steps``).
        shots: support examples per task (``null``: ``train.shots``): a count, or a range
            ``[low, high]`` spread evenly over the tasks. The same tasks at every size, so a
            model trained on one size (or range) is measured at another.
        scratch_steps, scratch_lr: Adam steps and rate of the from-scratch baseline (learners
            trained on each task's support set alone); ``null`` (the default): chosen on the
            validation tasks (see :mod:`graphmeta.train.evaluation`).
        ablation: with message passing on, also train (once, in ``RUN/ablation``) and evaluate
            the same configuration with message passing off.
        monolithic: with latent subtasks, also train (once, in ``RUN/monolithic``) and evaluate one
            MLP from every input to the observed sinks, with the same configuration.
        supervised: with latent subtasks whose family can label them (``family.supervised()``), also
            train (once, in ``RUN/supervised``) and evaluate the graph with them labelled, a reference.
        tasks_per_batch: tasks adapted together (bounds memory).
    """

    split: Annotated[str, OneOf(SPLITS)] = "test"
    num_tasks: Annotated[int, Ge(2)] | None = None
    adapt_steps: NonNegativeInt | None = None
    shots: Shots | None = None
    scratch_steps: NonNegativeInt | None = None
    scratch_lr: NonNegativeFloat | None = None
    ablation: bool = True
    monolithic: bool = True
    supervised: bool = True
    tasks_per_batch: PositiveInt = 64


@checked
@dataclass(frozen=True)
class OnlineConfig(CheckedSection):
    """The ``online:`` section, read when ``train.mode`` is ``online``: the arguments of
    :class:`~graphmeta.train.OnlineMetaLearner` beyond the ``train:`` keys.

    Args:
        tasks: length of the task stream.
        updates_per_task: meta-updates ``M`` after each arriving task, each on a meta-batch of
            ``train.meta_batch_size`` tasks drawn from the buffer (more learn faster early in the
            stream but fit the buffer's tasks more closely later; 1 did best in benchmarks/online.py).
        buffer_size: the most tasks the buffer holds.
        buffer_policy: which tasks it keeps: ``reservoir`` (a uniform sample of every task so
            far) or ``fifo`` (the latest); see :mod:`graphmeta.train.buffer`.
        loss_threshold: the query loss an arriving task must reach for ``shots_to_threshold``,
            the fewest support examples that reach it (``null``: not measured).
    """

    tasks: PositiveInt = 300
    updates_per_task: NonNegativeInt = 1
    buffer_size: PositiveInt = 100
    buffer_policy: Annotated[str, OneOf(BUFFER_POLICIES)] = "reservoir"
    loss_threshold: NonNegativeFloat | None = None


STRATEGIES = ("fixed", "random", "tpe", "grid")
PRUNERS = ("none", "median", "successive_halving", "wilcoxon")
#: What a study can score on the validation tasks, with the direction that improves it.
OBJECTIVES = {"loss": "minimize", "accuracy": "maximize"}
DIRECTIONS = ("minimize", "maximize")
#: The sections a search may set, and the keys of them it may not (with the reason).
SEARCHABLE_SECTIONS = ("family", "model", "train")
UNSEARCHABLE = {"family.name": "a study tunes one task family",
                "train.seed": "tune.seeds sets the seeds of every trial",
                "train.run_dir": "every trial runs in the study's folder",
                "train.name": "every trial runs in the study's folder",
                "train.mode": "a study scores the validation curve of batch meta-training"}


@checked
@dataclass(frozen=True)
class SearchRange(CheckedSection):
    """A numeric dimension of ``tune.space``, ``{low: 0.001, high: 1.0, log: true}``: the values
    from ``low`` to ``high``, both included, drawn uniformly, uniformly in log space (``log``;
    then ``low > 0``), or from the grid ``low, low + step, ..., high`` (``step``). It holds
    integers when its key takes integers only (``model.inner_steps``), numbers otherwise.
    """

    low: int | float
    high: int | float
    log: bool = False
    step: Annotated[int | float, Gt(0)] | None = None

    @property
    def integer(self) -> bool:
        return isinstance(self.low, int)

    def grid(self) -> tuple[int | float, ...]:
        """The values of the ``grid`` strategy: every ``step`` (integers: every integer) from ``low`` to ``high``."""
        step = self.step if self.step is not None else 1
        values = (self.low + k * step for k in range(round((self.high - self.low) / step) + 1))
        return tuple(values) if self.integer else tuple(round(value, 12) for value in values)


@checked
@dataclass(frozen=True)
class TuneConfig(CheckedSection):
    """The ``tune:`` section: a hyperparameter search of ``graphmeta tune`` (:mod:`graphmeta.tune`)
    over the rest of the run config, which every trial starts from::

        tune:
          strategy: tpe
          n_trials: 40
          seeds: 3
          space:
            model.inner_lr: {low: 0.001, high: 1.0, log: true}
            model.algorithm: [maml, metasgd, mamlpp]
            train.schedule: [constant, exponential, cosine]
            train.final_lr_ratio: {low: 0.01, high: 1.0, log: true}
            model.message_rounds: {low: 1, high: 3}

    Args:
        space: ``{key path: dimension}`` over the ``family``, ``model`` and ``train`` keys; a
            dimension is a list of choices (``null``, booleans, numbers, strings) or a
            :class:`SearchRange`. A wrong key path, an empty range or a value its key refuses
            is a ConfigError naming it when the config is read, before any trial runs.
        strategy: ``tpe`` (Optuna's tree-structured Parzen estimator), ``random`` (uniform,
            seeded), ``grid`` (every combination of the choices and stepped ranges, in a seeded
            random order) or ``fixed`` (the settings of ``trials``, as given).
        trials: with ``fixed``, the settings to evaluate: ``{key path: value}`` each (``{}``: the
            config as it is).
        n_trials: trials to finish (completed or pruned) over every worker and every resume;
            ``grid`` and ``fixed`` stop earlier when their settings run out.
        timeout: a worker starts no new trial after this many seconds (``null``: no limit).
        seeds: runs per trial, with ``train.seed``, ``train.seed + 1``, ...; the trial's value
            is their mean, each seed's value and the 95% interval are kept with the trial.
        objective: ``loss`` (validation query loss after adaptation) or ``accuracy``, of each
            run's best validation (its kept checkpoint); ``null``: ``accuracy`` when every subtask
            classifies, ``loss`` otherwise.
        direction: ``minimize`` or ``maximize``; ``null``: the objective's own, which it must match.
        pruner: ``median`` or ``successive_halving`` stop a trial whose first seed's validation
            curve falls behind the other trials'; ``wilcoxon`` stops a trial between seeds, once
            its seeds are significantly worse than the best trial's same seeds (it needs 4 seeds
            or more at Optuna's ``p_threshold`` of 0.1); ``none``.
        pruner_options, sampler_options: keyword arguments of the Optuna pruner and sampler
            (e.g. ``{n_startup_trials: 5}``), checked against their signatures.
        sampler_seed: seeds the sampler (trial ``n`` draws from ``sampler_seed`` and ``n``, so
            the trials do not depend on which worker runs them).
        storage: an Optuna storage URL (``sqlite:///study.db``, ``postgresql://...``);
            ``null``: a journal file in the study's folder.
        study_name: the study and its folder ``train.run_dir/study_name`` (``null``: ``train.name``,
            else the config file's name).
    """

    space: Mapping[str, Any] = field(default_factory=dict)
    strategy: Annotated[str, OneOf(STRATEGIES)] = "tpe"
    trials: tuple[Mapping[str, Any], ...] = ()
    n_trials: PositiveInt = 20
    timeout: PositiveFloat | None = None
    seeds: PositiveInt = 1
    objective: Annotated[str, OneOf(OBJECTIVES)] | None = None
    direction: Annotated[str, OneOf(DIRECTIONS)] | None = None
    pruner: Annotated[str, OneOf(PRUNERS)] = "median"
    pruner_options: Mapping[str, Any] = field(default_factory=dict)
    sampler_options: Mapping[str, Any] = field(default_factory=dict)
    sampler_seed: NonNegativeInt = 0
    storage: str | None = None
    study_name: str | None = None


@dataclass(frozen=True)
class RunConfig:
    """A whole run: ``family`` (``{"name": card, **overrides}``), ``model`` (GraphMetaLearner
    arguments), ``train``, ``evaluate`` and ``online``; ``tune``, when given, searches over them."""

    family: dict[str, Any]
    model: dict[str, Any]
    train: TrainConfig
    evaluate: EvaluateConfig
    online: OnlineConfig = field(default_factory=OnlineConfig)
    tune: TuneConfig | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "") -> RunConfig:
        """Check and complete a config mapping; ``where`` (a file name) prefixes error messages."""
        prefix = f"{where}: " if where else ""
        if not isinstance(data, Mapping):
            raise ConfigError(f"{prefix}a run config must be a mapping with sections {', '.join(SECTIONS)}, "
                              f"got {type(data).__name__}")
        check_keys(data, SECTIONS, where or "the run config")
        if "family" not in data:
            raise ConfigError(f"{prefix}no 'family' section: name a dataset card, e.g. 'family: sinusoid'")
        sections = {name: f"{prefix}{name}" for name in SECTIONS}
        config = cls(family=_family_section(data["family"], sections["family"]),
                     model=_model_section(data.get("model"), sections["model"]),
                     train=TrainConfig.from_dict(data.get("train"), sections["train"]),
                     evaluate=EvaluateConfig.from_dict(data.get("evaluate"), sections["evaluate"]),
                     online=OnlineConfig.from_dict(data.get("online"), sections["online"]),
                     tune=None if data.get("tune") is None else TuneConfig.from_dict(data["tune"], sections["tune"]))
        if config.tune is not None:
            config.search_space(where)
        return config

    def to_dict(self) -> dict[str, Any]:
        return {"family": dict(self.family), "model": dict(self.model), "train": self.train.to_dict(),
                "evaluate": self.evaluate.to_dict(), "online": self.online.to_dict(),
                **({"tune": self.tune.to_dict()} if self.tune is not None else {})}

    def search_space(self, where: str = "") -> dict[str, SearchRange | tuple[Any, ...]]:
        """``{key path: dimension}`` of ``tune.space`` (choices as a tuple), after checking the whole
        ``tune:`` section against the rest of this config; ``where`` prefixes error messages.

        Every value a dimension can give goes through the schema of the key it sets, in a copy of
        this config: each choice, each end of a range (the schemas' bounds are intervals, so the
        values between pass too) and each setting of ``tune.trials``. A range holds numbers when
        its key takes a fractional value, integers otherwise.
        """
        if self.tune is None:
            raise ConfigError(f"{where or 'the run config'} has no tune: section to search")
        prefix = f"{where}: " if where else ""
        tune, base = self.tune, dataclasses.replace(self, tune=None)
        _check_strategy(tune, prefix)
        paths = _searchable_paths(self.family)
        for number, setting in enumerate(tune.trials):
            for path, value in _mapping(setting, f"{prefix}tune.trials[{number}]").items():
                _check_path(path, paths, f"{prefix}tune.trials[{number}]")
                _check_choice(base, path, value, f"{prefix}tune.trials[{number}].{path}")
        space = {}
        for path, spec in tune.space.items():
            _check_path(path, paths, f"{prefix}tune.space")
            space[path] = _dimension(base, path, spec, f"{prefix}tune.space.{path}")
            if tune.strategy == "grid" and isinstance(space[path], SearchRange) and not space[path].integer \
                    and space[path].step is None:
                raise ConfigError(f"{prefix}tune.space.{path}: the grid strategy needs a step for a range of "
                                  "numbers, e.g. {low: 0.1, high: 0.5, step: 0.1}, or a list of choices")
        return space

    def with_overrides(self, overrides: Iterable[str]) -> RunConfig:
        """Apply ``--set`` overrides ``section.key=value`` (or ``key=value`` where the key is in
        one section only); values are parsed as YAML, so ``steps=20`` is an integer."""
        return self.with_values({f"{section}.{key}": value for section, key, value in map(parse_override, overrides)})

    def with_values(self, values: Mapping[str, Any]) -> RunConfig:
        """A copy with ``{"section.key": value}`` set (the section is created if absent), checked
        like :meth:`from_dict`. A key path into a mapping-valued key sets one entry of it:
        ``tune.space.model.inner_lr`` is the entry ``model.inner_lr`` of ``tune.space``."""
        data = self.to_dict()
        for path, value in values.items():
            section, key = path.split(".", 1)
            data[section] = _with_key(data.get(section) or {}, key, value)
        return RunConfig.from_dict(data)


SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig))
#: Run-config keys that say where a run lives, how its processes talk and whether a progress bar
#: shows, not what it computes: a resumed run may differ in them without ``allow_changes``.
FREE_KEYS = ("train.run_dir", "train.name", "train.progress", "train.backend")
#: The checked run-config sections, completed with their defaults before two configs are compared.
CHECKED_SECTIONS = {"train": TrainConfig, "evaluate": EvaluateConfig, "online": OnlineConfig}


def config_changes(saved: Mapping[str, Any], current: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
    """``{"section.key": (saved value, current value)}`` for every key in which two run configs
    differ, except :data:`FREE_KEYS`; the checked sections are completed with their defaults first,
    so a key added to graphmeta since ``saved`` was written is no change."""
    old, new = (_flat(as_written(_completed(config))) for config in (saved, current))
    return {key: (old.get(key), new.get(key)) for key in sorted(old.keys() | new.keys())
            if key not in FREE_KEYS and old.get(key) != new.get(key)}


def _completed(config: Mapping[str, Any]) -> dict[str, Any]:
    return {name: CHECKED_SECTIONS[name].from_dict(section or {}, name).to_dict() if name in CHECKED_SECTIONS
            else section for name, section in config.items()}


def _flat(config: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{name}.{key}": value for name, section in config.items() for key, value in (section or {}).items()}


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """Read a run config from a YAML file and apply ``--set`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    return RunConfig.from_dict(load_yaml(path) or {}, where=str(path)).with_overrides(overrides)


def load_run_config(path: str | Path) -> RunConfig:
    """The config of the run directory ``path`` (its ``config.yaml``), with ``train.run_dir``
    and ``train.name`` pointing at ``path``, so a run that was moved or renamed still loads."""
    run = RunDirectory(path)
    if not run.config.is_file():
        raise CheckpointError(f"{run.path} is not a run directory: it has no config.yaml")
    config = RunConfig.from_dict(load_yaml(run.config), where=str(run.config))
    train = config.train.replace(run_dir=str(run.path.parent), name=run.path.name)
    return dataclasses.replace(config, train=train)


def load_family_and_model(config: RunConfig) -> tuple[Family, GraphMetaLearner]:
    """The task family of ``config.family`` and a new model for its graph from ``config.model``,
    initialised from ``train.seed``."""
    from ..families import FamilySection

    family = FamilySection.read(config.family).build()
    torch.manual_seed(config.train.seed)
    return family, GraphMetaLearner(family.graph, **config.model)


def family_spec(family: Family) -> dict[str, Any]:
    """The ``family:`` section that rebuilds ``family``: its card and the options that differ from
    the card's; for a family built by hand, its class as ``module:Class`` and its options (a table
    family: its options alone, the form of :class:`~graphmeta.families.FamilySection`)."""
    from ..families import DataFrameFamily

    config = dict(getattr(family, "config", None) or {})
    card = getattr(family, "card", None)
    if isinstance(family, DataFrameFamily):
        return config
    if card is None:
        return {"name": f"{type(family).__module__}:{type(family).__qualname__}", **config}
    return {"name": card.name, **{key: value for key, value in config.items() if card.parameters.get(key) != value}}


def parse_override(text: str) -> tuple[str, str, Any]:
    """``(section, key, value)`` of one ``--set`` override; the key itself is checked with its section."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} must look like section.key=value, e.g. train.steps=100")
    path, raw = text.split("=", 1)
    try:
        value = load_yaml(raw, f"--set {text}")
    except ConfigError:  # not YAML: the text itself, e.g. a device name with a colon
        value = raw
    if "." in path:
        section, key = path.split(".", 1)
        check_keys([section], SECTIONS, f"--set {text}")
        return section, key, value
    keys = {"model": model_defaults(), "train": parameters(TrainConfig), "evaluate": parameters(EvaluateConfig),
            "online": parameters(OnlineConfig)}
    owners = [section for section, valid in keys.items() if path in valid]
    if len(owners) > 1:
        raise ConfigError(f"--set {text} is ambiguous: write {' or '.join(f'{s}.{path}' for s in owners)}")
    if not owners:
        valid = [f"{section}.{key}" for section, names in keys.items() for key in names]
        raise ConfigError(f"unknown key {path!r} in --set {text}{closest(path, valid)}")
    return owners[0], path, value


def _with_key(section: Mapping[str, Any], key: str, value: Any) -> dict[str, Any]:
    """``section`` with ``key`` set to ``value``; ``name.entry`` where ``name`` holds a mapping (or
    nothing yet) sets the entry ``entry`` of that mapping, the rest of it kept."""
    name, _, entry = key.partition(".")
    held = section.get(name)
    if entry and (held is None or isinstance(held, Mapping)):
        return {**section, name: {**(held or {}), entry: value}}
    return {**section, key: value}


def model_defaults() -> dict[str, Any]:
    """The ``model:`` keys and their defaults: the parameters of :class:`GraphMetaLearner` that
    have a default, read off its signature."""
    return defaults(GraphMetaLearner)


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {value!r} ({type(value).__name__})")
    return value


def _check_strategy(tune: TuneConfig, prefix: str) -> None:
    """The ``tune:`` keys that must agree with each other: strategy and settings, objective and direction."""
    if tune.strategy == "fixed" and (tune.space or not tune.trials):
        raise ConfigError(f"{prefix}tune: strategy fixed evaluates the settings listed in tune.trials "
                          "(e.g. trials: [{model.inner_lr: 0.1}, {model.inner_lr: 0.5}]) and no tune.space")
    if tune.strategy != "fixed" and (tune.trials or not tune.space):
        raise ConfigError(f"{prefix}tune: strategy {tune.strategy} searches tune.space (e.g. space: "
                          "{model.inner_lr: {low: 0.001, high: 1.0, log: true}}); tune.trials is for strategy fixed")
    if tune.objective is not None and tune.direction not in (None, OBJECTIVES[tune.objective]):
        raise ConfigError(f"{prefix}tune.direction is {tune.direction}, but the objective {tune.objective} is to "
                          f"{OBJECTIVES[tune.objective]}: leave direction out")


def _searchable_paths(family: Mapping[str, Any]) -> list[str]:
    """The key paths a search may set: the options of the ``family:`` section's family, the model and train keys."""
    from ..families import FamilySection

    keys = {"family": parameters(FamilySection.read(family).constructor), "model": model_defaults(),
            "train": parameters(TrainConfig)}
    return [f"{section}.{key}" for section in SEARCHABLE_SECTIONS for key in keys[section]
            if f"{section}.{key}" not in UNSEARCHABLE]


def _check_path(path: Any, paths: list[str], where: str) -> None:
    if path in UNSEARCHABLE:
        raise ConfigError(f"{where}: {path} cannot be searched: {UNSEARCHABLE[path]}")
    check_keys([path], paths, where, kind="key path")


def _dimension(base: RunConfig, path: str, spec: Any, where: str) -> SearchRange | tuple[Any, ...]:
    """The dimension ``spec`` of ``path``, checked (see :meth:`RunConfig.search_space`)."""
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError(f"{where} is empty: list one choice or more")
        for choice in spec:
            _check_choice(base, path, choice, f"{where} (choice {choice!r})")
        return tuple(spec)
    example = "{low: 0.001, high: 1.0, log: true}"
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where} must be a list of choices or a range such as {example}, got {spec!r}")
    check_keys(spec, parameters(SearchRange), where)
    if not {"low", "high"} <= spec.keys():
        raise ConfigError(f"{where}: a range needs low and high, such as {example}, got {dict(spec)}")
    dimension = SearchRange.from_dict(spec, where)
    low, high, step = dimension.low, dimension.high, dimension.step
    if low > high:
        raise ConfigError(f"{where} is empty: low {low} is above high {high}")
    if dimension.log and (low <= 0 or step is not None):
        raise ConfigError(f"{where}: a log range needs low > 0 and no step, got low {low}, step {step}")
    if step is not None and abs(round((high - low) / step) * step - (high - low)) > 1e-9 * max(1.0, abs(high - low)):
        raise ConfigError(f"{where}: high - low = {high - low:g} must be a multiple of step {step}")
    for end in ("low", "high"):
        _check_value(base, path, getattr(dimension, end), f"{where} ({end})")
    if _accepts(base, path, low + 0.5):
        return dimension.replace(low=float(low), high=float(high), step=None if step is None else float(step))
    if not isinstance(step, (int, type(None))):
        raise ConfigError(f"{where}: {path} takes integers, so step must be one, got {step!r}")
    return dimension


def _check_choice(base: RunConfig, path: str, value: Any, where: str) -> None:
    if not (value is None or isinstance(value, (bool, int, float, str))):
        raise ConfigError(f"{where}: a searched value must be null, a boolean, a number or a string, got {value!r}")
    _check_value(base, path, value, where)


def _check_value(base: RunConfig, path: str, value: Any, where: str) -> None:
    """``value`` for ``path`` passes the schema of its section (``base`` with it set), else a ConfigError."""
    try:
        base.with_values({path: value})
    except ConfigError as error:
        raise ConfigError(f"{where}: {error}") from None


def _accepts(base: RunConfig, path: str, value: Any) -> bool:
    try:
        base.with_values({path: value})
    except ConfigError:
        return False
    return True


def _family_section(value: Any, where: str) -> dict[str, Any]:
    """The section as a run records it (:class:`~graphmeta.families.FamilySection`: a card and its
    overrides, a table, or ``module:Class`` and its arguments), checked against the family's constructor."""
    from ..families import FamilySection

    family = FamilySection.read(value, where)
    family.check(where)
    return family.section  # as written (a YAML list stays a list): the family converts when it is built


def _model_section(value: Any, where: str) -> dict[str, Any]:
    """The ``model:`` mapping checked against :class:`GraphMetaLearner`'s keyword parameters."""
    required = set(parameters(GraphMetaLearner)) - set(model_defaults())
    return check_arguments(GraphMetaLearner, _mapping(value, where), where, exclude=required)
