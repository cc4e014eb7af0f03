"""Does adaptation ever make a new group worse? graphmeta's own rows at 0, 1, 5, 20 and 100 steps.

On the grouped tables of ``benchmarks/grouped_tables.py`` (their first fold each, the same
families and training: ``gm.Trainer(model, family, steps=300, shots=[5, 50])``), two of its
rows, the default (per-column learners: Linear for numbers, adapted in closed form) and MLP nodes
(MAML, one trained inner step of 0.01 at the library's default), adapt each held-out group's K
support rows with 0 (no adaptation), 1, 5, 20 and 100 steps. Scored on the target column, in the
family's standardised units: the mean query MSE over held-out groups (episodes, for RAND HIE), how
many groups end worse than without adaptation (query MSE above it by more than 1e-6), and how many
values are not finite. The support guard (:mod:`graphmeta.adapt.support_guard`) keeps the support
loss from rising; this measures the query side, which it does not promise.

    python benchmarks/adaptation_steps.py            # writes benchmarks/results/adaptation_steps.md
    python benchmarks/adaptation_steps.py --quick    # sleepstudy, 20 meta-steps, printed only
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _results import destination, graphmeta_commit, invocation, utc_now, write_results
from grouped_tables import DATASETS, SETTINGS, TRAIN, episodes, trained, without_learners

import graphmeta as gm
from graphmeta.train.evaluation import query_results

RESULTS = Path(__file__).resolve().parent / "results" / "adaptation_steps.md"
STEPS = (0, 1, 5, 20, 100)
ROWS = ("default", "mlp")
WORSE_BY = 1e-6


def measure(name: str, meta_steps: int, run_dir: str) -> list[dict]:
    """Per K and row: the target query MSE per held-out episode at every number of steps."""
    dataset = DATASETS[name]
    table = dataset.table()
    fold = dataset.folds(table)[0]
    base = gm.DataFrameFamily(table, seed=0, **fold.arguments)
    arguments = {**fold.arguments, "graph": without_learners(base)}
    target = base.graph.names.index(dataset.target)
    records = []
    for row in ROWS:
        learner, settings = SETTINGS[row]
        family = gm.DataFrameFamily(table, seed=0, **arguments, learner=learner)
        model = trained(family, settings, run_dir, f"{name}-{row}", meta_steps)
        for shots in (5, 20) if 20 in dataset.shots else (3, 5):
            tasks = episodes(family, "test", shots, dataset, seed=1)
            mse = {steps: query_results(model, tasks, 64, lambda chunk, steps=steps: model.adapt(chunk, steps=steps)
                                        ).mse[:, target].double().numpy() for steps in STEPS}
            records.append({"dataset": name, "row": row, "shots": shots, "mse": mse})
            print(f"  {name} {row} K={shots}: " + ", ".join(f"{s} steps {np.nanmean(v):.4f}" for s, v in mse.items()),
                  file=sys.stderr)
    return records


def report(records: list[dict], command: str, minutes: float) -> str:
    lines = ["# Adaptation steps on new groups: never worse than no adaptation?", "",
             f"`{command}` — run of {utc_now()}, {minutes:.1f} min, graphmeta {graphmeta_commit()}, 1 thread.", "",
             __doc__.split("\n\n")[1].replace("\n", " "), "",
             "| dataset | row | K | " + " | ".join(f"MSE, {s} steps" for s in STEPS)
             + " | groups worse than 0 steps (1 / 5 / 20 / 100) | non-finite |",
             "| --- | --- | ---: | " + " | ".join("---:" for _ in STEPS) + " | --- | ---: |"]
    worst = 0
    for record in records:
        mse = record["mse"]
        worse = [int((mse[s] > mse[0] + WORSE_BY).sum()) for s in STEPS[1:]]
        worst = max(worst, *worse)
        groups = len(mse[0])
        nonfinite = sum(int((~np.isfinite(v)).sum()) for v in mse.values())
        lines.append(f"| {record['dataset']} | {record['row']} | {record['shots']} | "
                     + " | ".join(f"{np.nanmean(mse[s]):.4f}" for s in STEPS)
                     + f" | {' / '.join(map(str, worse))} of {groups} | {nonfinite} |")
    mean_worse = [f"{r['dataset']} {r['row']} K={r['shots']} at {s} steps" for r in records for s in STEPS[1:]
                  if np.nanmean(r["mse"][s]) > np.nanmean(r["mse"][0]) + WORSE_BY]
    lines += ["", f"Per held-out group (the issue's target: never worse than no adaptation on a group, nothing "
              f"non-finite): {'met' if worst == 0 else 'missed'}; the most groups worse in one cell: {worst}. "
              "No estimator can promise it group by group: shrinkage toward a group's own rows is better on "
              "average, and worse for a group whose truth is the prior's.",
              "", "On average over the held-out groups (mean MSE above no adaptation's): "
              + ("never." if not mean_worse else "; ".join(mean_worse) + ".")]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=None)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    names = args.datasets or (["sleepstudy"] if args.quick else list(DATASETS))
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as run_dir:
        records = [record for name in names for record in measure(name, 20 if args.quick else TRAIN["steps"], run_dir)]
    text = report(records, invocation(argv), (time.perf_counter() - start) / 60)
    print(text)
    write_results(text, destination(args.out, RESULTS, args.quick))


if __name__ == "__main__":
    main()
