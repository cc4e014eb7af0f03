"""Load learn2learn's ``MAML`` without importing the ``learn2learn`` package.

``import learn2learn`` imports its vision, text and gym sub-packages, which need torchvision
(and gym) built against the same torch; beside the CPU torch of this project that import
fails. ``learn2learn/algorithms/maml.py`` itself needs only ``learn2learn.utils``
(``clone_module``, ``update_module``) and ``learn2learn.algorithms.base_learner``, so we put
empty stand-ins for the two parent packages in ``sys.modules`` (their ``__path__`` pointing at
the installed sources, their ``__init__`` not run) and import those three modules for real.
The code that runs is learn2learn 0.2.0's own, unmodified.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
from pathlib import Path


def learn2learn_root() -> Path:
    spec = importlib.util.find_spec("learn2learn")
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("learn2learn is not installed here; run benchmarks/peers/setup.sh")
    return Path(next(iter(spec.submodule_search_locations)))


def _stub_package(name: str, path: Path) -> None:
    if name in sys.modules:
        return
    module = types.ModuleType(name)
    module.__path__ = [str(path)]
    module.__file__ = str(path / "__init__.py")
    module.__package__ = name
    sys.modules[name] = module


def load_maml():
    """learn2learn's ``MAML`` class (``learn2learn.algorithms.maml.MAML``)."""
    root = learn2learn_root()
    _stub_package("learn2learn", root)
    _stub_package("learn2learn.algorithms", root / "algorithms")
    importlib.import_module("learn2learn.utils")
    return importlib.import_module("learn2learn.algorithms.maml").MAML


def version() -> str:
    text = (learn2learn_root() / "_version.py").read_text()
    return text.split("=")[-1].strip().strip("'\"")
