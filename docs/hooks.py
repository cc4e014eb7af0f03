"""MkDocs hook: pages generated from the package itself at build time, so they cannot go stale.

- ``<!-- api: MODULE -->`` becomes one mkdocstrings entry per public name of ``MODULE``
  (its ``__all__``), each under the name a user imports (``graphmeta.train.Trainer``) and
  rendered from wherever the object is defined now;
- ``<!-- dataset-cards -->`` becomes one section per dataset card in ``datasets/*.yaml``.
"""

from __future__ import annotations

import importlib
import inspect
import re
from typing import Any

API = re.compile(r"<!-- api: ([\w.]+) -->")
CARDS = "<!-- dataset-cards -->"


def public_names(module_name: str) -> list[str]:
    """The documented names of ``module_name``: its ``__all__`` without the subpackages it exports."""
    module = importlib.import_module(module_name)
    return [name for name in module.__all__ if not inspect.ismodule(getattr(module, name))]


def api_entries(module_name: str) -> str:
    """Markdown with a mkdocstrings entry per public class and function, and a list of the constants."""
    module = importlib.import_module(module_name)
    entries, constants = [], []
    for name in public_names(module_name):
        value = getattr(module, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            entries.append(f"::: {value.__module__}.{value.__qualname__}\n"
                           f"    options:\n      heading: \"{module_name}.{name}\"\n"
                           f"      toc_label: \"{name}\"\n      heading_level: 2\n      show_root_heading: true\n")
        else:
            constants.append(f"- `{module_name}.{name}`: {_short(value)}")
    constants_block = "\n## Constants\n\n" + "\n".join(constants) + "\n" if constants else ""
    return "\n".join(entries) + constants_block


def _short(value: Any) -> str:
    """A constant's value in a line: the keys of a mapping, or its repr cut to 100 characters."""
    text = ", ".join(map(str, value)) if isinstance(value, (dict, tuple, list, frozenset, set)) else repr(value)
    return f"`{text[:100]}{'...' if len(text) > 100 else ''}`"


def dataset_cards() -> str:
    """One section per card: name, family, description, the other text fields, the parameters."""
    from graphmeta.families.cards import TEXT_FIELDS, available_cards, load_card

    sections = []
    for name in available_cards():
        card = load_card(name)
        lines = [f"## {card.name}", "", f"**Family:** `{card.family}`. {card.description}", ""]
        for key in TEXT_FIELDS:
            text = getattr(card, key)
            if text and key != "description":
                lines += [f"**{key.replace('_', ' ').capitalize()}:** {text}", ""]
        lines += ["```yaml", *(f"{key}: {value}" for key, value in card.parameters.items()), "```", "",
                  f"`gm.load_family(\"{card.name}\")`, or `family: {{name: {card.name}}}` in a run config.", ""]
        sections.append("\n".join(lines))
    return "\n".join(sections)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Expand the placeholders of the module docstring in a page's markdown."""
    markdown = API.sub(lambda match: api_entries(match.group(1)), markdown)
    return markdown.replace(CARDS, dataset_cards()) if CARDS in markdown else markdown
