"""The README's 20-line example is examples/readme_example.py, line for line, so the example a
reader copies is the one that was run (its output and timing are quoted in the README)."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_example_is_the_example_file():
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## A 20-line example\n.*?```python\n(.*?)```", readme, re.S)
    assert block is not None, "the README has no '## A 20-line example' section with a python block"
    assert block.group(1) == (ROOT / "examples" / "readme_example.py").read_text()
    assert len(block.group(1).splitlines()) <= 20


def test_readme_never_refers_to_issue_numbers():
    assert not re.search(r"\(issue \d+\)|issue #?\d+", (ROOT / "README.md").read_text(), re.I)
