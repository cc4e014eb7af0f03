"""Latent subtasks: learning hidden intermediate nodes from the sinks' labels alone, and what it costs.

**Quality.** On ``compositional-dag-latent`` (16 nodes, every non-sink latent, K = 5 support
shots), three learners meta-trained with the same algorithm, steps and budget, scored by the
query MSE on the observed sinks of the same held-out tasks:

* *graph*: the task graph with its latent nodes, adapted and meta-trained end to end;
* *monolithic*: one MLP node from all the graph's inputs (every node's own features) to all the
  sinks' values, the same family's data without structure (``gm.MonolithicFamily``, the baseline
  ``graphmeta evaluate`` trains for a graph with latent subtasks), scored per sink;
* *fully supervised*: the same graph with every node observed (``family.supervised()``).

All three train MAML at 0.1 with message passing off (``--message-passing`` turns it on for all
three, as ``GraphMetaLearner`` has it by default), once per inner-step count in ``--inner-steps``
(1, 2 and 3), the same meta-steps each; each learner keeps the count with the lowest mean sink MSE on 64
validation tasks (the family's ``val`` split), and that model is scored on the held-out tasks.

Each held-out task's score is its mean query MSE over the sinks; the table gives the mean over the
held-out tasks with its 95% Student-t interval, and, since every learner is scored on the same
tasks, the paired differences (graph minus each other learner, task by task) with theirs.

The same three learners on ``functions-latent`` (after Alet et al.'s modular meta-learning: two
latent elementary functions of x, summed or multiplied by the one observed sink), at K = 5 and
K = 16 support points, 64 query points, reported the same way.

**Speed.** The 64-node ``compositional-dag``, fully observed against half its nodes latent (the
first half of its non-sink nodes), one meta-step (meta-loss, backward, Adam) each, interleaved in
one process on one thread; the median time per step.

Run ``python benchmarks/latent.py`` (``--quick`` for a smoke run, written nowhere).
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import torch
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import ROOT, destination, graphmeta_commit, invocation, utc_now, write_results

import graphmeta as gm
from graphmeta.data import Split, TaskBatch

RESULTS = ROOT / "benchmarks" / "results" / "latent.md"


def sink_mse(model: gm.GraphMetaLearner, batch: TaskBatch, positions: list[int]) -> torch.Tensor:
    """Per held-out task ``[T]`` the mean query MSE over the sink nodes (``positions``)."""
    return model.adapt(batch).evaluate(batch)["mse"][:, positions].mean(1)


def mean_interval(values: torch.Tensor) -> tuple[float, float]:
    """The mean of ``values`` and the half-width of its 95% Student-t interval."""
    n = values.numel()
    return float(values.mean()), float(stats.t.ppf(0.975, n - 1) * values.std() / math.sqrt(n))


def train(model: gm.GraphMetaLearner, batches, steps: int, lr: float) -> None:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for step in range(steps):
        optimizer.zero_grad()
        loss, _ = model.meta_loss(batches(step), metrics=False)
        loss.backward()
        optimizer.step()


LABELS = ("graph (latent nodes)", "monolithic MLP", "fully supervised graph")


def quality(card: str, steps: int, tasks: int, shots: int, query: int, seed: int, message_passing: bool,
            inner_steps: tuple[int, ...]) -> tuple[dict[str, torch.Tensor], dict[str, float], dict[str, int]]:
    """Per learner the held-out tasks' sink MSEs ``[64]`` on ``card``, its training seconds (every
    candidate's), and its number of inner steps: each of ``inner_steps`` is meta-trained and the one
    with the lowest mean sink MSE on 64 validation tasks is scored on the held-out ones."""
    family = gm.load_family(card)
    supervised = family.supervised()
    graph = family.graph
    mono = gm.MonolithicFamily(family)
    positions = [graph.names.index(name) for name in mono.sinks]

    def scored(model: gm.GraphMetaLearner, sample, split: str) -> torch.Tensor:
        data = (supervised if sample is supervised else family).sample(64, shots, query, split=split, seed=seed)
        if sample is mono:  # scored per sink, as the graph is
            data = mono.repacked(data)
            return mono.scores(model.adapt(data), data)["mse"][:, positions].mean(1)
        return sink_mse(model, data, positions)

    scores, seconds, chosen = {}, {}, {}
    for label, sample in zip(LABELS, (family, mono, supervised)):
        start, best = time.perf_counter(), None
        for count in inner_steps:
            torch.manual_seed(seed)
            model = gm.GraphMetaLearner(sample.graph, algorithm="maml", inner_steps=count, inner_lr=0.1,
                                        message_passing=message_passing)

            def batches(step: int, sample=sample) -> TaskBatch:
                return sample.sample(tasks, shots, query, seed=seed * 100_000 + step)

            train(model, batches, steps, lr=1e-3)
            validation = float(scored(model, sample, "val").mean())
            if best is None or validation < best[0]:
                best = (validation, count, model)
        assert best is not None
        _, chosen[label], model = best
        scores[label] = scored(model, sample, "test")
        seconds[label] = time.perf_counter() - start
    return scores, seconds, chosen


def half_latent(graph: gm.TaskGraph) -> gm.TaskGraph:
    """``graph`` with the first half of its nodes, among those with a child, latent."""
    spec = graph.to_dict()
    non_sinks = [name for name in graph.names if graph.children(name)]
    for name in non_sinks[: len(graph) // 2]:
        spec["subtasks"][name]["observed"] = False
    return gm.TaskGraph.from_dict(spec)


def hidden(batch: TaskBatch, graph: gm.TaskGraph, layout) -> TaskBatch:
    """``batch`` for ``graph``: the latent nodes' values 0 and unobserved."""
    latent = torch.tensor([name in set(graph.latent) for name in graph.names])
    columns = torch.tensor([c for name in graph.latent for c in range(layout.value_slices[name].start,
                                                                       layout.value_slices[name].stop)])

    def split(side: Split) -> Split:
        values = side.values.clone()
        values[..., columns] = 0
        return Split(side.features, values, side.observed & ~latent, side.graphs)

    return TaskBatch(graph, split(batch.support), split(batch.query))


def speed(repeats: int, tasks: int, shots: int) -> dict[str, float]:
    torch.set_num_threads(1)
    family = gm.load_family("compositional-dag")
    latent_graph = half_latent(family.graph)
    batch = family.sample(tasks, shots, shots, seed=0)
    latent_batch = hidden(batch, latent_graph, family.layout)
    runs = {}
    for label, graph, data in (("fully observed", family.graph, batch), ("half latent", latent_graph, latent_batch)):
        torch.manual_seed(0)
        model = gm.GraphMetaLearner(graph, algorithm="maml", inner_steps=1)
        runs[label] = (model, torch.optim.Adam(model.parameters(), lr=1e-3), data)
    times: dict[str, list[float]] = {label: [] for label in runs}
    for repeat in range(repeats + 1):
        for label, (model, optimizer, data) in runs.items():
            start = time.perf_counter()
            optimizer.zero_grad()
            loss, _ = model.meta_loss(data, metrics=False)
            loss.backward()
            optimizer.step()
            if repeat:  # the first is a warm-up
                times[label].append(time.perf_counter() - start)
    return {label: statistics.median(values) for label, values in times.items()}


def cell(values: torch.Tensor) -> str:
    """``values``' mean ± the half-width of its 95% interval, as a table cell."""
    mean, half = mean_interval(values)
    return f"{mean:.4f} ± {half:.4f}"


def quality_table(scores: dict[str, torch.Tensor], seconds: dict[str, float], chosen: dict[str, int]) -> list[str]:
    """The lines of one quality table: every learner's sink MSE, its paired difference from the
    graph's, and the inner steps its validation tasks chose."""
    return [
        "Mean over the held-out tasks ± the half-width of its 95% Student-t interval; the paired "
        "difference is the graph's MSE minus the learner's, task by task (negative: the graph is better).", "",
        "| learner | inner steps (chosen on validation) | sink query MSE | graph − learner (paired) | "
        "training seconds (every candidate) |", "| --- | --- | --- | --- | --- |",
        *(f"| {label} | {chosen[label]} | {cell(scores[label])} | "
          f"{'' if label == LABELS[0] else cell(scores[LABELS[0]] - scores[label])} | {seconds[label]:.0f} |"
          for label in LABELS), "",
    ]


def relative_lines(scores: dict[str, torch.Tensor], targets: bool) -> list[str]:
    """The graph's mean sink MSE against the monolithic and the fully supervised learner's; with
    ``targets``, whether it meets those of compositional-dag-latent (30% below monolithic, within 1.5x)."""
    graph, mono, full = (mean_interval(scores[label])[0] for label in LABELS)
    change = 100 * abs(1 - graph / mono)
    lines = [f"- graph vs monolithic: {graph / mono:.2f}x ({change:.1f}% {'lower' if graph <= mono else 'higher'})",
             f"- graph vs fully supervised: {graph / full:.2f}x"]
    if targets:
        lines[0] += f" (target: at least 30% lower): {'met' if graph <= 0.7 * mono else 'missed'}"
        lines[1] += f" (target: at most 1.5x): {'met' if graph <= 1.5 * full else 'missed'}"
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--message-passing", action="store_true",
                        help="train every learner with message passing on (the model's default; off by default here)")
    parser.add_argument("--inner-steps", type=int, nargs="+", default=[1, 2, 3],
                        help="the inner-step counts each learner is meta-trained with; validation tasks choose one")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    steps, repeats = (20, 2) if args.quick else (args.steps, args.repeats)
    torch.set_num_threads(1)
    timing = speed(repeats, args.tasks, 5)
    candidates = tuple(args.inner_steps)
    scores, seconds, chosen = quality("compositional-dag-latent", steps, args.tasks, 5, 10, args.seed,
                                      args.message_passing, candidates)
    ratio = timing["half latent"] / timing["fully observed"]
    functions = {shots: quality("functions-latent", steps, args.tasks, shots, 64, args.seed, args.message_passing,
                                candidates) for shots in (5, 16)}
    counts = ", ".join(map(str, candidates[:-1])) + " or " * (len(candidates) > 1) + str(candidates[-1])
    algorithm = (f"MAML at 0.1, {counts} inner steps, "
                 f"message passing {'on' if args.message_passing else 'off'}")

    lines = [
        "# Latent subtasks", "",
        f"`{invocation()}`, graphmeta {graphmeta_commit()}, {utc_now()}, CPU, 1 thread.", "",
        f"## Query MSE on the observed sinks (compositional-dag-latent, 16 nodes, K = 5, {algorithm}, "
        f"{steps} meta-steps of {args.tasks} tasks, {len(scores[LABELS[0]])} held-out tasks)", "",
        *quality_table(scores, seconds, chosen), *relative_lines(scores, targets=True), "",
        f"## Meta-step time, 64-node compositional-dag, {args.tasks} tasks, K = 5 (median of {repeats})", "",
        "| graph | seconds per meta-step |", "| --- | --- |",
        *(f"| {label} | {value:.4f} |" for label, value in timing.items()), "",
        f"- half latent / fully observed: {ratio:.2f}x (target: at most 1.5x): {'met' if ratio <= 1.5 else 'missed'}",
        *(line for shots, (scores_k, seconds_k, chosen_k) in functions.items() for line in (
            "", f"## Query MSE on the observed sink (functions-latent, K = {shots}, 64 query points, {algorithm}, "
            f"{steps} meta-steps of {args.tasks} tasks, {len(scores_k[LABELS[0]])} held-out tasks)", "",
            *quality_table(scores_k, seconds_k, chosen_k), *relative_lines(scores_k, targets=False))),
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(text, destination(args.out, RESULTS, args.quick))


if __name__ == "__main__":
    main()
