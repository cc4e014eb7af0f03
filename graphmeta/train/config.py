"""Run configuration: the YAML layout of a run, its validation, and ``--set`` overrides.

A run config has five sections, each optional but ``family``::

    family:   compositional-dag          # a card name or path, or {name: ..., <card overrides>}
    model:    {algorithm: maml, ...}     # GraphMetaLearner arguments
    train:    {steps: 2000, ...}         # Trainer arguments, see TrainConfig
    evaluate: {num_tasks: 200, ...}      # Trainer.evaluate arguments, see EvaluateConfig
    online:   {tasks: 300, ...}          # with train.mode: online, see OnlineConfig

Files are read with ``yaml.safe_load``. An unknown key is a :class:`ConfigError` naming it and
the closest valid key; a wrong type names the key and the type it needs.
"""

from __future__ import annotations

import dataclasses
import inspect
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import torch
import yaml

from ..errors import CheckpointError, ConfigError, check_keys, closest
from ..model import OPTIONS as MODEL_OPTIONS
from ..model import GraphMetaLearner
from .buffer import BUFFER_POLICIES
from .run_dir import RunDirectory
from .sampler import Family
from .schedules import SCHEDULES

SECTIONS = ("family", "model", "train", "evaluate", "online")
MODES = ("batch", "online")
SPLITS = ("train", "val", "test")
NONFINITE_POLICIES = ("stop", "skip")

Section = TypeVar("Section", bound="_Checked")


def option(default: Any, minimum: float | None = None, choices: tuple[str, ...] | None = None) -> Any:
    """A config field with its default and the values it accepts (checked by ``from_dict``)."""
    return field(default=default, metadata={"minimum": minimum, "choices": choices})


class _Checked:
    """Mixin of the config dataclasses: build from a mapping, checking keys, types and ranges."""

    @classmethod
    def from_dict(cls: type[Section], values: Mapping[str, Any] | None = None, where: str = "") -> Section:
        values = dict(values or {})
        where = where or cls.__name__
        fields = {f.name: f for f in dataclasses.fields(cls)}
        check_keys(values, fields, where)
        hints = typing.get_type_hints(cls)
        checked = {}
        for name, value in values.items():
            metadata = fields[name].metadata
            checked[name] = check_value(f"{where}.{name}", value, hints[name], metadata.get("choices"),
                                        metadata.get("minimum"))
        return cls(**checked)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self: Section, **changes: Any) -> Section:
        """A copy with ``changes`` applied, checked like ``from_dict``."""
        return type(self).from_dict({**self.to_dict(), **changes})


@dataclass(frozen=True)
class TrainConfig(_Checked):
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
        device: move the model there (``null``: where it is).
        progress: show a progress bar.
        on_nonfinite: on a non-finite loss or gradient, ``stop`` with a TrainingError or ``skip`` the step.
    """

    mode: str = option("batch", choices=MODES)
    steps: int = option(1000, minimum=0)
    meta_batch_size: int = option(16, minimum=1)
    shots: int = option(5, minimum=1)
    query_shots: int = option(15, minimum=1)
    outer_lr: float = option(1e-3, minimum=0)
    schedule: str = option("constant", choices=SCHEDULES)
    warmup_steps: int = option(0, minimum=0)
    final_lr_ratio: float = option(0.01, minimum=0)
    grad_clip: float | None = option(None, minimum=0)
    val_every: int = option(100, minimum=1)
    val_tasks: int = option(64, minimum=1)
    early_stopping_patience: int | None = option(None, minimum=1)
    checkpoint_every: int = option(100, minimum=1)
    log_every: int = option(10, minimum=1)
    seed: int = option(0, minimum=0)
    run_dir: str = option("runs")
    name: str | None = option(None)
    device: str | None = option(None)
    progress: bool = option(True)
    on_nonfinite: str = option("stop", choices=NONFINITE_POLICIES)


@dataclass(frozen=True)
class EvaluateConfig(_Checked):
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

    split: str = option("test", choices=SPLITS)
    num_tasks: int = option(100, minimum=2)
    adapt_steps: int | None = option(None, minimum=0)
    scratch_steps: int = option(100, minimum=0)
    scratch_lr: float = option(0.01, minimum=0)
    ablation: bool = option(True)
    tasks_per_batch: int = option(64, minimum=1)


@dataclass(frozen=True)
class OnlineConfig(_Checked):
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

    tasks: int = option(300, minimum=1)
    updates_per_task: int = option(1, minimum=0)
    buffer_size: int = option(100, minimum=1)
    buffer_policy: str = option("reservoir", choices=BUFFER_POLICIES)
    loss_threshold: float | None = option(None, minimum=0)


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
                   train=TrainConfig.from_dict(_mapping(data.get("train"), sections["train"]), sections["train"]),
                   evaluate=EvaluateConfig.from_dict(_mapping(data.get("evaluate"), sections["evaluate"]),
                                                     sections["evaluate"]),
                   online=OnlineConfig.from_dict(_mapping(data.get("online"), sections["online"]), sections["online"]))

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


def load_config(path: str | Path, overrides: Iterable[str] = ()) -> RunConfig:
    """Read a run config from a YAML file and apply ``--set`` overrides."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"no config file at {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise ConfigError(f"{path} is not valid YAML: {error}") from None
    return RunConfig.from_dict(data or {}, where=str(path)).with_overrides(overrides)


def load_run_config(path: str | Path) -> RunConfig:
    """The config of the run directory ``path`` (its ``config.yaml``), with ``train.run_dir``
    and ``train.name`` pointing at ``path``, so a run that was moved or renamed still loads."""
    run = RunDirectory(path)
    if not run.config.is_file():
        raise CheckpointError(f"{run.path} is not a run directory: it has no config.yaml")
    config = RunConfig.from_dict(yaml.safe_load(run.config.read_text()), where=str(run.config))
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
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        value = raw
    if "." in path:
        section, key = path.split(".", 1)
        check_keys([section], SECTIONS, f"--set {text}")
        return section, key, value
    keys = {"model": model_defaults(), "train": _field_names(TrainConfig), "evaluate": _field_names(EvaluateConfig),
            "online": _field_names(OnlineConfig)}
    owners = [section for section, valid in keys.items() if path in valid]
    if len(owners) > 1:
        raise ConfigError(f"--set {text} is ambiguous: write {' or '.join(f'{s}.{path}' for s in owners)}")
    if not owners:
        valid = [f"{section}.{key}" for section, names in keys.items() for key in names]
        raise ConfigError(f"unknown key {path!r} in --set {text}{closest(path, valid)}")
    return owners[0], path, value


def model_defaults() -> dict[str, Any]:
    """The keyword arguments of :class:`GraphMetaLearner` and their defaults (the ``model:`` keys)."""
    parameters = inspect.signature(GraphMetaLearner).parameters.values()
    defaults = {p.name: p.default for p in parameters if p.default is not inspect.Parameter.empty}
    return {**defaults, **MODEL_OPTIONS}


def check_value(key: str, value: Any, expected: Any, choices: tuple[str, ...] | None = None,
                minimum: float | None = None) -> Any:
    """``value`` checked against the type hint ``expected`` (``int``, ``float``, ``bool``,
    ``str``, or one of them ``| None``), ``choices`` and ``minimum``; ints pass as floats."""
    union = typing.get_origin(expected) in (typing.Union, types.UnionType)
    allowed = typing.get_args(expected) if union else (expected,)
    if value is None and type(None) in allowed:
        return None
    if float in allowed and isinstance(value, (int, float)) and not isinstance(value, bool):
        value = float(value)
    elif not any(isinstance(value, t) and not (t is int and isinstance(value, bool)) for t in allowed):
        shown = "null" if value is None else f"{value!r} ({type(value).__name__})"
        raise ConfigError(f"{key} must be {_describe(allowed)}, got {shown}")
    if choices is not None and value not in choices:
        raise ConfigError(f"{key} must be one of {', '.join(choices)}, got {value!r}{closest(str(value), choices)}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{key} must be >= {minimum:g}, got {value!r}")
    return value


def _describe(allowed: tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", bool: "true or false", str: "a string", type(None): "null"}
    return " or ".join(names.get(t, t.__name__) for t in allowed)


def _field_names(config: type) -> list[str]:
    return [f.name for f in dataclasses.fields(config)]


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where} must be a mapping of keys to values, got {value!r} ({type(value).__name__})")
    return value


def _family_section(value: Any, where: str) -> dict[str, Any]:
    if isinstance(value, str):
        return {"name": value}
    value = dict(_mapping(value, where))
    if not isinstance(value.get("name"), str):
        raise ConfigError(f"{where} needs a 'name': the dataset card (e.g. compositional-dag) or a card file")
    return value


def _model_section(value: Any, where: str) -> dict[str, Any]:
    value = dict(_mapping(value, where))
    defaults = model_defaults()
    check_keys(value, defaults, where)
    return {key: check_value(f"{where}.{key}", v, type(defaults[key])) for key, v in value.items()}
