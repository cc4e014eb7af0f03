"""Dataset cards: named, ready-made task families in YAML, with their provenance.

A card is a YAML mapping::

    name: alarm-dirichlet
    family: bayesnet              # a key of FAMILIES
    description: one line, shown by `graphmeta datasets`
    parameters: {network: alarm, prior: dirichlet, alpha: 10.0}
    graph_source: where the task graph comes from
    provenance: where the data / parameters come from
    citation: what to cite
    intended_use: what the family is for (and not for)

The cards shipped with graphmeta live in the top-level ``datasets/`` folder of the
repository, which the wheel installs as the data-only package ``graphmeta.cards`` (never as
a top-level ``datasets`` package, which would shadow Hugging Face's).

A run config's ``family:`` section (:class:`FamilySection`) names a card, or a table, or a
family class of your own::

    family: alarm-latent                                  # a card (name or path), as it is
    family: {name: compositional-dag, num_nodes: 64}      # a card, options overridden
    family: {data: visits.csv, task_column: site, graph: graph.yaml, test_tasks: [s7]}  # a table
    family: {name: "my_module:MyFamily", size: 3}         # your class, with its arguments
"""

from __future__ import annotations

import importlib
import inspect
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, check_keys, closest
from ..validation import check_arguments, load_yaml
from . import arml, bayesnet, compositional, functions, gaussian, graph_subtasks, sinusoid  # noqa: F401 -- each registers its family
from .base import FAMILIES, TaskFamily
from .dataframe import DataFrameFamily, absolute_path

if TYPE_CHECKING:
    if sys.version_info >= (3, 11):
        from importlib.resources.abc import Traversable
    else:
        from importlib.abc import Traversable

TEXT_FIELDS = ("description", "graph_source", "provenance", "citation", "intended_use")


@dataclass(frozen=True)
class Card:
    """One dataset card (see the module docstring for the fields)."""

    name: str
    family: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)
    graph_source: str = ""
    provenance: str = ""
    citation: str = ""
    intended_use: str = ""

    def build(self, **overrides: Any) -> TaskFamily:
        """The family the card describes, with ``overrides`` (keyword arguments of its family's
        constructor, checked against it) replacing its parameters."""
        family = FAMILIES[self.family]
        overrides = check_arguments(family, overrides, f"the overrides of card {self.name!r}")
        return family(**{**self.parameters, **overrides})


CARD_KEYS = tuple(f.name for f in fields(Card))


def card_directory() -> Traversable:
    """The folder of the shipped cards: ``graphmeta.cards`` when installed, else the checkout's ``datasets/``."""
    try:
        return resources.files("graphmeta.cards")
    except ModuleNotFoundError:  # a source checkout, or an editable install made before the cards were mapped
        return Path(__file__).resolve().parents[2] / "datasets"


def available_cards() -> list[str]:
    """The names of the shipped cards, sorted."""
    return sorted(entry.name[: -len(".yaml")] for entry in card_directory().iterdir() if entry.name.endswith(".yaml"))


def load_card(name_or_path: str | Path) -> Card:
    """A shipped card by name (``"alarm-dirichlet"``) or a card file by path (``*.yaml`` / ``*.yml``)."""
    text_path = str(name_or_path)
    if isinstance(name_or_path, Path) or Path(text_path).suffix in (".yaml", ".yml") or len(Path(text_path).parts) > 1:
        path = Path(name_or_path)
        if not path.is_file():
            raise ConfigError(f"no dataset card file at {path}")
        text, where = path.read_text(), f"card file {str(path)!r}"
    else:
        entry = card_directory() / f"{text_path}.yaml"
        if not entry.is_file():
            names = available_cards()
            raise ConfigError(f"unknown dataset card {text_path!r}{closest(text_path, names)}; "
                              f"available: {', '.join(names)}")
        text, where = entry.read_text(), f"dataset card {text_path!r}"
    data = load_yaml(text, where)
    if not isinstance(data, dict):
        raise ConfigError(f"{where} must hold a mapping, got {type(data).__name__}")
    check_keys(data, CARD_KEYS, where)
    family = data.get("family")
    if not isinstance(family, str) or family not in FAMILIES:
        raise ConfigError(f"{where}: unknown family {family!r}{closest(str(family), FAMILIES)}; "
                          f"choose one of {', '.join(FAMILIES)}")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ConfigError(f"{where}: parameters must be a mapping, got {type(parameters).__name__}")
    check_arguments(FAMILIES[family], parameters, f"the parameters of {where}")
    fields = {key: str(data[key]).strip() for key in TEXT_FIELDS if data.get(key)}
    name = str(data.get("name") or Path(text_path).stem)
    return Card(name=name, family=family, parameters=dict(parameters), **fields)


def load_family(name_or_path: str | Path, **overrides: Any) -> TaskFamily:
    """The task family of a dataset card, by card name or path, with parameters overridden.

    ``load_family("compositional-dag", num_nodes=1024)``. An unknown card name is a
    :class:`ConfigError` listing the available cards; an unknown override key is one naming
    the closest valid key. The card is kept as ``family.card``.
    """
    card = load_card(name_or_path)
    family = card.build(**overrides)
    family.card = card
    return family


#: The arguments of a table family that name files, kept as absolute paths in a run's config.
TABLE_PATHS = ("data", "graph")


@dataclass(frozen=True)
class FamilySection:
    """A run config's ``family:`` section, read (see the module docstring for its forms).

    ``section`` is the section as a run records it (a table's files as absolute paths, so
    ``graphmeta evaluate`` finds them from any folder), ``constructor`` what builds the family,
    ``options`` its keyword arguments (a card's overrides), ``card`` the card's name or path.
    """

    section: dict[str, Any]
    constructor: Callable[..., Any]
    options: dict[str, Any]
    card: str | None = None

    @classmethod
    def read(cls, value: Any, where: str = "family") -> FamilySection:
        """The section ``value`` (a card name, or a mapping); ``where`` names it in messages."""
        if isinstance(value, str):
            value = {"name": value}
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where} must be a card name or a mapping, got {value!r} ({type(value).__name__})")
        options = dict(value)
        name = options.pop("name", None)
        if name is None and "data" in options:
            options.update({key: absolute_path(options[key]) for key in TABLE_PATHS
                            if isinstance(options.get(key), (str, os.PathLike))})
            return cls(dict(options), DataFrameFamily, options)
        if not isinstance(name, str):
            raise ConfigError(f"{where} needs a 'name': a dataset card (e.g. compositional-dag), a card file or "
                              "your family class as module:Class; or 'data' (a table file) for your own table")
        if ":" in name:
            return cls({"name": name, **options}, family_class(name, where), options)
        return cls({"name": name, **options}, FAMILIES[load_card(name).family], options, card=name)

    def check(self, where: str = "family") -> None:
        """The options checked against the constructor's signature (a ConfigError naming a wrong key
        or value); a class of yours that takes ``**kwargs`` is checked when it is built."""
        if not any(p.kind is p.VAR_KEYWORD for p in inspect.signature(self.constructor).parameters.values()):
            check_arguments(self.constructor, self.options, where)

    def build(self) -> Any:
        """The family: the card's (``family.card`` set), or the constructor's with the options."""
        if self.card is not None:
            return load_family(self.card, **self.options)
        family = self.constructor(**self.options)
        if not hasattr(family, "graph") or not callable(getattr(family, "sample", None)):
            raise ConfigError(f"{self.section.get('name', self.constructor)} built a {type(family).__name__}, which is "
                              "no task family: a family has a .graph and a .sample(num_tasks, shots, query, split, seed)")
        return family


def family_class(name: str, where: str = "family") -> Callable[..., Any]:
    """The class ``"module:Class"`` names (``Class`` may be dotted, ``Outer.Inner``), imported the way
    ``python -m`` would find it: the working directory comes first on the import path, as for uvicorn."""
    module_name, _, attribute = name.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"{where}: name {name!r} must look like module:Class, e.g. my_families:SiteFamily")
    if module_name == "__main__":
        raise ConfigError(f"{where}: {name!r} was defined in a script, which cannot be imported again: move the class "
                          "into a module and name it as module:Class")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        target: Any = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name is None or not module_name.startswith(error.name):
            raise
        raise ConfigError(f"{where}: cannot import {module_name!r} for {name!r}: no such module in the working "
                          f"directory ({os.getcwd()}) or the installed packages") from None
    for part in attribute.split("."):
        if not hasattr(target, part):
            names = [n for n in dir(target) if not n.startswith("_")]
            raise ConfigError(f"{where}: {getattr(target, '__name__', module_name)!r} has no {part!r}"
                              f"{closest(part, names)}, named in {name!r}")
        target = getattr(target, part)
    if not inspect.isclass(target):
        raise ConfigError(f"{where}: {name!r} is a {type(target).__name__}, not a family class")
    return target
