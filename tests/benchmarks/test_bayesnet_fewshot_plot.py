"""The figure of ``benchmarks/bayesnet_fewshot.py``: every method visible in every panel, one legend for the
figure, and the results JSON that ``--replot`` draws from."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
SHOTS = (1, 5, 50)
APART_PX = 3.0  # two methods' points closer than this read as one


@pytest.fixture(scope="module")
def fewshot() -> ModuleType:
    """The benchmark script as a module (it imports its sibling ``_results``, so its folder goes on the path)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.syspath_prepend(str(BENCHMARKS))
        return importlib.import_module("bayesnet_fewshot")


@pytest.fixture(scope="module")
def results(fewshot: ModuleType) -> dict:
    """Log-likelihoods shaped like the real run's: on ``dirichlet`` pooled EB, the one fit and the limit within
    0.002 nats of each other (equal at K = 50) and BDeu nats below; on ``latent`` a specialised fit at K = 5."""
    Score = fewshot.Score
    results = {}
    for prior in fewshot.PRIORS:
        block = {}
        for k in SHOTS:
            limit = -2.0 - 0.5 / k
            near = {"dirichlet": (0.001, -0.002), "latent": (-0.2, -0.03)}[prior]
            eb, one_fit = (limit, limit) if prior == "dirichlet" and k == 50 else (limit + near[0], limit + near[1])
            block[k] = {"pgmpy BDeu": Score(limit - 2.0 / k, 0.08, 0.3 / k), "pooled EB": Score(eb, 0.08, 0.03),
                        fewshot.ONE_FIT: Score(one_fit, 0.08, 0.03), "limit": Score(limit, 0.08, 0.03)}
            if prior == "latent" and k == 5:
                block[k][fewshot.SPECIALISED_FIT] = Score(limit - 0.01, 0.08, 0.02)
        results[("asia", prior)] = block
    return results


def test_every_panel_shows_every_method_apart_as_its_gap_to_the_limit(fewshot, results):
    figure = fewshot.plot(results)
    figure.canvas.draw()
    assert len(figure.axes) == len(results)
    for axis, ((network, prior), block) in zip(figure.axes, results.items()):
        assert axis.get_title() == f"{network} / {prior}"
        assert [label.get_text() for label in axis.get_xticklabels()] == ["1", "5", "50"]
        lines = {line.get_label(): line for line in axis.get_lines()}
        methods = [method for method in fewshot.METHODS if any(method in block[k] for k in SHOTS)]
        assert sorted(lines) == sorted(methods)
        points = {}  # (method, K) -> (gap, display point)
        for method in methods:
            shots = [k for k in SHOTS if method in block[k]]
            gaps = [block[k][method].log_likelihood - block[k]["limit"].log_likelihood for k in shots]
            assert np.allclose(lines[method].get_ydata(), gaps)
            shown = axis.transData.transform(np.column_stack([lines[method].get_xdata(), gaps]))
            points.update({(method, k): (gap, xy) for k, gap, xy in zip(shots, gaps, shown)})
        for (a, k), (gap_a, xy_a) in points.items():
            for (b, k_b), (gap_b, xy_b) in points.items():
                if k_b != k or a >= b:
                    continue
                assert np.linalg.norm(xy_a - xy_b) >= APART_PX, (prior, k, a, b)
                if abs(gap_a - gap_b) >= 0.001:
                    assert abs(xy_a[1] - xy_b[1]) >= APART_PX, (prior, k, a, b, gap_a, gap_b)


def test_one_legend_for_the_figure_with_every_method_over_no_panel(fewshot, results):
    figure = fewshot.plot(results)
    figure.canvas.draw()
    assert all(axis.get_legend() is None for axis in figure.axes)
    (legend,) = figure.legends
    assert [text.get_text() for text in legend.get_texts()] == list(fewshot.METHODS)
    renderer = figure.canvas.get_renderer()
    box = legend.get_window_extent(renderer)
    assert not any(box.overlaps(axis.get_window_extent(renderer)) for axis in figure.axes)
    (title,) = figure.texts  # the suptitle
    assert not box.overlaps(title.get_window_extent(renderer))


def test_replot_draws_the_figure_from_the_results_json(fewshot, results, tmp_path, monkeypatch):
    data = json.loads(json.dumps(fewshot.results_json(results, "## header")))
    assert fewshot.results_from_json(data) == results
    assert {record["method"] for record in data["results"]} == set(fewshot.METHODS)
    (tmp_path / "run.json").write_text(json.dumps(data))
    monkeypatch.setattr(sys, "argv", ["bayesnet_fewshot.py", "--replot", str(tmp_path / "run.json"),
                                      "--figure", str(tmp_path / "figure.png")])
    fewshot.main()
    assert (tmp_path / "figure.png").read_bytes().startswith(b"\x89PNG")
