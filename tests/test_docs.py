"""The documentation site cannot go stale: every page in the navigation exists, every public
name of the documented packages gets an API entry, the dataset cards page lists every card, and
every Python block of the guides runs (in a fresh folder, blocks of one page in one namespace,
in order). ``make docs`` builds the site itself with ``mkdocs build --strict``."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PYTHON_BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
#: The packages whose public names the API reference documents, and the page of each.
REFERENCE = {"graphmeta": "graphmeta.md", "graphmeta.families": "families.md", "graphmeta.learners": "learners.md",
             "graphmeta.adapt.algorithms": "algorithms.md", "graphmeta.train": "train.md", "graphmeta.tune": "tune.md",
             "graphmeta.bayesnet": "bayesnet.md", "graphmeta.viz": "viz.md"}


def load_hooks():
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nav_pages(entries) -> list[str]:
    pages = []
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        pages += nav_pages(value) if isinstance(value, list) else [value]
    return pages


def python_blocks(page: Path) -> list[str]:
    """The page's Python blocks, without those that include a file (``--8<--``: an example, run on its own)."""
    return [block for block in PYTHON_BLOCK.findall(page.read_text()) if not block.startswith("--8<--")]


def guide_pages() -> list[Path]:
    return sorted(path for path in DOCS.rglob("*.md") if python_blocks(path))


def test_every_page_of_the_navigation_exists_and_every_page_is_in_it():
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text().replace("!!python/name:", ""))
    pages = nav_pages(config["nav"])
    assert all((DOCS / page).is_file() for page in pages), [page for page in pages if not (DOCS / page).is_file()]
    on_disk = {str(path.relative_to(DOCS)) for path in DOCS.rglob("*.md")}
    assert on_disk == set(pages)


@pytest.mark.parametrize(("package", "page"), REFERENCE.items())
def test_every_public_name_has_an_api_entry(package, page):
    text = (DOCS / "reference" / page).read_text()
    assert f"<!-- api: {package} -->" in text
    hooks = load_hooks()
    rendered = hooks.on_page_markdown(text)
    names = hooks.public_names(package)
    assert names
    for name in names:
        assert f'heading: "{package}.{name}"' in rendered or f"`{package}.{name}`" in rendered, name


def test_the_entries_point_at_where_each_object_is_defined():
    rendered = load_hooks().api_entries("graphmeta.train")
    import graphmeta.train

    trainer = graphmeta.train.Trainer
    assert f"::: {trainer.__module__}.Trainer\n" in rendered


def test_the_dataset_cards_page_lists_every_card():
    from graphmeta.families import available_cards

    rendered = load_hooks().on_page_markdown((DOCS / "datasets.md").read_text())
    assert [line[3:] for line in rendered.splitlines() if line.startswith("## ")] == list(available_cards())


@pytest.mark.parametrize("page", guide_pages(), ids=lambda path: str(path.relative_to(DOCS)))
def test_the_python_blocks_of_a_page_run(page, tmp_path, monkeypatch):
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    namespace: dict = {"__name__": "__docs__"}
    for number, block in enumerate(python_blocks(page)):
        exec(compile(block, f"{page.name}, block {number + 1}", "exec"), namespace)  # noqa: S102


def test_guides_have_code_that_runs():
    """The guides with examples of their own (not only commands) are among the pages run above."""
    run = {path.name for path in guide_pages()}
    assert {"task-graphs.md", "algorithms.md", "own-data.md", "bayesian-networks.md", "training.md", "tracking.md",
            "tuning.md", "devices.md", "online.md", "reliability.md"} <= run


def test_getting_started_shows_the_readme_example_and_its_checked_output():
    """Its example and output are included from the files tests/test_readme.py runs and checks."""
    text = (DOCS / "getting-started.md").read_text()
    assert '--8<-- "examples/readme_example.py"' in text and '--8<-- "docs/readme_example_output.txt"' in text
