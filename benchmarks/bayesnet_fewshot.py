"""Few-shot Bayesian-network fitting: pgmpy's estimators vs empirical Bayes vs graphmeta vs the Bayes limit.

For each network (asia, child, alarm) and task family (``dirichlet``: every CPD column drawn
from Dir(alpha theta*), alpha = 10; ``latent``: one 2-d task factor shifts every CPD's logits,
s = 1), a new site's network is fitted from K support rows, K in {1, 2, 5, 10, 20, 50, 100,
200}, and scored on 500 query rows of the same site, over 50 test sites:

* query log-likelihood per row (nats, mean over sites, 95% Student-t interval over sites);
* mean per-node KL(true || estimate): for each variable, sum_u P(u) KL(theta(.|u) || theta_hat(.|u))
  with P(u) the frequency of parent configuration u among the site's query rows, averaged
  over variables and sites.

Methods:

* ``pgmpy BDeu``: ``pgmpy.parameter_estimator.DiscreteBayesianEstimator`` (BDeu, equivalent
  sample size 5, pgmpy's default), fitted by pgmpy on the support rows alone with
  ``state_names`` given. (pgmpy's MLE gives a state unseen in a seen column probability 0, so
  its log-likelihood is -inf at every K this benchmark runs; it is left out.)
* ``pooled EB``: the Dirichlet posterior mean with prior c * theta_hat, theta_hat the pooled
  (Jeffreys-smoothed) frequencies of 160 meta-training sites, c chosen on the other 40 at
  the same K: the classical transfer baseline, tuned for every K.
* ``graphmeta one fit``: :class:`graphmeta.bayesnet.BayesNetMetaLearner` with its defaults
  (message passing on), meta-fitted once on the 200 meta-training sites (it holds out its own
  last 20% to choose its stopping step) with ``meta_fit``'s default support sizes, 1 to 200
  rows, then adapted at every K.
* ``graphmeta specialised``: the same, meta-fitted with ``shots=K`` for one K (``--specialised``,
  default 5 and 20) and scored at that K; on the families of ``--specialised-priors`` (default
  both; on ``dirichlet`` the Bayes limit bounds any specialised fit, so it is the tighter check).
* ``limit``: for ``dirichlet`` the Bayes-optimal posterior mean under the true prior,
  (alpha theta* + n) / (alpha + n); for ``latent`` theta(z_hat) with the true W and theta*
  at the MAP latent z_hat (no learner can beat these on average, up to the MAP step).

Log-likelihoods and KLs are computed from the CPD tables with numpy (one gather per
query set), not with pgmpy inference. The table goes to a markdown file and, as numbers, to a
JSON file of the same stem (see :func:`results_json`); ``--replot`` redraws the figure from such
a JSON file without fitting anything. Usage::

    python benchmarks/bayesnet_fewshot.py                  # full table (see the results file for the time)
    python benchmarks/bayesnet_fewshot.py --quick          # asia only, fewer meta-training steps
    python benchmarks/bayesnet_fewshot.py --networks asia child --specialised 5 20 100 --specialised-priors latent
    python benchmarks/bayesnet_fewshot.py --replot benchmarks/results/bayesnet_fewshot.json
"""

from __future__ import annotations

import argparse
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _results import destination, graphmeta_commit, invocation, utc_now, write_results
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FixedLocator, FuncFormatter
from scipy import stats

import graphmeta
from graphmeta.bayesnet import BayesNetMetaLearner, NetworkStructure
from graphmeta.bayesnet.baselines import PooledEmpiricalBayes, dirichlet_posterior, latent_posterior

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("asia", "child", "alarm")
PRIORS = ("dirichlet", "latent")
SHOTS = (1, 2, 5, 10, 20, 50, 100, 200)
SPECIALISED = (5, 20)
TRAIN_TASKS, TRAIN_ROWS, VAL_TASKS = 200, 500, 40
QUERY_ROWS = 500
ONE_FIT, SPECIALISED_FIT = "graphmeta one fit", "graphmeta specialised"
METHODS = ("pgmpy BDeu", "pooled EB", ONE_FIT, SPECIALISED_FIT, "limit")
GAP_LINEAR_WITHIN = 0.01  # nats/row: the figure's y-axis is linear within +-this, logarithmic beyond
DODGE = 0.05  # shift of log K between neighbouring methods in the figure, so that equal values sit side by side


@dataclass(frozen=True)
class Score:
    """Mean log-likelihood per row with its 95% half-width (over sites) and mean per-node KL."""

    log_likelihood: float
    ci95: float
    kl: float

    @classmethod
    def of(cls, per_site_ll: np.ndarray, per_site_kl: np.ndarray) -> Score:
        mean = float(per_site_ll.mean())
        spread = float(per_site_ll.std(ddof=1)) if np.isfinite(mean) else math.nan
        half = float(stats.t.ppf(0.975, len(per_site_ll) - 1) * spread / math.sqrt(len(per_site_ll)))
        return cls(mean, half, float(per_site_kl.mean()))

    def cell(self) -> str:
        if not np.isfinite(self.log_likelihood):
            return "-inf (KL inf)"
        return f"{self.log_likelihood:.3f} ± {self.ci95:.3f} (KL {self.kl:.4f})"


def per_node_kl(structure: NetworkStructure, truth: np.ndarray, estimate: np.ndarray, query: np.ndarray) -> np.ndarray:
    """``[T]``: the mean over variables of ``sum_u P(u) KL(truth(.|u) || estimate(.|u))``, P(u) from the query rows."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(truth > 0, truth * (np.log(truth) - np.log(estimate)), 0.0)
    column_kl = terms.sum(-1)  # [T, columns]
    frequency = structure.counts(query).sum(-1) / query.shape[1]
    with np.errstate(invalid="ignore"):
        weighted = np.where(frequency > 0, frequency * column_kl, 0.0)
    per_node = np.add.reduceat(weighted, structure.table.offsets, axis=1)
    return per_node.mean(1)


def pgmpy_tables(structure: NetworkStructure, supports: list) -> np.ndarray:
    """CPD tables fitted by pgmpy's BDeu estimator itself, one network per support table."""
    from pgmpy.models import DiscreteBayesianNetwork
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator

    tables = []
    for frame in supports:
        model = DiscreteBayesianNetwork(structure.graph.edges)
        model.add_nodes_from(structure.names)
        fitted = model.fit(frame, estimator=DiscreteBayesianEstimator(
            state_names=structure.states, prior_type="BDeu", equivalent_sample_size=5))
        tables.append(structure.pack_network(fitted))
    return np.stack(tables)


def limit_tables(family: graphmeta.families.BayesNetFamily, structure: NetworkStructure, counts: np.ndarray
                 ) -> np.ndarray:
    theta_star = structure.table.pack(family.theta_star)
    if family.prior == "dirichlet":
        return dirichlet_posterior(counts, family.alpha * theta_star)
    weights = np.moveaxis(structure.table.pack({name: np.moveaxis(w, -1, 0)
                                                for name, w in family.latent_weights.items()}), 0, -1)
    with np.errstate(divide="ignore"):
        log_theta_star = np.where(structure.table.padding(), -np.inf, np.log(theta_star))
    return latent_posterior(log_theta_star, weights, family.scale, counts)


def run_block(network: str, prior: str, specialised: tuple[int, ...], test_tasks: int, fit_options: dict,
              timings: dict) -> dict[int, dict[str, Score]]:
    """Every method at every K of :data:`SHOTS` for one network and family (the specialised fit
    at the K of ``specialised`` only)."""
    family = graphmeta.load_family(f"{network}-{prior}")
    structure = NetworkStructure.from_pgmpy(network)
    train_frames = family.sample_dataframes(TRAIN_TASKS, TRAIN_ROWS, "train", seed=0)
    test_frames = family.sample_dataframes(test_tasks, max(SHOTS) + QUERY_ROWS, "test", seed=0)
    train_codes = structure.encode(train_frames)
    test_codes = structure.encode(test_frames)
    query = test_codes[:, max(SHOTS):]
    truth = structure.table.pack(family.task_cpds(test_tasks, "test", 0))
    one_fit = meta_fit(network, prior, train_frames, None, fit_options, timings)
    results: dict[int, dict[str, Score]] = {}
    for k in SHOTS:
        supports = [frame.iloc[:k] for frame in test_frames]
        counts = structure.counts(test_codes[:, :k])
        start = time.perf_counter()
        tables = {"pgmpy BDeu": pgmpy_tables(structure, supports)}
        timings["pgmpy"] = timings.get("pgmpy", 0.0) + time.perf_counter() - start
        held_out = TRAIN_TASKS - VAL_TASKS
        tables["pooled EB"] = PooledEmpiricalBayes.fit(structure, train_codes[:held_out], train_codes[held_out:],
                                                       k).tables(counts)
        tables[ONE_FIT] = one_fit.cpd_tables(supports)
        if k in specialised:
            specialised_fit = meta_fit(network, prior, train_frames, k, fit_options, timings)
            tables[SPECIALISED_FIT] = specialised_fit.cpd_tables(supports)
        tables["limit"] = limit_tables(family, structure, counts)
        with np.errstate(divide="ignore"):
            results[k] = {method: Score.of(structure.log_likelihood(table, query).mean(1),
                                           per_node_kl(structure, truth, table, query))
                          for method, table in tables.items()}
        line = ", ".join(f"{m} {s.log_likelihood:.3f}" for m, s in results[k].items())
        print(f"{network}-{prior} K={k}: {line}", flush=True)
    return results


def meta_fit(network: str, prior: str, frames: list, shots: int | None, fit_options: dict,
             timings: dict) -> BayesNetMetaLearner:
    """A learner meta-fitted on ``frames`` for ``shots`` (``None``: ``meta_fit``'s default range)."""
    start = time.perf_counter()
    torch.manual_seed(0)
    learner = BayesNetMetaLearner(network)
    summary = learner.meta_fit(frames, progress=False, **fit_options, **({} if shots is None else {"shots": shots}))
    elapsed = time.perf_counter() - start
    timings["graphmeta"] = timings.get("graphmeta", 0.0) + elapsed
    timings["fits"] = timings.get("fits", 0) + 1
    print(f"  {network}-{prior} {'one fit' if shots is None else f'specialised K={shots}'}: {summary['steps']} steps "
          f"(best {summary['best_step']}), {elapsed:.0f}s", flush=True)
    return learner


def targets(results: dict[tuple[str, str], dict[int, dict[str, Score]]]) -> list[str]:
    """The acceptance checks, one line each."""
    lines = []
    for (network, prior), block in results.items():
        ll = {k: {method: score.log_likelihood for method, score in scores.items()} for k, scores in block.items()}
        below_eb = {k: scores["pooled EB"] - scores[ONE_FIT] for k, scores in ll.items()}
        worst = max(below_eb, key=below_eb.get)
        lines.append(f"{network}-{prior}: one fit - pooled EB from {-below_eb[worst]:+.3f} (K={worst}) to "
                     f"{-min(below_eb.values()):+.3f} nats/row (target >= -0.01 at every K): "
                     f"{'met' if below_eb[worst] <= 0.01 else 'MISSED'}")
        for k, scores in ll.items():
            if SPECIALISED_FIT in scores:
                behind = scores[SPECIALISED_FIT] - scores[ONE_FIT]
                lines.append(f"{network}-{prior} K={k}: one fit - specialised = {-behind:+.3f} nats/row "
                             f"(target >= -0.05): {'met' if behind <= 0.05 else 'MISSED'}")
        if prior == "dirichlet":
            below_limit = {k: scores["limit"] - scores[ONE_FIT] for k, scores in ll.items()}
            worst = max(below_limit, key=below_limit.get)
            verdict = "met" if below_limit[worst] <= 0.03 else "MISSED"
            lines.append(f"{network}-dirichlet: one fit at most {below_limit[worst]:.3f} nats/row below the Bayes "
                         f"limit (K={worst}; target <= 0.03 at every K): {verdict}")
        else:
            for k in (5, 20):
                scores = ll[k]

                def closed_by(method: str) -> float:
                    return (scores[method] - scores["pooled EB"]) / (scores["limit"] - scores["pooled EB"])

                closed = closed_by(ONE_FIT)
                special = f", specialised {closed_by(SPECIALISED_FIT):.0%}" if SPECIALISED_FIT in scores else ""
                lines.append(f"{network}-latent K={k}: one fit closes {closed:.0%} of the pooled-EB-to-limit gap"
                             f"{special} (target >= 85%): {'met' if closed >= 0.85 else 'MISSED'}")
    return lines


def markdown(results: dict, checks: list[str], header: str) -> str:
    lines = [header, ""]
    for (network, prior), block in results.items():
        lines += [f"### {network} / {prior}", "",
                  "| method | " + " | ".join(f"K = {k}" for k in SHOTS) + " |",
                  "| --- |" + " --- |" * len(SHOTS)]
        for method in [method for method in METHODS if any(method in block[k] for k in SHOTS)]:
            lines.append(f"| {method} | " + " | ".join(block[k][method].cell() if method in block[k] else "-"
                                                       for k in SHOTS) + " |")
        lines.append("")
    lines += ["### Targets", "", *[f"- {line}" for line in checks], ""]
    return "\n".join(lines)


def results_json(results: dict[tuple[str, str], dict[int, dict[str, Score]]], header: str) -> dict:
    """The numbers of a run: ``header`` (the markdown table's) and one record per network, family, K and method,

    ``{"network", "family", "K", "method", "log_likelihood", "ci95", "kl"}``: the mean query
    log-likelihood per row, its 95% half-width over sites and the mean per-node KL.
    """
    return {"header": header, "results": [
        {"network": network, "family": prior, "K": k, "method": method, "log_likelihood": score.log_likelihood,
         "ci95": score.ci95, "kl": score.kl}
        for (network, prior), block in results.items() for k, scores in block.items()
        for method, score in scores.items()]}


def results_from_json(data: dict) -> dict[tuple[str, str], dict[int, dict[str, Score]]]:
    """The results that :func:`results_json` wrote, as :func:`run_block` returns them per network and family."""
    results: dict[tuple[str, str], dict[int, dict[str, Score]]] = {}
    for record in data["results"]:
        block = results.setdefault((record["network"], record["family"]), {})
        block.setdefault(record["K"], {})[record["method"]] = Score(record["log_likelihood"], record["ci95"],
                                                                    record["kl"])
    return results


def plot(results: dict[tuple[str, str], dict[int, dict[str, Score]]], path: Path | None = None) -> Figure:
    """One panel per network and family: every method's gap to the Bayes limit against K; saved to ``path`` if given.

    The gap is ``ll(method) - ll(limit)``, the difference of mean query log-likelihoods per row
    (0: the limit; below: worse). The y-axis is symlog, linear within +-:data:`GAP_LINEAR_WITHIN`
    and logarithmic beyond, so BDeu's gaps of nats at small K and the hundredths between the
    other methods near the limit both show. Method ``i`` is drawn at ``K * exp((i - 2) * DODGE)``,
    so methods with equal values show as neighbouring markers; the one fit's thick line lies under
    the others, so a line that coincides with it shows inside it. One legend for the figure, between
    the title and the panels.
    """
    networks = list(dict.fromkeys(network for network, _ in results))
    height = 3.4 * len(networks) + 0.8
    figure = Figure(figsize=(5.2 * len(PRIORS), height))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(networks), len(PRIORS), squeeze=False)
    styles = {"pgmpy BDeu": {"color": "tab:gray", "marker": "v"},
              "pooled EB": {"color": "tab:blue", "marker": "o"},
              ONE_FIT: {"color": "tab:red", "marker": "D", "linewidth": 2.5, "zorder": 1.9},
              SPECIALISED_FIT: {"color": "tab:green", "marker": "s", "linestyle": "none", "markersize": 7},
              "limit": {"color": "black", "marker": "x", "linestyle": "--"}}
    for (network, prior), block in results.items():
        axis = axes[networks.index(network)][PRIORS.index(prior)]
        shots = sorted(block)
        for i, method in enumerate(METHODS):
            present = [k for k in shots if method in block[k]]
            if present:
                gaps = [block[k][method].log_likelihood - block[k]["limit"].log_likelihood for k in present]
                axis.plot(np.array(present) * math.exp((i - 2) * DODGE), gaps, label=method,
                          **{"markersize": 4, "linewidth": 1.2, **styles[method]})
        axis.set_yscale("symlog", linthresh=GAP_LINEAR_WITHIN, linscale=1.5)
        low, high = axis.get_ylim()
        ticks = [0.0, -0.005, 0.005] + [sign * size * 10.0**power for sign in (-1, 1) for power in range(-2, 2)
                                        for size in (1, 3)]
        axis.yaxis.set_major_locator(FixedLocator(sorted(t for t in ticks if low <= t <= high)))
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.yaxis.set_minor_locator(FixedLocator([]))
        axis.set_xscale("log")
        axis.set_xticks(shots, [str(k) for k in shots])
        axis.xaxis.set_minor_locator(FixedLocator([]))
        axis.set_title(f"{network} / {prior}")
        axis.set_xlabel("support rows K")
        axis.set_ylabel("gap to the Bayes limit (nats/row)")
        axis.grid(alpha=0.3)
    handle = {label: line for axis in axes.flat for line, label in zip(*axis.get_legend_handles_labels())}
    title_bottom, legend_bottom = 1 - 0.42 / height, 1 - 0.62 / height
    figure.suptitle("Few-shot CPD fitting with one meta-fit for every K: each method's gap to the Bayes limit\n"
                    "query log-likelihood per row minus the limit's, mean over test sites (0 = the limit; y linear "
                    f"within ±{GAP_LINEAR_WITHIN:g}, logarithmic beyond)", fontsize=9, y=1 - 0.08 / height, va="top",
                    in_layout=False)  # placed by hand above the legend; tight_layout fits the panels below both
    figure.legend([handle[method] for method in METHODS if method in handle],
                  [method for method in METHODS if method in handle], loc="upper center",
                  bbox_to_anchor=(0.5, title_bottom), ncol=len(METHODS), fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, 0, 1, legend_bottom))
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    return figure


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=None,
                        help="networks to run (default: all three; asia with --quick)")
    parser.add_argument("--specialised", nargs="*", type=int, default=list(SPECIALISED),
                        help=f"the K of the specialised fits (default {' '.join(map(str, SPECIALISED))})")
    parser.add_argument("--specialised-priors", nargs="*", choices=PRIORS, default=list(PRIORS),
                        help="the families with specialised fits (default both)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: asia unless --networks, meta-training capped at 150 steps")
    parser.add_argument("--test-tasks", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: benchmarks/results/bayesnet_fewshot.md, full runs only)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="write the plot here (default: docs/bayesnet_fewshot.png, full runs and --replot only)")
    parser.add_argument("--replot", type=Path, default=None, metavar="JSON",
                        help="only redraw the figure from the results JSON of an earlier run (nothing is fitted)")
    args = parser.parse_args()
    if args.replot is not None:
        figure = args.figure or ROOT / "docs" / "bayesnet_fewshot.png"
        plot(results_from_json(json.loads(args.replot.read_text())), figure)
        print(f"wrote {figure}")
        return
    networks = args.networks or (["asia"] if args.quick else list(NETWORKS))
    fit_options = {"steps": 150} if args.quick else {}
    warnings.filterwarnings("ignore", category=FutureWarning)
    # the models are small: one thread avoids contention, and on a shared machine is several times faster
    torch.set_num_threads(1)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    results = {(network, prior): run_block(network, prior,
                                           tuple(args.specialised) if prior in args.specialised_priors else (),
                                           args.test_tasks, fit_options, timings)
               for network in networks for prior in PRIORS}
    elapsed = time.perf_counter() - start
    checks = targets(results)
    command = invocation()
    threads = torch.get_num_threads()
    now = utc_now()
    header = (f"## Few-shot Bayesian-network fitting\n\n`{command}`: run of {now}, {elapsed / 60:.1f} min on "
              f"{threads} CPU thread{'s' if threads > 1 else ''} ({timings.get('fits', 0)} meta-fits, "
              f"{timings.get('graphmeta', 0) / 60:.1f} min; pgmpy fits {timings.get('pgmpy', 0) / 60:.1f} min), "
              f"graphmeta {graphmeta_commit()}. {TRAIN_TASKS} meta-training sites of {TRAIN_ROWS} rows, "
              f"{args.test_tasks} test sites, {QUERY_ROWS} query rows each. Cells: query log-likelihood per row in "
              "nats, mean ± 95% CI over test sites (mean per-node KL(true || estimate)); specialised fits at "
              f"K = {', '.join(map(str, args.specialised))} on the {' and '.join(args.specialised_priors)} "
              "families only.")
    text = markdown(results, checks, header)
    print(text)
    full = not args.quick and args.test_tasks == 50
    table = destination(args.out, ROOT / "benchmarks" / "results" / "bayesnet_fewshot.md", not full)
    write_results(text, table)
    if table is not None:
        write_results(json.dumps(results_json(results, header), indent=1) + "\n", table.with_suffix(".json"))
    figure = destination(args.figure, ROOT / "docs" / "bayesnet_fewshot.png", not full)
    if figure is not None:
        plot(results, figure)
        print(f"wrote {figure}")


if __name__ == "__main__":
    main()
