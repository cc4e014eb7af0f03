"""``graphmeta datasets``: list the dataset cards, or show one in full."""

from __future__ import annotations

import argparse
from typing import Any


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "datasets",
        help="list the dataset cards (ready-made task families)",
        description="List the dataset cards shipped with graphmeta, one line each (name, family, "
                    "description), or show one card in full. Load one in Python with "
                    "graphmeta.load_family(name, **overrides).",
    )
    parser.add_argument("name", nargs="?", help="a card to show in full, e.g. alarm-dirichlet")
    return parser


def run(args: argparse.Namespace) -> int:
    from ..families.cards import TEXT_FIELDS, available_cards, load_card

    if args.name:
        card = load_card(args.name)
        print(f"{card.name}  ({card.family} family)")
        for key in TEXT_FIELDS:
            if getattr(card, key):
                print(f"\n{key.replace('_', ' ')}:\n  {getattr(card, key)}")
        print("\nparameters:")
        for key, value in card.parameters.items():
            print(f"  {key}: {value}")
        return 0
    cards = [load_card(name) for name in available_cards()]
    name_width = max(len(card.name) for card in cards)
    family_width = max(len(card.family) for card in cards)
    for card in cards:
        print(f"{card.name:<{name_width}}  {card.family:<{family_width}}  {card.description}")
    return 0
