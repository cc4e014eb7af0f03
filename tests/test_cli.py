"""The graphmeta command line, run in-process (plus one real subprocess)."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

import graphmeta
from graphmeta.cli import COMMANDS, build_parser, main


@pytest.fixture
def graph_file(mixed, tmp_path):
    return mixed.save(tmp_path / "mixed.yaml")


def test_every_command_module_follows_the_contract():
    assert {"demo", "draw"} <= set(COMMANDS)
    for name in COMMANDS:
        module = importlib.import_module(f"graphmeta.commands.{name}")
        assert callable(module.add_parser) and callable(module.run)
    choices = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)).choices
    assert list(choices) == list(COMMANDS)


def test_draw_a_graph_file(graph_file, tmp_path, capsys):
    out = tmp_path / "out" / "mixed.png"
    assert main(["draw", str(graph_file), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b"\x89PNG")
    assert capsys.readouterr().out.strip() == f"wrote {out}"


def test_draw_a_bundled_network(tmp_path):
    out = tmp_path / "asia.svg"
    assert main(["draw", "--pgmpy", "asia", "-o", str(out), "--direction", "TB", "--title", "Asia"]) == 0
    assert b"Asia" in out.read_bytes()


def test_draw_defaults_to_the_graph_name(graph_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["draw", str(graph_file)]) == 0
    assert (tmp_path / "mixed.png").exists()


def test_draw_with_metrics(graph_file, tmp_path):
    metrics = tmp_path / "accuracy.json"
    metrics.write_text(json.dumps({"traffic": 0.9, "weather": 0.4}))
    out = tmp_path / "m.svg"
    assert main(["draw", str(graph_file), "-o", str(out), "--metrics", str(metrics)]) == 0
    assert b"accuracy" in out.read_bytes()  # the colorbar title defaults to the file's name


@pytest.mark.parametrize(
    ("setup", "message"),
    [
        (lambda d: d / "missing.json", "no metrics file at"),
        (lambda d: (d / "bad.json").write_text("{oops") and d / "bad.json", "is not valid JSON"),
        (lambda d: (d / "list.json").write_text("[1, 2]") and d / "list.json", "must hold a JSON object"),
        (lambda d: (d / "typo.json").write_text('{"trafic": 1}') and d / "typo.json", "did you mean 'traffic'"),
    ],
)
def test_bad_metrics_files(graph_file, tmp_path, capsys, setup, message):
    metrics = setup(tmp_path)
    assert main(["draw", str(graph_file), "-o", str(tmp_path / "o.png"), "--metrics", str(metrics)]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["draw", "--pgmpy", "alarmm", "-o", "x.png"], "error: unknown pgmpy network 'alarmm' (did you mean 'alarm'?)"),
        (["draw", "missing.yaml", "-o", "x.png"], "error: no task graph file at missing.yaml"),
        (["draw", "--pgmpy", "asia", "-o", "x.gif"], "error: cannot write a picture to 'x.gif'"),
    ],
)
def test_graphmeta_errors_exit_2_without_traceback(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(message) and "Traceback" not in err


@pytest.mark.parametrize("signal_number", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_a_command_is_one_line_and_its_exit_status(signal_number, graph_file, tmp_path, capsys,
                                                                     monkeypatch):
    """SIGINT as Python raises it (KeyboardInterrupt), SIGTERM through the handler the command line
    installs for the command's time; the handler before it is back afterwards."""
    def draw_until_a_signal(*args, **kwargs):
        os.kill(os.getpid(), signal_number)
        time.sleep(10)  # the signal arrives first

    monkeypatch.setattr("graphmeta.viz.draw_task_graph", draw_until_a_signal)
    handler = signal.getsignal(signal.SIGTERM)
    # Python's own SIGINT handler, also where the test runner inherited SIGINT ignored (a background job)
    inherited = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        assert main(["draw", str(graph_file), "-o", str(tmp_path / "x.png")]) == 128 + signal_number
    finally:
        signal.signal(signal.SIGINT, inherited)
    err = capsys.readouterr().err
    assert err.splitlines() == [f"{signal.Signals(signal_number).name} received" + (
        ": stopped" if signal_number == signal.SIGINT else "")]
    assert signal.getsignal(signal.SIGTERM) is handler


def test_invalid_graph_file(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("subtasks:\n  a: {}\n  b: {}\ndependencies: [[a, b], [b, a]]\n")
    assert main(["draw", str(bad), "-o", str(tmp_path / "x.png")]) == 2
    assert "cycle: a -> b -> a" in capsys.readouterr().err


def test_usage_errors(capsys):
    assert main([]) == 2
    assert "draw" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_info:
        main(["draw"])  # neither a file nor --pgmpy
    assert exit_info.value.code == 2
    with pytest.raises(SystemExit) as exit_info:
        main(["nonsense"])
    assert exit_info.value.code == 2


def test_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"graphmeta {graphmeta.__version__}"


def test_the_version_lives_in_one_place():
    """pyproject.toml reads it from graphmeta.__version__, and the installed metadata agrees."""
    import importlib.metadata
    from pathlib import Path

    import tomllib

    project = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    assert "version" not in project["project"] and "version" in project["project"]["dynamic"]
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "graphmeta.__version__"}
    assert importlib.metadata.version("graphmeta") == graphmeta.__version__


def test_python_dash_m_help():
    result = subprocess.run([sys.executable, "-m", "graphmeta", "--help"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0
    assert "usage: graphmeta" in result.stdout
    for name in COMMANDS:
        assert name in result.stdout
