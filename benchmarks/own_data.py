"""Your own data: leave-one-plan-out on the RAND Health Insurance Experiment, against the table baselines.

    python benchmarks/own_data.py              # the full run, writes benchmarks/results/own_data.md
    python benchmarks/own_data.py --quick      # one fold, K = 5, a few steps: a smoke test, writes nothing
    python benchmarks/own_data.py --write-sample examples/data/rand_hie_sample.csv

The data are the RAND Health Insurance Experiment records bundled with statsmodels
(``statsmodels.datasets.randhie``, 20,190 person-years, public domain; statsmodels installs with
pgmpy, so no download): a task is one of the six insurance plans people were randomised to
(coinsurance 0-100%, with or without an individual deductible). Every plan in turn is the test
task, the next one (in the order below) the validation task, and the other four train. The
graph over health, chronic disease count, physical limitation and outpatient visits is learned
from each fold's training rows (``graphmeta.taskgraph_from_data``, conditional-Gaussian BIC); the plan's
incentive payment and deductible are input features of ``visits``.

For every fold and support size K, on the same test episodes (K support and QUERY query rows of
the held-out plan): graphmeta with message passing (after adaptation, and with no adaptation),
the same without message passing, fresh learners trained on the K rows with their steps and rate
chosen on the validation plan, a pooled model of every training row (rate and early stopping
on the validation plan), not adapted, and the statistician's rows
(``graphmeta.train.classical_baselines``, fitted once per fold on the training plans' rows): a
linear mixed model's BLUP, per-plan ridge toward pooled least squares, and the support mean.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import ROOT, destination, graphmeta_commit, write_results  # noqa: E402

import graphmeta as gm  # noqa: E402
from graphmeta.families import DataFrameFamily  # noqa: E402
from graphmeta.train.classical_baselines import CLASSICAL_METHODS, classical_baselines  # noqa: E402
from graphmeta.train.evaluation import (  # noqa: E402
    Estimate,
    MethodResult,
    choose_scratch_settings,
    fit_fresh,
    fit_pooled,
    for_tasks,
    nanmean,
    query_results,
)

PLANS = ("coins0", "coins0-idp", "coins25", "coins50", "coins95", "coins100-idp")
SHOTS = (5, 20, 50)
QUERY = 50
STEPS = 250
META_BATCH = 8
VAL_EPISODES = 16
TEST_EPISODES = 60
MODEL = {"algorithm": "maml", "inner_steps": 1, "inner_lr": 0.1}
OUTER_LR = 3e-3
METHODS = {"no_adaptation": "graphmeta, no adaptation", "adapted": "graphmeta, message passing, adapted",
           "no_message_passing": "graphmeta, no message passing, adapted",
           "from_scratch_tuned": "from scratch on the K rows (tuned)", "pooled": "pooled model, no adaptation",
           **{method: CLASSICAL_METHODS[method] for method in ("mixed_model", "group_ridge", "support_mean")}}


def rand_hie_table() -> pd.DataFrame:
    """The RAND HIE records as one table: the plan (the task), visits, health, limitation, chronic, incentive, deductible."""
    from statsmodels.datasets import randhie

    data = randhie.load_pandas().data
    coinsurance = np.rint(np.expm1(data["lncoins"])).astype(int)
    plan = [f"coins{c}" + ("-idp" if idp else "") for c, idp in zip(coinsurance, data["idp"].astype(int))]
    health = np.select([data["hlthp"] == 1, data["hlthf"] == 1, data["hlthg"] == 1], ["poor", "fair", "good"],
                       "excellent")
    return pd.DataFrame({
        "plan": plan,
        "visits": data["mdvis"].astype(int),                   # outpatient visits to a doctor in the year
        "health": pd.Categorical(health, ["excellent", "good", "fair", "poor"]),  # self-rated
        "limitation": data["physlm"].astype(bool),             # has a physical limitation
        "chronic": data["disea"],                              # number of chronic diseases
        "incentive": data["lpi"],                              # log annual participation incentive payment
        "deductible": data["fmde"],                            # log of the maximum deductible expenditure
    })


def family_for(table: pd.DataFrame, test: str, val: str) -> DataFrameFamily:
    return DataFrameFamily(table, task_column="plan", features={"visits": ["incentive", "deductible"]},
                           test_tasks=[test], val_tasks=[val], seed=0)


def trained(family: DataFrameFamily, shots: int, message_passing: bool, steps: int, run_dir: str) -> gm.GraphMetaLearner:
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph, **MODEL, message_passing=message_passing)
    trainer = gm.Trainer(model, family, steps=steps, shots=shots, query_shots=QUERY, meta_batch_size=META_BATCH,
                         outer_lr=OUTER_LR, val_every=50, val_tasks=VAL_EPISODES, run_dir=run_dir,
                         name=f"{family.tasks['test'][0]}-k{shots}-mp{int(message_passing)}", progress=False)
    trainer.fit()  # ends holding the weights of the best validation
    return trainer.model.eval()


def run_fold(table: pd.DataFrame, test: str, val: str, shots_list: tuple[int, ...], steps: int, episodes: int,
             run_dir: str) -> dict[int, dict[str, pd.DataFrame]]:
    """``{K: {method: per-episode frame}}``: the overall query loss and the per-node errors in the table's units."""
    family = family_for(table, test, val)
    pooled_validation = family.sample(VAL_EPISODES, 5, QUERY, "val", seed=1)
    pooled, pooled_steps, pooled_rate = fit_pooled(gm.GraphMetaLearner(family.graph), family.pooled_rows("train"),
                                                   pooled_validation, seed=0)
    print(f"  {test}: graph {family.graph.edges}; pooled {pooled_steps} steps at {pooled_rate:g}", file=sys.stderr)
    grouped = family.grouped_rows("train")  # the classical baselines fit on it once, for every K
    results = {}
    for shots in shots_list:
        with_mp, without_mp = (trained(family, shots, mp, steps, run_dir) for mp in (True, False))
        tasks = family.sample(episodes, shots, QUERY, "test", seed=2)
        validation = family.sample(VAL_EPISODES, shots, QUERY, "val", seed=1)
        scratch_steps, scratch_rate = choose_scratch_settings(with_mp, validation, seed=0)
        adapt = {
            "no_adaptation": (with_mp, lambda chunk: with_mp.adapt(chunk, steps=0)),
            "adapted": (with_mp, lambda chunk: with_mp.adapt(chunk)),
            "no_message_passing": (without_mp, lambda chunk: without_mp.adapt(chunk)),
            "from_scratch_tuned": (with_mp, lambda chunk: fit_fresh(with_mp, chunk, scratch_steps, scratch_rate, 0)),
            "pooled": (with_mp, lambda chunk: for_tasks(pooled, chunk.num_tasks)),
        }
        classical, _ = classical_baselines(family.graph, grouped, tasks, validation)
        scored = {method: query_results(model, tasks, episodes, adapter) for method, (model, adapter) in adapt.items()}
        scored |= {method: MethodResult(**classical[method]) for method in METHODS if method in classical}
        results[shots] = {}
        for method, result in scored.items():
            frame = family.query_errors(result.mse, result.accuracy)
            frame.insert(0, "query loss", nanmean(result.loss, dim=1).numpy())
            results[shots][method] = frame
        print(f"  {test}, K={shots}: scratch {scratch_steps} steps at {scratch_rate:g}; query loss "
              + ", ".join(f"{m} {f['query loss'].mean():.3f}" for m, f in results[shots].items()), file=sys.stderr)
    return results


def estimate(values: pd.Series) -> Estimate:
    return Estimate.over_tasks(torch.tensor(values.to_numpy(dtype=np.float64)))


def report(results: dict[str, dict[int, dict[str, pd.DataFrame]]], shots_list: tuple[int, ...], command: str,
           minutes: float, steps: int, episodes: int) -> str:
    lines = [
        "# Your own data: leave-one-plan-out on the RAND Health Insurance Experiment",
        "",
        f"`{command}` — run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {minutes:.1f} min on this "
        f"project's 2-core CPU machine shared with other jobs (1 thread), graphmeta {graphmeta_commit()}.",
        "",
        "**Data.** `statsmodels.datasets.randhie`: 20,190 person-years of the RAND Health Insurance Experiment "
        "(Manning et al. 1987; the subset of Cameron & Trivedi 2005), public domain, shipped inside the statsmodels "
        "wheel (installed with pgmpy), so nothing is downloaded. A task is one of the six insurance plans people were "
        "randomised to: " + ", ".join(f"`{p}`" for p in PLANS) + " (coinsurance rate in %, `-idp`: an individual "
        "deductible), 1,074 to 6,822 rows each. Nodes: `health` (self-rated, 4 classes), `chronic` (chronic "
        "diseases, a number), `limitation` (physical limitation, 2 classes) and `visits` (outpatient visits in the "
        "year); `incentive` and `deductible` (the plan's payment terms, logs) are input features of `visits`.",
        "",
        f"**Protocol.** Each plan in turn is the test task and the next plan in the list above the validation task; "
        f"the other four train. Per fold the graph is learned from the training rows (`graphmeta.taskgraph_from_data`), numbers "
        f"are standardised with the training rows' statistics, and for each K a graphmeta model (MAML, "
        f"{MODEL['inner_steps']} inner step at rate {MODEL['inner_lr']}, {steps} meta-steps of {META_BATCH} episodes, "
        f"Adam {OUTER_LR}, the best of every 50 steps on {VAL_EPISODES} validation episodes) is meta-trained with and "
        f"without message passing. All methods are scored on the same {episodes} test episodes per fold (K support "
        f"and {QUERY} query rows of the held-out plan, drawn without replacement): "
        f"{len(results) * episodes} episodes per K over the {len(results)} folds. Query loss: mean over the four nodes of the "
        "standardised squared error (regression) or cross-entropy (classification), parents teacher-forced. Errors "
        "per node are in the table's own units: RMSE in visits and in chronic diseases, accuracy for the classes. "
        "The from-scratch baseline's steps and rate come from 10/30/100/300 steps x rates 0.001/0.01/0.1 on the "
        "validation plan; the pooled model trains on every training row (minibatches of 256) with its rate "
        "(0.001/0.01) and early stopping on the validation plan. ± is the 95% interval over episodes; episodes of "
        "one plan share its rows, so it says little about how another plan would fare.",
        "",
    ]
    for shots in shots_list:
        merged = {method: pd.concat([results[plan][shots][method] for plan in results], ignore_index=True)
                  for method in METHODS}
        columns = [c for c in merged["adapted"].columns]
        header = ["method", *columns, "query loss - pooled (paired)"]
        lines += [f"## K = {shots} support rows", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" + "---:|" * (len(header) - 1)]
        for method, frame in merged.items():
            paired = frame["query loss"] - merged["pooled"]["query loss"]
            cells = [METHODS[method], *(f"{estimate(frame[c])}" for c in columns),
                     "" if method == "pooled" else f"{estimate(paired):+}"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    lines += ["## Per held-out plan: query loss, adapted with message passing - pooled (paired)", "",
              "| held-out plan | " + " | ".join(f"K = {k}" for k in shots_list) + " |",
              "|---|" + "---:|" * len(shots_list)]
    for plan in results:
        cells = [f"{estimate(results[plan][k]['adapted']['query loss'] - results[plan][k]['pooled']['query loss']):+}"
                 for k in shots_list]
        lines.append(f"| `{plan}` | " + " | ".join(cells) + " |")
    lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="one fold, K = 5, 20 meta-steps; writes nothing")
    parser.add_argument("--output", type=Path, help="where the report goes (default: benchmarks/results/own_data.md)")
    parser.add_argument("--write-sample", type=Path, metavar="CSV",
                        help="write the example's sample (300 rows of each plan, seeded) to CSV and stop")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)
    table = rand_hie_table()
    if args.write_sample:
        sample = table.groupby("plan", sort=False).sample(300, random_state=0)
        args.write_sample.parent.mkdir(parents=True, exist_ok=True)
        sample.to_csv(args.write_sample, index=False)
        print(f"wrote {len(sample)} rows to {args.write_sample}", file=sys.stderr)
        return
    plans = PLANS[:1] if args.quick else PLANS
    shots_list = (5,) if args.quick else SHOTS
    steps, episodes = (20, 8) if args.quick else (STEPS, TEST_EPISODES)
    start = time.perf_counter()
    results = {}
    with tempfile.TemporaryDirectory() as run_dir:
        for i, plan in enumerate(plans):
            results[plan] = run_fold(table, plan, PLANS[(i + 1) % len(PLANS)], shots_list, steps, episodes, run_dir)
    command = "python benchmarks/own_data.py" + (" --quick" if args.quick else "")
    text = report(results, shots_list, command, (time.perf_counter() - start) / 60, steps, episodes)
    print(text)
    write_results(text, destination(args.output, ROOT / "benchmarks" / "results" / "own_data.md", args.quick))


if __name__ == "__main__":
    main()
