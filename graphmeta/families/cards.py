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
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, check_keys, closest
from ..validation import check_arguments, load_yaml
from .base import TaskFamily
from .bayesnet import BayesNetFamily
from .compositional import CompositionalFamily
from .gaussian import GaussianNetFamily
from .graph_subtasks import GraphSubtasksFamily
from .sinusoid import SinusoidFamily

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

FAMILIES: dict[str, type[TaskFamily]] = {
    "sinusoid": SinusoidFamily,
    "compositional": CompositionalFamily,
    "bayesnet": BayesNetFamily,
    "gaussian": GaussianNetFamily,
    "graph-subtasks": GraphSubtasksFamily,
}
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
    if family not in FAMILIES:
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
