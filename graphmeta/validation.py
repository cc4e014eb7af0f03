"""One validation system for every configuration graphmeta reads: YAML sections and Python keywords alike.

**The signature is the schema.** Whatever a user configures is the keyword parameters of one
function or class: a family's constructor, a learner spec, ``Subtask``, the ``train:`` section's
``TrainConfig``, ``GraphMetaLearner``. Their names are the valid keys, their defaults the
defaults, and their type hints the types, with ranges and choices as ``Annotated`` metadata::

    @checked
    class CompositionalFamily(TaskFamily):
        def __init__(self, structure: Annotated[str, OneOf(STRUCTURES)] = "dag",
                     num_nodes: Annotated[int, Ge(1)] = 16, noise: Annotated[float, Ge(0)] = 0.05): ...

Two entry points apply such a schema, so a YAML section and a Python call give the same error:

- ``@checked`` on a class or function checks every call: an unknown keyword is a
  :class:`~graphmeta.errors.ConfigError` naming it and the closest valid one (instead of
  Python's ``TypeError``), a wrong type or range names the key, the type it needs and the value
  it got (``CompositionalFamily.num_nodes must be an integer >= 1, got 0 (int)``), and the
  function receives the converted values (``1`` -> ``1.0`` for a float, a YAML list -> a tuple).
  ``@keywords_checked`` checks the names only, for a function that hands its arguments to a
  ``@checked`` one.
- ``check_arguments(target, mapping, where)`` checks a mapping (a YAML section, card
  overrides) against ``target``'s signature, naming keys by their path (``train.outer_lr``).

``load_yaml`` is the one YAML reader: safe (plain data only) and refusing duplicate keys, which
PyYAML would silently resolve to the last one.

**Why pydantic.** Type checking is delegated to pydantic v2 in strict mode: it already checks
nested types (``tuple[int, ...]``, ``Mapping[str, Any]``, unions, ``Optional``), the
``annotated_types`` constraints (``Ge``, ``Gt``, ``Le``, ``Lt``, ``MinLen``) and converters
(``BeforeValidator``), in compiled code, and is well kept; the scalar checker this replaces
handled ``int | None`` and little more, and growing it would re-implement pydantic's core.
Strict mode, because YAML's ``"100"``, ``1`` for ``true`` or ``2.0`` for an integer are mistakes
to report, not to coerce; an integer still passes as a float, a list as a tuple (YAML has no
tuples) and a numpy scalar as the Python number it holds. What graphmeta adds is small: the schema
comes from the signature (no second list of keys), unknown keys get a "did you mean", and every
message names the key path and the whole expected type in words, not pydantic's error codes. A
converter that raises a graphmeta error (an unknown learner name) keeps its own message.

This module imports nothing from graphmeta but :mod:`graphmeta.errors`, so every layer can use it.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, is_dataclass
from pathlib import Path
from typing import Annotated, Any, Union

import numpy as np
import yaml
from annotated_types import Ge, Gt, Le, Lt, MinLen
from pydantic import BeforeValidator, ConfigDict, Strict, TypeAdapter, ValidationError
from pydantic_core import core_schema
from typing_extensions import TypedDict

from .errors import ConfigError, GraphMetaError, check_keys, closest

__all__ = ["BeforeValidator", "Ge", "Gt", "Le", "Lt", "MinLen", "NonNegativeFloat", "NonNegativeInt", "OneOf",
           "Ordered", "PositiveFloat", "PositiveInt", "check_arguments", "checked", "defaults", "describe",
           "keywords_checked", "load_yaml", "parameters"]

Where = Union[str, Callable[[Mapping[str, Any]], str], None]  # noqa: UP007 (a runtime alias)

#: The ranges most settings need (counts, sizes, rates, scales).
PositiveInt = Annotated[int, Ge(1)]
NonNegativeInt = Annotated[int, Ge(0)]
PositiveFloat = Annotated[float, Gt(0)]
NonNegativeFloat = Annotated[float, Ge(0)]

_STRICT = ConfigDict(strict=True, arbitrary_types_allowed=True, allow_inf_nan=False)


@dataclass(frozen=True, init=False)
class OneOf:
    """``Annotated`` metadata: the value must be one of ``choices`` (e.g. a registry's names).

    ``Annotated[str, OneOf(SCHEDULES)]``; a wrong value's message lists the choices and the
    closest one.
    """

    choices: tuple[Any, ...]

    def __init__(self, choices: Iterable[Any]) -> None:
        object.__setattr__(self, "choices", tuple(choices))

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], Any]) -> Any:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, value: Any) -> Any:
        if value not in self.choices:
            raise ValueError(f"not one of {self.choices}")
        return value


@dataclass(frozen=True)
class Ordered:
    """``Annotated`` metadata of a pair: ``[low, high]`` with ``low <= high`` (a range).

    ``Annotated[tuple[PositiveInt, PositiveInt], Ordered()]``; the message of a pair out of order
    says ``low <= high``.
    """

    def __get_pydantic_core_schema__(self, source: Any, handler: Callable[[Any], Any]) -> Any:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def _check(self, value: Any) -> Any:
        if value[0] > value[1]:
            raise ValueError("not ordered low <= high")
        return value


# ----------------------------------------------------------------- schemas
@dataclass(frozen=True)
class _Schema:
    """The keyword parameters of one target: annotations, defaults and the pydantic checker."""

    annotations: dict[str, Any]
    defaults: dict[str, Any]
    takes_kwargs: bool  # so its keys cannot be listed
    adapter: TypeAdapter

    def check(self, values: Mapping[str, Any], where: str | Callable[[], str],
              error: type[GraphMetaError]) -> dict[str, Any]:
        """``values`` (keys already known) checked and converted; raises ``error`` on the first bad
        one. ``where`` may be a function giving the name, called only for a message."""
        plain = {key: _python_scalar(value) for key, value in values.items()}
        try:
            return dict(self.adapter.validate_python(plain))
        except ValidationError as failure:
            raise self._error(failure, plain, where() if callable(where) else where, error) from None

    def _error(self, failure: ValidationError, values: Mapping[str, Any], where: str,
               error: type[GraphMetaError]) -> GraphMetaError:
        problems = failure.errors()
        for problem in problems:  # a converter's own error (an unknown learner name) says it best
            cause = problem.get("ctx", {}).get("error")
            if isinstance(cause, GraphMetaError):
                return cause
        order = list(self.annotations)
        problem = min(problems, key=lambda p: order.index(p["loc"][0]))
        key = problem["loc"][0]
        annotation, value = self.annotations[key], values[key]
        expected = describe(annotation)
        if problem["type"] == "finite_number":
            expected = expected.replace("a number", "a finite number", 1)
        hint = closest(str(value), [str(c) for c in _choices(annotation)]) if isinstance(value, str) else ""
        return error(f"{_key_path(where, key)} must be {expected}, got {_shown(value)}{hint}")


@functools.cache
def _schema(target: Callable[..., Any]) -> _Schema:
    signature = inspect.signature(target)
    hints = _hints(target)
    annotations: dict[str, Any] = {}
    defaults: dict[str, Any] = {}
    listed = list(signature.parameters.values())
    if not isinstance(target, type) and listed and listed[0].name in ("self", "cls"):
        listed = listed[1:]  # a method, checked where it is defined
    for parameter in listed:
        if parameter.kind in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD):
            continue
        annotations[parameter.name] = hints.get(parameter.name, Any)
        if parameter.default is not parameter.empty:
            defaults[parameter.name] = parameter.default
    fields = {name: _yaml_friendly(annotation) for name, annotation in annotations.items()}
    arguments = TypedDict(f"{getattr(target, '__name__', 'target')}Arguments", fields, total=False)  # type: ignore[misc]
    arguments.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]
    takes_kwargs = any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values())
    return _Schema(annotations, defaults, takes_kwargs, TypeAdapter(arguments))


def _hints(target: Callable[..., Any]) -> dict[str, Any]:
    """The resolved type hints of ``target``'s parameters; a hint that cannot be resolved (a name
    imported for type checkers only) is ``Any``, so it is simply not checked."""
    owner: Any = target
    if isinstance(target, type) and not is_dataclass(target):
        owner = target.__init__
    try:
        return typing.get_type_hints(owner, include_extras=True)
    except (NameError, TypeError):
        pass
    raw = getattr(owner, "__annotations__", {})
    module = inspect.getmodule(target)
    namespace = dict(vars(module)) if module else {}
    hints = {}
    for name, hint in raw.items():
        try:
            hints[name] = eval(hint, namespace) if isinstance(hint, str) else hint  # noqa: S307 -- our own annotations
        except Exception:  # noqa: BLE001 -- any unresolvable hint means "not checked"
            hints[name] = Any
    return hints


def parameters(target: Callable[..., Any]) -> dict[str, Any]:
    """``{name: type hint}`` of the keyword parameters of ``target`` (a function, or a class's
    constructor), in signature order: the keys a configuration of ``target`` may have."""
    return dict(_schema(target).annotations)


def defaults(target: Callable[..., Any]) -> dict[str, Any]:
    """``{name: default}`` of the parameters of ``target`` that have a default."""
    return dict(_schema(target).defaults)


def check_arguments(target: Callable[..., Any], values: Mapping[str, Any], where: str = "",
                    error: type[GraphMetaError] = ConfigError, exclude: Iterable[str] = ()) -> dict[str, Any]:
    """``values`` checked against the signature of ``target``, converted as ``target`` will get them.

    For a mapping read from YAML or passed on (card overrides, a run config's ``model:``
    section): each key must be a parameter of ``target`` (but none of ``exclude``), each value
    of its type. ``where`` names the mapping in messages (``"train"`` gives ``train.steps``);
    by default it is ``target``'s name. Only the given keys are checked and returned.
    """
    schema = _schema(target)
    if schema.takes_kwargs:
        raise TypeError(f"{_label(target)} takes **kwargs, so its keys cannot be checked: list them as parameters")
    where = where or _label(target)
    excluded = set(exclude)
    _refuse_moved(values, getattr(target, MOVED, {}), where, error, "key")
    check_keys(values, [name for name in schema.annotations if name not in excluded], where, error)
    return schema.check(values, where, error)


#: The attribute of a checked target holding its moved keywords, ``{old: where it lives now}``.
MOVED = "__moved_keywords__"


def _refuse_moved(given: Iterable[str], moved: Mapping[str, str], where: str, error: type[GraphMetaError],
                  kind: str) -> None:
    """A one-line ``error`` for the first of ``given`` that has moved, naming its new spelling."""
    for key in given:
        if key in moved:
            raise error(f"{kind} {key!r} of {where} has moved: {moved[key]}")


# --------------------------------------------------------------- decorators
def checked(target: Any = None, *, where: Where = None, error: type[GraphMetaError] = ConfigError,
            moved: Mapping[str, str] | None = None) -> Any:
    """Check every call of a class (its constructor) or function against its signature.

    An unknown keyword is ``error`` (a :class:`ConfigError` by default) naming it and the
    closest valid keyword; every argument given is checked against its type hint and passed on
    converted (see the module docstring). Defaults are trusted, not checked. ``where`` names the
    call in messages: by default the class name (``MLP.hidden``) or ``function()``; a function of
    the bound arguments gives a name that depends on them (``subtask 'a': in_dim``).

    ``moved`` maps a keyword that no longer exists to where it lives now (``{"context_dim":
    "pass algorithm_options={'context_dim': ...}"}``): giving it is a one-line error saying so,
    from a Python call and from :func:`check_arguments` alike.

    Use it as ``@checked`` or ``@checked(where=..., error=...)``, above ``@dataclass`` for a
    dataclass; Python's own ``TypeError`` still reports a missing or surplus positional argument.
    """
    return _decorator(target, where, error, values=True, moved=moved)


def keywords_checked(target: Any = None, *, where: Where = None,
                     error: type[GraphMetaError] = ConfigError) -> Any:
    """Like :func:`checked`, but check only the keyword names: for a function whose arguments are
    checked where it hands them on (``TaskGraph.add_subtask`` builds a checked ``Subtask``)."""
    return _decorator(target, where, error, values=False)


def _decorator(target: Any, where: Where, error: type[GraphMetaError], values: bool,
               moved: Mapping[str, str] | None = None) -> Any:
    def decorate(obj: Any) -> Any:
        if moved:
            setattr(obj, MOVED, dict(moved))
        if isinstance(obj, type):
            obj.__init__ = _checking(obj.__init__, obj, where or obj.__name__, error, values)
            return obj
        return _checking(obj, obj, where or _label(obj), error, values)

    return decorate if target is None else decorate(target)


def _checking(function: Callable[..., Any], target: Any, where: Where, error: type[GraphMetaError],
              values: bool) -> Callable[..., Any]:
    signature = inspect.signature(function)
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values()):
        raise TypeError(f"{_label(target)} takes *args or **kwargs, so its arguments cannot be checked: "
                        "list them as parameters")
    positional = [name for name, p in signature.parameters.items()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    keywords = frozenset(name for name, p in signature.parameters.items() if p.kind is not p.POSITIONAL_ONLY)

    @functools.wraps(function)
    def call(*args: Any, **kwargs: Any) -> Any:
        # on the hot path (TaskFamily.sample), so no signature.bind: Python's call below reports
        # what binding would (a missing or surplus argument), the names are all checked here
        arguments = dict(zip(positional, args))
        arguments.update(kwargs)

        def label() -> str:
            return where(arguments) if callable(where) else str(where)

        unknown = [key for key in kwargs if key not in keywords]
        if unknown:
            _refuse_moved(unknown, getattr(target, MOVED, {}), label(), error, "keyword")
            check_keys(unknown, sorted(keywords - {"self", "cls"}), label(), error, kind="keyword")
        if not values:
            return function(*args, **kwargs)
        schema = _schema(target)
        converted = schema.check({key: value for key, value in arguments.items() if key in schema.annotations},
                                 label, error)
        return function(*(converted.get(name, value) for name, value in zip(positional, args)),
                        *args[len(positional):], **{key: converted.get(key, value) for key, value in kwargs.items()})

    return call


# ------------------------------------------------------------------- words
def describe(annotation: Any, plural: bool = False) -> str:
    """A type hint in words, for messages: ``Annotated[int, Ge(1)] | None`` is
    ``"an integer >= 1 or null"``, ``tuple[int, ...]`` is ``"a list of integers"``."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        base, metadata = args[0], args[1:]
        for item in metadata:
            if isinstance(item, OneOf):
                return f"one of {', '.join(map(str, item.choices))}"
        text = describe(base, plural)
        if any(isinstance(item, Ordered) for item in metadata):
            text = text.replace("a pair of", "a pair [low, high] of", 1) + " with low <= high"
        if any(isinstance(item, MinLen) and item.min_length == 1 for item in metadata) and base is str:
            text = "non-empty strings" if plural else "a non-empty string"
        bounds = [f"{symbol} {getattr(item, attribute):g}" for item in metadata
                  for kind, symbol, attribute in ((Ge, ">=", "ge"), (Gt, ">", "gt"), (Le, "<=", "le"), (Lt, "<", "lt"))
                  if isinstance(item, kind)]
        return " ".join([text, " and ".join(bounds)]) if bounds else text
    if origin in (Union, types.UnionType):
        members = [a for a in args if a is not type(None)]
        words = [describe(a, plural) for a in members] + (["null"] if len(members) < len(args) else [])
        return " or ".join(words)
    if origin is typing.Literal:
        return f"one of {', '.join(map(str, args))}"
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis or origin in (list, Sequence, set, frozenset):
        return f"lists of {describe(args[0], True)}" if plural else f"a list of {describe(args[0], True)}"
    if origin is tuple and len(set(args)) == 1:
        size = ("pairs" if plural else "a pair") if len(args) == 2 else f"{'lists' if plural else 'a list'} of {len(args)}"
        return f"{size} of {describe(args[0], True)}"
    if origin is tuple:
        return f"{'lists' if plural else 'a list'} [{', '.join(describe(a) for a in args)}]"
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        return "mappings" if plural else "a mapping"
    names = {int: ("an integer", "integers"), float: ("a number", "numbers"), bool: ("true or false", "booleans"),
             str: ("a string", "strings"), type(None): ("null", "nulls"), Any: ("any value", "values")}
    if annotation in names:
        return names[annotation][plural]
    name = getattr(origin or annotation, "__name__", str(annotation))
    return f"{name} objects" if plural else f"a {name}"


def _key_path(where: str, key: str) -> str:
    """How a message names ``key`` of ``where``: after a dot where ``where`` ends in a name (a
    section or class: ``train.steps``, ``run.yaml: train.steps``), after a colon where it ends
    in a quote or bracket (an object or call: ``subtask 'a': in_dim``, ``TaskFamily.sample():
    shots``; so quote a file name: ``card file 'x.yaml': noise``)."""
    if not where:
        return key
    return f"{where}: {key}" if where.endswith(("'", '"', ")")) else f"{where}.{key}"


def _choices(annotation: Any) -> tuple[Any, ...]:
    """The choices a ``OneOf`` or ``Literal`` in ``annotation`` allows (for a "did you mean")."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        found = [item.choices for item in args[1:] if isinstance(item, OneOf)]
        return found[0] if found else _choices(args[0])
    if origin is typing.Literal:
        return args
    if origin in (Union, types.UnionType):
        return tuple(c for a in args for c in _choices(a))
    return ()


def _shown(value: Any) -> str:
    if value is None:
        return "null"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{text} ({type(value).__name__})"


def _label(target: Any) -> str:
    if isinstance(target, type):
        return target.__name__
    qualname = getattr(target, "__qualname__", getattr(target, "__name__", repr(target)))
    if qualname.endswith(".__init__"):
        return qualname[: -len(".__init__")]
    return f"{qualname}()"


def _python_scalar(value: Any) -> Any:
    """A numpy scalar as the Python number it holds (``np.int64(3)`` is an integer to a user)."""
    return value.item() if isinstance(value, np.generic) else value


def _yaml_friendly(annotation: Any) -> Any:
    """``annotation`` with every tuple accepting a list as well, since YAML has no tuples."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is Annotated:
        return Annotated[(_yaml_friendly(args[0]), *args[1:])]  # type: ignore[return-value]
    if origin in (Union, types.UnionType):
        return Union[tuple(_yaml_friendly(a) for a in args)]  # type: ignore[return-value]  # noqa: UP007 (built from a tuple)
    if origin is tuple:
        inner = tuple(a if a is Ellipsis else _yaml_friendly(a) for a in args)
        return Annotated[tuple[inner], Strict(False)]  # type: ignore[return-value]
    return annotation


# -------------------------------------------------------------------- YAML
class _UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """PyYAML's safe loader, refusing a mapping that repeats a key (PyYAML keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden on purpose
                continue
            key = self.construct_object(key_node, deep=True)
            try:
                seen = key in first_line
            except TypeError:  # an unhashable key: the base class reports it
                break
            line = key_node.start_mark.line + 1
            if seen:
                raise _DuplicateKey(key, line, first_line[key])
            first_line[key] = line
        return super().construct_mapping(node, deep=deep)


class _DuplicateKey(yaml.YAMLError):
    def __init__(self, key: Any, line: int, first: int) -> None:
        super().__init__(f"duplicate key {key!r} on line {line} (first on line {first})")


def load_yaml(text: str | Path, where: str = "", error: type[GraphMetaError] = ConfigError) -> Any:
    """The data of a YAML document (``text``, or the file at a ``Path``), read safely: plain
    data only, and a mapping that repeats a key is ``error`` naming the key and both lines
    (PyYAML alone keeps the last value without a word). ``where`` names the source in messages."""
    if isinstance(text, Path):
        where = where or str(text)
        try:
            text = text.read_text(encoding="utf-8")
        except UnicodeDecodeError as problem:
            raise error(f"{where} is not UTF-8 text (byte {problem.start} is not): a damaged or foreign file; "
                        "restore it or write it again") from None
    where = where or "the YAML text"
    try:
        return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 -- a safe loader
    except _DuplicateKey as duplicate:
        raise error(f"{where}: {duplicate}; YAML would keep only the last value, so remove or rename one") from None
    except yaml.YAMLError as problem:
        raise error(f"{where} is not valid YAML: {' '.join(str(problem).split())}") from None
