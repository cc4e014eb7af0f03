"""Few-shot linear-Gaussian networks: least squares vs ridge toward the pooled fit vs graphmeta vs the Bayes limit.

The continuous twin of ``bayesnet_fewshot.py``. For each network (the cards ``ecoli70-gaussian``,
``magic-niab-gaussian``, ``arth150-gaussian``: every coefficient of the standardised network
perturbed by N(0, 0.2^2)) and task family (``independent``: each coefficient on its own;
``latent``: one 2-d task factor shifts every coefficient, same marginal spread), a new site's
network is fitted from K support rows, K in {1, 3, 5, 10, 20, 50}, and scored on 200 query rows
of the same site, over the test sites:

* query log-likelihood per row (nats, the sum over variables of log p(x_v | parents), mean
  over rows, then mean over sites with a 95% Student-t interval over sites);
* MSE: the mean over variables and rows of the squared error of the predicted mean.

Every variable is in the family's standardised units. Methods (the numpy ones read the
per-site least-squares statistics of :mod:`graphmeta.bayesnet.gaussian_baselines`):

* ``pooled LS``: one least-squares fit per variable on all meta-training rows, Gaussian
  predictive with the pooled fit's residual variance (which holds the between-site spread);
* ``site LS``: the site's own (minimum-norm) least squares, predictive N(z'w, s^2 (1 + z' G^+ z))
  with s^2 the within-site noise of the meta-training sites (mean of their RSS / (n - D));
* ``ridge to pooled``: (G + lam I)^-1 (c + lam w_pooled), predictive N(z'w, s^2 (1 + z'(G + lam I)^-1 z))
  (the posterior predictive of the prior N(w_pooled, s^2 / lam I)), lam chosen per variable and
  per K from a grid on the validation sites by their query log-likelihood;
* ``graphmeta``: :class:`graphmeta.bayesnet.GaussianNetMetaLearner` with its defaults (two task
  factors, message passing on, at most 600 meta-training steps with early stopping), meta-fitted
  once for all K on the meta-training sites (it holds out the same
  last validation sites to choose its stopping step), Student-t posterior predictive;
* ``limit``: the exact posterior predictive under the family's true prior and noise (for
  ``independent`` a Gaussian posterior per variable; for ``latent`` the Gaussian posterior of
  the task factor from every variable's rows together).

Usage::

    python benchmarks/gaussian_fewshot.py                 # full table
    python benchmarks/gaussian_fewshot.py --quick         # ecoli70 only, 100 meta-training steps, 30 test sites
    python benchmarks/gaussian_fewshot.py --networks ecoli70 --max-steps 300
    python benchmarks/gaussian_fewshot.py --part speed    # only the adapt timing (arth150, 1,000 sites)
    python benchmarks/gaussian_fewshot.py --networks ecoli70 --priors independent --train-sites 1000 \
        --out benchmarks/results/gaussian_fewshot_1000_sites.md   # how the gap to the limit shrinks with sites
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
from _results import destination, graphmeta_commit, invocation, utc_now, write_results
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

import graphmeta
from graphmeta.bayesnet import GaussianNetMetaLearner
from graphmeta.bayesnet.gaussian_baselines import pooled_fit, ridge_fit, site_statistics

ROOT = Path(__file__).resolve().parents[1]
NETWORKS = ("ecoli70", "magic-niab", "arth150")
PRIORS = ("independent", "latent")
SHOTS = (1, 3, 5, 10, 20, 50)
SPEED_SITES, SPEED_ROWS, SPEED_REPEATS = 1000, 10, 5
#: Meta-training sites (``--train-sites``) and their rows; the last fifth validate, as meta_fit's
#: default ``val_fraction`` holds out.
TRAIN_TASKS, TRAIN_ROWS = 200, 200
QUERY_ROWS = 200
PENALTIES = np.geomspace(1e-2, 1e4, 13)
METHODS = ("pooled LS", "site LS", "ridge to pooled", "graphmeta", "limit")


@dataclass(frozen=True)
class Score:
    """Mean query log-likelihood per row with its 95% half-width over sites, and the MSE."""

    log_likelihood: float
    ci95: float
    mse: float

    @classmethod
    def of(cls, per_site_ll: np.ndarray, per_site_mse: np.ndarray) -> Score:
        half = stats.t.ppf(0.975, len(per_site_ll) - 1) * per_site_ll.std(ddof=1) / math.sqrt(len(per_site_ll))
        return cls(float(per_site_ll.mean()), float(half), float(per_site_mse.mean()))

    def cell(self) -> str:
        return f"{self.log_likelihood:.3f} ± {self.ci95:.3f} (MSE {self.mse:.4f})"


@dataclass(frozen=True)
class Sites:
    """Sites' rows ``values [S, R, N]``, support = the first ``k`` rows, query = the last ``query`` rows."""

    values: np.ndarray
    query: int

    def support(self, k: int) -> np.ndarray:
        return self.values[:, :k]

    def query_rows(self) -> np.ndarray:
        return self.values[:, -self.query:]


def design_rows(values: np.ndarray, parents: list[int]) -> np.ndarray:
    """``[S, R, 1 + P]``: a constant, then the parents' columns."""
    return np.concatenate([np.ones_like(values[..., :1]), values[..., parents]], axis=-1)


def gaussian_scores(values: np.ndarray, parents: list[list[int]], predictive) -> tuple[np.ndarray, np.ndarray]:
    """Per site the query log-likelihood per row and the MSE of ``predictive(n, design) -> (mean, variance)``."""
    total, squared = 0.0, 0.0
    for n, columns in enumerate(parents):
        design = design_rows(values, columns)
        mean, variance = predictive(n, design)
        residual = values[..., n] - mean
        total = total + (-0.5 * np.log(2 * np.pi * variance) - 0.5 * residual**2 / variance).mean(-1)
        squared = squared + (residual**2).mean(-1)
    return total, squared / len(parents)


def quadratic(design: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """``[S, R]``: z' A_s z for ``design [S, R, D]`` and ``matrix [S, D, D]``."""
    return np.einsum("srd,sde,sre->sr", design, matrix, design)


class Baselines:
    """The least-squares methods, fitted on the meta-training sites' statistics."""

    def __init__(self, train: np.ndarray, val: Sites, parents: list[list[int]]) -> None:
        self.parents = parents
        statistics = site_statistics(train, parents)
        self.pooled = [pooled_fit(s) for s in statistics]
        self.pooled_noise = [s.residual(w).sum() / s.rows.sum() for s, w in zip(statistics, self.pooled)]
        self.noise = [np.mean(s.residual(ridge_fit(s, w, 0.0)) / np.maximum(s.rows - len(w), 1))
                      for s, w in zip(statistics, self.pooled)]
        self.val = val

    def pooled_scores(self, sites: Sites) -> tuple[np.ndarray, np.ndarray]:
        return gaussian_scores(sites.query_rows(), self.parents,
                               lambda n, z: (z @ self.pooled[n], np.full(z.shape[:2], self.pooled_noise[n])))

    def ridge_scores(self, sites: Sites, k: int, penalties: list[float]) -> tuple[np.ndarray, np.ndarray]:
        """Ridge toward the pooled fit with ``penalties[n]`` per variable (0: the site's own least squares)."""
        statistics = site_statistics(sites.support(k), self.parents)

        def predictive(n: int, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            fits = ridge_fit(statistics[n], self.pooled[n], penalties[n])
            inverse = np.linalg.pinv(statistics[n].gram + penalties[n] * np.eye(design.shape[-1]))
            return np.einsum("srd,sd->sr", design, fits), self.noise[n] * (1 + quadratic(design, inverse))

        return gaussian_scores(sites.query_rows(), self.parents, predictive)

    def tuned_penalties(self, k: int) -> list[float]:
        """Per variable the grid penalty with the best validation query log-likelihood at ``k`` support rows."""
        statistics = site_statistics(self.val.support(k), self.parents)
        query = self.val.query_rows()
        chosen = []
        for n, columns in enumerate(self.parents):
            design = design_rows(query, columns)
            best, best_ll = PENALTIES[0], -np.inf
            for penalty in PENALTIES:
                fits = ridge_fit(statistics[n], self.pooled[n], penalty)
                variance = self.noise[n] * (1 + quadratic(design, np.linalg.inv(
                    statistics[n].gram + penalty * np.eye(design.shape[-1]))))
                residual = query[..., n] - np.einsum("srd,sd->sr", design, fits)
                ll = (-0.5 * np.log(variance) - 0.5 * residual**2 / variance).mean()
                if ll > best_ll:
                    best, best_ll = penalty, ll
            chosen.append(float(best))
        return chosen


def limit_scores(family, sites: Sites, k: int, parents: list[list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """The exact posterior predictive under the family's prior (module docstring), ``parents`` in evidence order."""
    names = family.graph.names
    centre = [family.beta_star[v] for v in names]
    noise = [family.noise_std[v] ** 2 for v in names]
    statistics = site_statistics(sites.support(k), parents)
    tau2 = family.scale**2
    if family.prior == "independent":
        def predictive(n: int, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            penalty = noise[n] / tau2
            fits = ridge_fit(statistics[n], centre[n], penalty)
            inverse = np.linalg.inv(statistics[n].gram + penalty * np.eye(design.shape[-1]))
            return np.einsum("srd,sd->sr", design, fits), noise[n] * (1 + quadratic(design, inverse))

        return gaussian_scores(sites.query_rows(), parents, predictive)
    # latent: coefficients c* + tau W u, u ~ N(0, I); the posterior of u from every variable's statistics
    weights = [family.scale * family.latent_weights[v] for v in names]  # [1 + P, d]
    d = family.latent_dim
    precision = np.broadcast_to(np.eye(d), (len(sites.values), d, d)).copy()
    information = np.zeros((len(sites.values), d))
    for n, s in enumerate(statistics):
        precision += np.einsum("dj,sde,ek->sjk", weights[n], s.gram, weights[n]) / noise[n]
        information += np.einsum("dj,sd->sj", weights[n], s.cross - s.gram @ centre[n]) / noise[n]
    covariance = np.linalg.inv(precision)
    factor = np.einsum("sjk,sk->sj", covariance, information)

    def latent_predictive(n: int, design: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = centre[n] + factor @ weights[n].T  # [S, 1 + P]
        projected = design @ weights[n]  # [S, R, d]
        return (np.einsum("srd,sd->sr", design, mean),
                noise[n] + np.einsum("srj,sjk,srk->sr", projected, covariance, projected))

    return gaussian_scores(sites.query_rows(), parents, latent_predictive)


def graphmeta_scores(learner: GaussianNetMetaLearner, frames: list, sites: Sites, k: int
                     ) -> tuple[np.ndarray, np.ndarray]:
    posterior = learner.posterior([frame.iloc[:k] for frame in frames])
    columns = list(frames[0].columns)  # the order of the values in ``sites``
    query = sites.query_rows()
    total, squared = 0.0, 0.0
    for name in learner.graph.names:
        n = columns.index(name)
        design = design_rows(query, [columns.index(p) for p in learner.parents[name]])
        total = total + posterior[name].log_likelihood(design, query[..., n]).mean(-1)
        squared = squared + ((query[..., n] - np.einsum("srd,sd->sr", design, posterior[name].mean)) ** 2).mean(-1)
    return total, squared / len(columns)


def run_block(network: str, prior: str, train_tasks: int, test_tasks: int, fit_options: dict,
              timings: dict) -> dict[int, dict[str, Score]]:
    family = graphmeta.load_family(f"{network}-gaussian", prior=prior)
    names = family.graph.names
    parents = [[names.index(p) for p in family.evidence[v]] for v in names]
    train_frames = family.sample_dataframes(train_tasks, TRAIN_ROWS, "train", seed=0)
    test_frames = family.sample_dataframes(test_tasks, max(SHOTS) + QUERY_ROWS, "test", seed=0)
    train = np.stack([frame.to_numpy() for frame in train_frames])
    held_out = train_tasks - train_tasks // 5
    baselines = Baselines(train[:held_out], Sites(train[held_out:], TRAIN_ROWS - max(SHOTS)), parents)
    test = Sites(np.stack([frame.to_numpy() for frame in test_frames]), QUERY_ROWS)

    start = time.perf_counter()
    torch.manual_seed(0)
    learner = GaussianNetMetaLearner(family.reference_network())
    summary = learner.meta_fit(train_frames, progress=False, **fit_options)
    fit_seconds = time.perf_counter() - start
    timings.setdefault("fits", []).append((f"{network}-{prior}", fit_seconds, summary["steps"], summary["best_step"]))
    print(f"  {network}-{prior}: meta-fit {summary['steps']} steps (best {summary['best_step']}), {fit_seconds:.0f}s",
          flush=True)
    if network == "arth150" or "adapt" not in timings:
        timings["adapt"] = (network, adapt_seconds(learner, family))
        print(f"  adapt {SPEED_SITES} sites: " + ", ".join(f"{k} {v:.3f}" for k, v in timings["adapt"][1].items()),
              flush=True)

    results = {}
    for k in SHOTS:
        scores = {"pooled LS": baselines.pooled_scores(test),
                  "site LS": baselines.ridge_scores(test, k, [0.0] * len(names)),
                  "ridge to pooled": baselines.ridge_scores(test, k, baselines.tuned_penalties(k)),
                  "graphmeta": graphmeta_scores(learner, test_frames, test, k),
                  "limit": limit_scores(family, test, k, parents)}
        results[k] = {method: Score.of(*scores[method]) for method in METHODS}
        print(f"{network}-{prior} K={k}: " + ", ".join(f"{m} {s.log_likelihood:.3f}" for m, s in results[k].items()),
              flush=True)
    return results


def adapt_seconds(learner: GaussianNetMetaLearner, family) -> dict[str, float]:
    """Median seconds over :data:`SPEED_REPEATS` to adapt :data:`SPEED_SITES` sites of :data:`SPEED_ROWS`
    rows: from DataFrames to posteriors (``posterior``), the model's adapt alone and the Linear bank's
    conjugate posterior alone."""
    from graphmeta.bayesnet.gaussian_learner import _split

    frames = family.sample_dataframes(SPEED_SITES, SPEED_ROWS, "test", seed=1)
    values = learner._standardised(frames, "support table")
    bank = learner.model.banks[0]

    def median(run) -> float:
        run()  # warm up
        seconds = []
        for _ in range(SPEED_REPEATS):
            start = time.perf_counter()
            run()
            seconds.append(time.perf_counter() - start)
        return float(np.median(seconds))

    # a fresh split each time, as a caller gives it (a split keeps what is derived from it)
    splits = iter([_split(values, learner.layout) for _ in range(2 * SPEED_REPEATS + 2)])
    with torch.no_grad():
        return {"posterior": median(lambda: learner.posterior(frames)),
                "model.adapt": median(lambda: learner.model.adapt(next(splits))),
                "bank posterior": median(lambda: bank.posterior(bank.expand(SPEED_SITES), next(splits))),
                "nodes": len(family.graph)}


def targets(results: dict, timings: dict, nodes: dict[str, int]) -> list[str]:
    lines = []
    for (network, prior), block in results.items():
        ll = {k: {m: s.log_likelihood for m, s in scores.items()} for k, scores in block.items()}
        behind_ridge = {k: s["ridge to pooled"] - s["graphmeta"] for k, s in ll.items()}
        worst = max(behind_ridge, key=behind_ridge.get)
        lines.append(f"{network}-{prior}: graphmeta - tuned ridge from {-behind_ridge[worst]:+.3f} (K={worst}) to "
                     f"{-min(behind_ridge.values()):+.3f} nats/row (target >= 0 at every K): "
                     f"{'met' if behind_ridge[worst] <= 0 else 'MISSED'}")
        if prior == "independent":
            below = {k: s["limit"] - s["graphmeta"] for k, s in ll.items()}
            worst = max(below, key=below.get)
            per_variable = below[worst] / nodes[network]
            lines.append(f"{network}-independent: graphmeta at most {below[worst]:.3f} nats/row below the Bayes limit "
                         f"(K={worst}; target <= 0.01 at every K): {'met' if below[worst] <= 0.01 else 'MISSED'}; "
                         f"per variable ({nodes[network]}) {per_variable:.4f} nats/row/variable: "
                         f"{'met' if per_variable <= 0.01 else 'MISSED'}")
        else:
            for k in (3, 10):
                s = ll[k]
                closed = (s["graphmeta"] - s["ridge to pooled"]) / (s["limit"] - s["ridge to pooled"])
                lines.append(f"{network}-latent K={k}: graphmeta closes {closed:.0%} of the ridge-to-limit gap "
                             f"(target >= 80%): {'met' if closed >= 0.8 else 'MISSED'}")
    for name, seconds, steps, best in timings.get("fits", []):
        verdict = ("met" if seconds < 180 else "MISSED") if name.startswith("arth150") else "no target"
        lines.append(f"meta-fit {name}: {seconds:.0f}s, {steps} steps (best {best}) (target < 180 s for arth150): "
                     f"{verdict}")
    if "adapt" in timings:
        network, adapt = timings["adapt"]
        lines.append(adapt_line(network, adapt))
    return lines


def adapt_line(network: str, adapt: dict[str, float]) -> str:
    return (f"adapt {SPEED_SITES:,} sites x {adapt['nodes']} nodes ({network}, {SPEED_ROWS} rows each, median of "
            f"{SPEED_REPEATS}): {adapt['model.adapt']:.2f}s in model.adapt (target < 1 s): "
            f"{'met' if adapt['model.adapt'] < 1 else 'MISSED'}; of which {adapt['bank posterior']:.2f}s the Linear "
            f"bank's posterior; {adapt['posterior']:.2f}s from DataFrames to posteriors in the columns' units")


def markdown(results: dict, checks: list[str], header: str) -> str:
    lines = [header, ""]
    for (network, prior), block in results.items():
        lines += [f"### {network} / {prior}", "", "| method | " + " | ".join(f"K = {k}" for k in SHOTS) + " |",
                  "| --- |" + " --- |" * len(SHOTS)]
        for method in METHODS:
            lines.append(f"| {method} | " + " | ".join(block[k][method].cell() for k in SHOTS) + " |")
        lines.append("")
    lines += ["### Targets", "", *[f"- {line}" for line in checks], ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """One panel per network and family: each method's gap to the Bayes limit (nats/row) against K (symlog y)."""
    networks = list(dict.fromkeys(network for network, _ in results))
    figure = Figure(figsize=(5.2 * len(PRIORS), 3.4 * len(networks) + 0.6))
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(networks), len(PRIORS), squeeze=False)
    styles = {"pooled LS": ("tab:gray", "v"), "site LS": ("tab:purple", "^"), "ridge to pooled": ("tab:blue", "o"),
              "graphmeta": ("tab:red", "D"), "limit": ("black", "x")}
    for (network, prior), block in results.items():
        axis = axes[networks.index(network)][PRIORS.index(prior)]
        for method in METHODS:
            gaps = [block[k][method].log_likelihood - block[k]["limit"].log_likelihood for k in SHOTS]
            color, marker = styles[method]
            axis.plot(SHOTS, gaps, color=color, marker=marker, markersize=4, label=method)
        axis.set_xscale("log")
        axis.set_yscale("symlog", linthresh=0.01)
        axis.set_xticks(SHOTS, [str(k) for k in SHOTS])
        axis.set_title(f"{network} / {prior}")
        axis.set_xlabel("support rows K")
        axis.set_ylabel("gap to the Bayes limit (nats/row)")
        axis.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    figure.suptitle("Few-shot linear-Gaussian networks, one meta-fit for every K: gap to the Bayes limit", fontsize=9)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", choices=NETWORKS, default=None,
                        help="networks to run (default: all three; ecoli70 with --quick)")
    parser.add_argument("--priors", nargs="+", choices=PRIORS, default=list(PRIORS))
    parser.add_argument("--quick", action="store_true", help="a smoke run: ecoli70 unless --networks, 100 steps, "
                                                             "30 test sites")
    parser.add_argument("--part", choices=("all", "speed"), default="all",
                        help="speed: only time the adapt step (arth150, unfitted prior: the same operations)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap the meta-training steps")
    parser.add_argument("--test-tasks", type=int, default=None, help="test sites (default 50; 30 with --quick)")
    parser.add_argument("--train-sites", type=int, default=TRAIN_TASKS,
                        help=f"meta-training sites, the last fifth validating (default {TRAIN_TASKS})")
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: benchmarks/results/gaussian_fewshot.md, full runs only)")
    parser.add_argument("--figure", type=Path, default=None,
                        help="write the plot here (default: docs/gaussian_fewshot.png, full runs only)")
    args = parser.parse_args()
    networks = args.networks or (["ecoli70"] if args.quick else list(NETWORKS))
    test_tasks = args.test_tasks or (30 if args.quick else 50)
    steps = 100 if args.quick and args.max_steps is None else args.max_steps
    fit_options = {} if steps is None else {"steps": steps}
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)  # small models: one thread avoids contention on a shared machine
    if args.part == "speed":
        family = graphmeta.load_family("arth150-gaussian", prior="latent")
        print(adapt_line("arth150", adapt_seconds(GaussianNetMetaLearner(family.reference_network()), family)))
        return
    start = time.perf_counter()
    timings: dict = {}
    results = {(network, prior): run_block(network, prior, args.train_sites, test_tasks, fit_options, timings)
               for network in networks for prior in args.priors}
    elapsed = time.perf_counter() - start
    nodes = {network: len(graphmeta.load_family(f"{network}-gaussian").graph) for network in networks}
    checks = targets(results, timings, nodes)
    header = (f"## Few-shot linear-Gaussian network fitting\n\n`{invocation()}`: run of {utc_now()}, "
              f"{elapsed / 60:.1f} min on {torch.get_num_threads()} CPU thread(s), graphmeta {graphmeta_commit()}. "
              f"{args.train_sites} meta-training sites of {TRAIN_ROWS} rows (the last {args.train_sites // 5} validate), "
              f"{test_tasks} "
              f"test sites, {QUERY_ROWS} query rows each. Cells: query log-likelihood per row in nats (sum over "
              "variables), mean ± 95% CI over test sites (MSE per variable, standardised units).")
    text = markdown(results, checks, header)
    print(text)
    full = not args.quick
    write_results(text, destination(args.out, ROOT / "benchmarks" / "results" / "gaussian_fewshot.md", not full))
    figure = destination(args.figure, ROOT / "docs" / "gaussian_fewshot.png", not full)
    if figure is not None:
        plot(results, figure)
        print(f"wrote {figure}")


if __name__ == "__main__":
    main()
