"""Latent subtasks in drawings: dashed outlines, and "not scored" where metrics are shown."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt

import graphmeta as gm


def test_latent_nodes_are_dashed_and_not_scored():
    graph = (gm.TaskGraph().add_subtask("x", in_dim=1).add_subtask("h", observed=False).add_subtask("y")
             .add_dependency("x", "h").add_dependency("h", "y"))
    fig = gm.draw(graph, metrics={"x": 0.1, "y": 0.2}, metric_name="loss")
    ax = fig.axes[0]
    styles = [collection.get_linestyle() for collection in ax.collections if collection.get_offsets().shape[0]]
    dashed = [style for style in styles if any(pattern is not None and pattern[1] for pattern in style)]
    assert len(dashed) == 1  # the one latent node's marker group
    texts = [text.get_text() for text in ax.texts]
    assert any(text.startswith("h") and "not scored" in text for text in texts)
    assert not any(text.startswith("x") and "not scored" in text for text in texts)
    plt.close(fig)
