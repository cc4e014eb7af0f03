"""Run configuration: the YAML layout of a run, its validation, and ``--set`` overrides.

A run config has five sections, each optional but ``family``::

    family:   compositional-dag          # a card name or path, or {name: ..., <card overrides>}
    model:    {algorithm: maml, ...}     # GraphMetaLearner arguments
    train:    {steps: 2000, ...}         # Trainer arguments, see TrainConfig
    evaluate: {num_tasks: 200, ...}      # Trainer.evaluate arguments, see EvaluateConfig
    online:   {tasks: 300, ...}          # with train.mode: online, see OnlineConfig

Every section is checked by :mod:`graphmeta.validation` against the signature it configures:
``train``, ``evaluate`` and ``online`` against the dataclasses below, ``model`` against
:class:`~graphmeta.GraphMetaLearner`'s constructor, ``family`` against the constructor of the
card's family. An unknown key is a :class:`ConfigError` naming it and the closest valid key; a
wrong type or range names the key path, what it needs and what it got
(``train.outer_lr must be a number >= 0, got -1 (int)``). Files are read with
:func:`~graphmeta.validation.load_yaml`, which refuses a repeated key.
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
from ..validation import (Ge, NonNegativeFloat, NonNegativeInt, OneOf, PositiveInt, check_arguments, checked,
                          defaults, load_yaml, parameters)
from .buffer import BUFFER_POLICIES
from .run_dir import RunDirectory
from .sampler import Family
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


@checked
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
        shots, query_shots: support and query examples per task.
        outer_lr: Adam learning rate of the meta-parameters.
        schedule, warmup_steps, final_lr_ratio: learning-rate schedule (see :mod:`.schedules`).
        grad_clip: clip the total gradient norm to this value (``null``: no clipping).
        val_every: validate every this many steps, on ``val_tasks`` fixed validation tasks.
        early_stopping_patience: stop after this many validations without a new best (``null``: never).
        checkpoint_every: write ``checkpoints/last.pt`` every this many steps (and at the end).
        log_every: append the mean training metrics of this many steps to ``metrics.jsonl``.
        seed: seeds the model (when built from a config), the task stream and every RNG.
        run_dir, name: the run lives in ``run_dir/name`` (``name`` defaults to a timestamp).
        device: move the model there (``null``: where it is); checked to exist (:mod:`.device`).
        threads: torch's intra-op threads while the run trains and evaluates; ``auto``: the cores
            idle now. One thread by default: graphmeta's many small batched ops gain little from
            more, a machine shared with other jobs can make threads wait a hundredfold, and a
            fixed count keeps resumed runs bit-identical (see :mod:`.device`).
        progress: show a progress bar.
        on_nonfinite: on a non-finite loss or gradient, ``stop`` with a TrainingError or ``skip`` the step.
    """

    mode: Annotated[str, OneOf(MODES)] = "batch"
    steps: NonNegativeInt = 1000
    meta_batch_size: PositiveInt = 16
    shots: PositiveInt = 5
    query_shots: PositiveInt = 15
    outer_lr: NonNegativeFloat = 1e-3
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
    threads: PositiveInt | Annotated[str, OneOf(("auto",))] = 1
    progress: bool = True
    on_nonfinite: Annotated[str, OneOf(NONFINITE_POLICIES)] = "stop"


@checked
@dataclass(frozen=True)
class EvaluateConfig(CheckedSection):
    """The ``evaluate:`` section: the arguments of :meth:`~graphmeta.train.Trainer.evaluate`.

    Args:
        split: which tasks (``train``, ``val`` or ``test``); always the same tasks for a seed.
        num_tasks: how many tasks; confidence intervals are over tasks.
        adapt_steps: inner steps at test time (``null``: the model's ``inner_steps``).
        scratch_steps, scratch_lr: Adam steps and rate of the from-scratch baseline.
        ablation: with message passing on, also train (once, in ``RUN/ablation``) and evaluate
            the same configuration with message passing off.
        tasks_per_batch: tasks adapted together (bounds memory).
    """

    split: Annotated[str, OneOf(SPLITS)] = "test"
    num_tasks: Annotated[int, Ge(2)] = 100
    adapt_steps: NonNegativeInt | None = None
    scratch_steps: NonNegativeInt = 100
    scratch_lr: NonNegativeFloat = 0.01
    ablation: bool = True
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


@dataclass(frozen=True)
class RunConfig:
    """A whole run: ``family`` (``{"name": card, **overrides}``), ``model`` (GraphMetaLearner
    arguments), ``train``, ``evaluate`` and ``online``."""

    family: dict[str, Any]
    model: dict[str, Any]
    train: TrainConfig
    evaluate: EvaluateConfig
    online: OnlineConfig = field(default_factory=OnlineConfig)

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
        return cls(family=_family_section(data["family"], sections["family"]),
                   model=_model_section(data.get("model"), sections["model"]),
                   train=TrainConfig.from_dict(data.get("train"), sections["train"]),
                   evaluate=EvaluateConfig.from_dict(data.get("evaluate"), sections["evaluate"]),
                   online=OnlineConfig.from_dict(data.get("online"), sections["online"]))

    def to_dict(self) -> dict[str, Any]:
        return {"family": dict(self.family), "model": dict(self.model), "train": self.train.to_dict(),
                "evaluate": self.evaluate.to_dict(), "online": self.online.to_dict()}

    def with_overrides(self, overrides: Iterable[str]) -> RunConfig:
        """Apply ``--set`` overrides ``section.key=value`` (or ``key=value`` where the key is in
        one section only); values are parsed as YAML, so ``steps=20`` is an integer."""
        data = self.to_dict()
        for text in overrides:
            section, key, value = parse_override(text)
            data[section][key] = value
        return RunConfig.from_dict(data)


SECTIONS = tuple(f.name for f in dataclasses.fields(RunConfig))


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
    from ..families import load_family

    options = dict(config.family)
    family = load_family(options.pop("name"), **options)
    torch.manual_seed(config.train.seed)
    return family, GraphMetaLearner(family.graph, **config.model)


def family_spec(family: Family) -> dict[str, Any]:
    """The ``family:`` section that rebuilds ``family``: its card and the options that differ from
    the card's (or, for a family built by hand, its class name and options, for the record)."""
    config = dict(getattr(family, "config", None) or {})
    card = getattr(family, "card", None)
    if card is None:
        return {"name": type(family).__name__, **config}
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


def _family_section(value: Any, where: str) -> dict[str, Any]:
    """``{"name": card, **overrides}``, the overrides checked against the card's family constructor."""
    from ..families import FAMILIES, load_card

    section = {"name": value} if isinstance(value, str) else dict(_mapping(value, where))
    overrides = dict(section)
    name = overrides.pop("name", None)
    if not isinstance(name, str):
        raise ConfigError(f"{where} needs a 'name': the dataset card (e.g. compositional-dag) or a card file")
    check_arguments(FAMILIES[load_card(name).family], overrides, where)
    return section  # as written (a YAML list stays a list): the family converts when it is built


def _model_section(value: Any, where: str) -> dict[str, Any]:
    """The ``model:`` mapping checked against :class:`GraphMetaLearner`'s keyword parameters."""
    required = set(parameters(GraphMetaLearner)) - set(model_defaults())
    return check_arguments(GraphMetaLearner, _mapping(value, where), where, exclude=required)
