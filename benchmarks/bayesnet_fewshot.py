"""Few-shot Bayesian-network fitting: pgmpy's estimators vs empirical Bayes vs graphmeta vs the Bayes limit.

For each network (asia, child, alarm) and task family (``dirichlet``: every CPD column drawn
from Dir(alpha theta*), alpha = 10; ``latent``: one 2-d task factor shifts every CPD's logits,
s = 1), a new site's network is fitted from K support rows (K = 5, 20, 100) and scored on 500
query rows of the same site, over 50 test sites:

* query log-likelihood per row (nats, mean over sites, 95% Student-t interval over sites);
* mean per-node KL(true || estimate): for each variable, sum_u P(u) KL(theta(.|u) || theta_hat(.|u))
  with P(u) the frequency of parent configuration u among the site's query rows, averaged
  over variables and sites.

Methods:

* ``pgmpy MLE`` and ``pgmpy BDeu``: ``pgmpy.parameter_estimator.DiscreteMLE`` and
  ``DiscreteBayesianEstimator`` (BDeu, equivalent sample size 5, pgmpy's default), fitted
  by pgmpy on the support rows alone with ``state_names`` given, so every state exists.
  pgmpy's MLE fills a column whose parent configuration never occurs with the uniform
  distribution; a state unseen in a seen column gets probability 0, so the MLE's
  log-likelihood and KL are -inf / inf whenever a query row needs one (reported as such).
* ``pooled EB``: the Dirichlet posterior mean with prior c * theta_hat, theta_hat the pooled
  (Jeffreys-smoothed) frequencies of 160 meta-training sites, c chosen on the other 40 at
  the same K: the classical transfer baseline.
* ``graphmeta (MP off / on)``: :class:`graphmeta.bayesnet.BayesNetMetaLearner` with its
  defaults, meta-fitted on the 200 meta-training sites (it holds out its own last 20% to
  choose its stopping step) for support size K, with message passing off or on.
* ``limit``: for ``dirichlet`` the Bayes-optimal posterior mean under the true prior,
  (alpha theta* + n) / (alpha + n); for ``latent`` theta(z_hat) with the true W and theta*
  at the MAP latent z_hat (no learner can beat these on average, up to the MAP step).

Log-likelihoods and KLs are computed from the CPD tables with numpy (one gather per
query set), not with pgmpy inference. Usage::

    python benchmarks/bayesnet_fewshot.py                  # full table (see the results file for the time)
    python benchmarks/bayesnet_fewshot.py --quick          # asia only, fewer meta-training steps
    python benchmarks/bayesnet_fewshot.py --networks asia child
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import stats

import graphmeta
from graphmeta.bayesnet import BayesNetMetaLearner, NetworkStructure
from graphmeta.bayesnet.baselines import PooledEmpiricalBayes, dirichlet_posterior, latent_posterior

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("asia", "child", "alarm")
PRIORS = ("dirichlet", "latent")
SHOTS = (5, 20, 100)
TRAIN_TASKS, TRAIN_ROWS, VAL_TASKS = 200, 500, 40
QUERY_ROWS = 500
METHODS = ("pgmpy MLE", "pgmpy BDeu", "pooled EB", "graphmeta (MP off)", "graphmeta (MP on)", "limit")


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


def pgmpy_tables(structure: NetworkStructure, supports: list, estimator: str) -> np.ndarray:
    """CPD tables fitted by pgmpy itself, one network per support table."""
    from pgmpy.models import DiscreteBayesianNetwork
    from pgmpy.parameter_estimator import DiscreteBayesianEstimator, DiscreteMLE

    tables = []
    for frame in supports:
        model = DiscreteBayesianNetwork(structure.graph.edges)
        model.add_nodes_from(structure.names)
        if estimator == "mle":
            fitted = model.fit(frame, estimator=DiscreteMLE(state_names=structure.states))
        else:
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


def run_block(network: str, prior: str, shots: tuple[int, ...], test_tasks: int, fit_options: dict,
              timings: dict) -> dict[int, dict[str, Score]]:
    """Every method at every K for one network and family."""
    family = graphmeta.load_family(f"{network}-{prior}")
    structure = NetworkStructure.from_pgmpy(network)
    train_frames = family.sample_dataframes(TRAIN_TASKS, TRAIN_ROWS, "train", seed=0)
    test_frames = family.sample_dataframes(test_tasks, max(SHOTS) + QUERY_ROWS, "test", seed=0)
    train_codes = structure.encode(train_frames)
    test_codes = structure.encode(test_frames)
    query = test_codes[:, max(SHOTS):]
    truth = structure.table.pack(family.task_cpds(test_tasks, "test", 0))
    results: dict[int, dict[str, Score]] = {}
    for k in shots:
        supports = [frame.iloc[:k] for frame in test_frames]
        counts = structure.counts(test_codes[:, :k])
        tables: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        tables["pgmpy MLE"] = pgmpy_tables(structure, supports, "mle")
        tables["pgmpy BDeu"] = pgmpy_tables(structure, supports, "bdeu")
        timings["pgmpy"] = timings.get("pgmpy", 0.0) + time.perf_counter() - start
        held_out = TRAIN_TASKS - VAL_TASKS
        tables["pooled EB"] = PooledEmpiricalBayes.fit(structure, train_codes[:held_out], train_codes[held_out:],
                                                       k).tables(counts)
        for message_passing in (False, True):
            start = time.perf_counter()
            torch.manual_seed(0)
            learner = BayesNetMetaLearner(network, message_passing=message_passing)
            summary = learner.meta_fit(train_frames, shots=k, progress=False, **fit_options)
            name = f"graphmeta (MP {'on' if message_passing else 'off'})"
            tables[name] = learner.cpd_tables(supports)
            elapsed = time.perf_counter() - start
            timings["graphmeta"] = timings.get("graphmeta", 0.0) + elapsed
            print(f"  {network}-{prior} K={k} {name}: {summary['steps']} steps (best {summary['best_step']}), "
                  f"{elapsed:.0f}s", flush=True)
        tables["limit"] = limit_tables(family, structure, counts)
        with np.errstate(divide="ignore"):
            results[k] = {method: Score.of(structure.log_likelihood(tables[method], query).mean(1),
                                           per_node_kl(structure, truth, tables[method], query))
                          for method in METHODS}
        line = ", ".join(f"{m} {s.log_likelihood:.3f}" for m, s in results[k].items())
        print(f"{network}-{prior} K={k}: {line}", flush=True)
    return results


def targets(results: dict[tuple[str, str], dict[int, dict[str, Score]]]) -> list[str]:
    """The acceptance checks, one line each."""
    lines = []
    for (network, prior), block in results.items():
        for k, scores in block.items():
            limit, eb = scores["limit"].log_likelihood, scores["pooled EB"].log_likelihood
            off, on = scores["graphmeta (MP off)"].log_likelihood, scores["graphmeta (MP on)"].log_likelihood
            if prior == "dirichlet":
                best = max(off, on)
                lines.append(f"{network}-dirichlet K={k}: graphmeta {limit - best:.3f} nats/row below the Bayes limit "
                             f"(MP off {limit - off:.3f}, on {limit - on:.3f}; target <= 0.05): "
                             f"{'met' if limit - best <= 0.05 else 'MISSED'}")
            else:
                closed = (on - eb) / (limit - eb) if limit != eb else math.nan
                verdict = "met" if on > off and (k not in (5, 20) or closed >= 0.5) else "MISSED"
                lines.append(f"{network}-latent K={k}: MP on - off = {on - off:+.3f}; MP on closes {closed:.0%} of the "
                             f"pooled-EB-to-limit gap (target: on > off, >= 50% at K = 5, 20): {verdict}")
    return lines


def markdown(results: dict, shots: tuple[int, ...], checks: list[str], header: str) -> str:
    lines = [header, ""]
    for (network, prior), block in results.items():
        lines += [f"### {network} / {prior}", "",
                  "| method | " + " | ".join(f"K = {k}" for k in shots) + " |",
                  "| --- |" + " --- |" * len(shots)]
        for method in METHODS:
            lines.append(f"| {method} | " + " | ".join(block[k][method].cell() for k in shots) + " |")
        lines.append("")
    lines += ["### Targets", "", *[f"- {line}" for line in checks], ""]
    return "\n".join(lines)


def plot(results: dict, shots: tuple[int, ...], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    networks = list(dict.fromkeys(network for network, _ in results))
    figure, axes = plt.subplots(len(networks), len(PRIORS), figsize=(5.2 * len(PRIORS), 3.4 * len(networks)),
                                squeeze=False)
    for (network, prior), block in results.items():
        axis = axes[networks.index(network)][PRIORS.index(prior)]
        for method in METHODS:
            values = np.array([block[k][method].log_likelihood for k in shots])
            if not np.isfinite(values).any():
                continue
            errors = np.array([block[k][method].ci95 for k in shots])
            axis.errorbar(shots, values, yerr=errors, marker="o", capsize=3, label=method,
                          linestyle="--" if method == "limit" else "-")
        axis.set_xscale("log")
        axis.set_xticks(shots, [str(k) for k in shots])
        axis.set_title(f"{network} / {prior}")
        axis.set_xlabel("support rows K")
        axis.set_ylabel("query log-likelihood per row (nats)")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7, loc="lower right")
    figure.suptitle("Few-shot CPD fitting (pgmpy MLE is -inf at every K shown and left out)", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=None,
                        help="networks to run (default: all three; asia with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: asia unless --networks, meta-training capped at 150 steps")
    parser.add_argument("--test-tasks", type=int, default=50)
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: benchmarks/results/bayesnet_fewshot.md, full runs only)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="write the plot here (default: docs/bayesnet_fewshot.png, full runs only)")
    args = parser.parse_args()
    networks = args.networks or (["asia"] if args.quick else list(NETWORKS))
    fit_options = {"steps": 150} if args.quick else {}
    warnings.filterwarnings("ignore", category=FutureWarning)
    # the models are small: one thread avoids contention, and on a shared machine is several times faster
    torch.set_num_threads(1)
    start = time.perf_counter()
    timings: dict[str, float] = {}
    results = {(network, prior): run_block(network, prior, SHOTS, args.test_tasks, fit_options, timings)
               for network in networks for prior in PRIORS}
    elapsed = time.perf_counter() - start
    checks = targets(results)
    command = "python benchmarks/bayesnet_fewshot.py" + (" --quick" if args.quick else "") + (
        f" --networks {' '.join(networks)}" if args.networks else "")
    threads = torch.get_num_threads()
    header = (f"## Few-shot Bayesian-network fitting\n\n`{command}`: {elapsed / 60:.1f} min on "
              f"{threads} CPU thread{'s' if threads > 1 else ''} (graphmeta meta-training "
              f"{timings.get('graphmeta', 0) / 60:.1f} min, pgmpy fits {timings.get('pgmpy', 0) / 60:.1f} min). {TRAIN_TASKS} meta-training sites of "
              f"{TRAIN_ROWS} rows, {args.test_tasks} test sites, {QUERY_ROWS} query rows each. Cells: query "
              "log-likelihood per row in nats, mean ± 95% CI over test sites (mean per-node KL(true || estimate)).")
    text = markdown(results, SHOTS, checks, header)
    print(text)
    full = not args.quick and set(networks) == set(NETWORKS) and args.test_tasks == 50
    out = args.out or (ROOT / "benchmarks" / "results" / "bayesnet_fewshot.md" if full else None)
    figure = args.figure or (ROOT / "docs" / "bayesnet_fewshot.png" if full else None)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
        print(f"wrote {out}")
    if figure is not None:
        plot(results, SHOTS, figure)
        print(f"wrote {figure}")


if __name__ == "__main__":
    main()
