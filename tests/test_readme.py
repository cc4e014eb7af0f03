"""The README's 20-line example is examples/readme_example.py, line for line, and the table it
quotes is the one that example prints today (run here, compared digit for digit), so the example
a reader copies and its output are the ones that were run."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
EXAMPLE = ROOT / "examples" / "readme_example.py"
OUTPUT = ROOT / "docs" / "readme_example_output.txt"  # also shown on the site's getting-started page


def readme_output_block() -> str:
    block = re.search(r"`python examples/readme_example.py` prints.*?```\n(.*?)```", README.read_text(), re.S)
    assert block is not None, "the README quotes no output of examples/readme_example.py"
    return block.group(1)


def test_readme_example_is_the_example_file():
    readme = README.read_text()
    block = re.search(r"## A 20-line example\n.*?```python\n(.*?)```", readme, re.S)
    assert block is not None, "the README has no '## A 20-line example' section with a python block"
    assert block.group(1) == EXAMPLE.read_text()
    assert len(block.group(1).splitlines()) <= 20


def test_readme_and_site_quote_the_same_output():
    assert readme_output_block() == OUTPUT.read_text()


def test_readme_example_prints_the_quoted_table(tmp_path):
    """Runs the example from a fresh folder (about 50 s of CPU: 200 meta-steps, the ablation's
    200, 100 test tasks) and finds the quoted table, every line of it, in what it prints."""
    result = subprocess.run([sys.executable, str(EXAMPLE)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = without_wall_time(result.stdout)
    quoted = without_wall_time(OUTPUT.read_text())
    assert quoted in printed, f"the example now prints:\n{printed[printed.find('example:'):]}"


def without_wall_time(text: str) -> str:
    """``text`` without the wall time an evaluation reports, the one figure that differs from run to run."""
    return re.sub(r", evaluated in [\d.]+ s", "", text)


def test_readme_is_a_front_door():
    readme = README.read_text()
    assert len(readme.splitlines()) <= 250
    for must in ("make demo", "make test", "docs/alarm.png", "DataFrameFamily", "graphmeta tune", "--nproc",
                 "train.device", "## Benchmarks"):
        assert must in readme, must


def test_readme_never_refers_to_issue_numbers():
    assert not re.search(r"\(issue \d+\)|issue #?\d+", README.read_text(), re.I)
