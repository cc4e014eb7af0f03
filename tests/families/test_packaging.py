"""The cards ship inside the wheel as graphmeta.cards, and datasets/ never becomes an importable package."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_pyproject_lists_every_package_and_maps_the_cards():
    tomllib = pytest.importorskip("tomllib")
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["graphmeta.cards"] == "datasets"
    assert setuptools["package-data"]["graphmeta.cards"] == ["*.yaml"]
    listed = set(setuptools["packages"]) - {"graphmeta.cards"}
    # every folder of Python files is a package the wheel needs, with or without an __init__.py
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "graphmeta").rglob("*.py")
             if "__pycache__" not in p.parts}
    assert not found - listed, f"add {sorted(found - listed)} to [tool.setuptools] packages in pyproject.toml"
    assert not listed - found, f"remove {sorted(listed - found)} from [tool.setuptools] packages in pyproject.toml"


def test_datasets_folder_is_data_not_a_package():
    assert not (ROOT / "datasets" / "__init__.py").exists()
    assert sorted((ROOT / "datasets").glob("*.py")) == []
    assert sorted((ROOT / "datasets").glob("*.yaml"))
