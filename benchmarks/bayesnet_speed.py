"""How long a Bayesian-network meta-fit takes on large bundled networks, and that it is a real fit.

For each network's ``latent`` family (one 2-d task factor shifts every CPD's logits, s = 1),
:class:`graphmeta.bayesnet.BayesNetMetaLearner` (defaults: message passing on) is meta-fitted
on 200 sites of 500 rows (it holds out its own last 20% to choose its stopping step) on one
CPU thread:

* ``hailfinder`` (56 variables, up to 396 parent configurations) specialised to K = 5 rows
  (``shots=5``); target: at most 2 minutes;
* ``andes`` (223 variables) with ``meta_fit``'s default range of support sizes (1 to 200 rows);
  target: at most 10 minutes.

Per fit: wall and CPU time of ``meta_fit`` (encoding, pooled empirical Bayes' fit, meta-training
with its validations), meta-training steps run (early stopping, at most ``MAX_STEPS``) and
milliseconds per step (the trainer's wall time, validations included, over its steps). Then the
quality at K = 5 on 30 held-out test sites, scored on 500 query rows each: the query
log-likelihood per row (nats, mean over sites, 95% Student-t interval) of graphmeta's adapted
CPDs, of pooled empirical Bayes (Dirichlet prior c * theta_hat, theta_hat the smoothed pooled
frequencies of the 160 meta-training sites, c chosen on the other 40 at K = 5, as in
``bayesnet_fewshot.py``) and of the Bayes limit theta(z_hat) (the true W and theta* at the MAP
latent). Usage::

    python benchmarks/bayesnet_speed.py                          # both networks (about 10 min)
    python benchmarks/bayesnet_speed.py --networks hailfinder    # one network; --out to keep the table
"""

from __future__ import annotations

import argparse
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from _results import destination, graphmeta_commit, invocation, utc_now, write_results
from scipy import stats

from graphmeta.bayesnet import BayesNetMetaLearner, NetworkStructure
from graphmeta.bayesnet.baselines import PooledEmpiricalBayes, latent_posterior
from graphmeta.families import BayesNetFamily

ROOT = Path(__file__).resolve().parents[1]
#: network -> (the ``shots`` of its meta-fit, None for the default range; the time target in minutes)
FITS: dict[str, tuple[int | None, float]] = {"hailfinder": (5, 2.0), "andes": (None, 10.0)}
TRAIN_TASKS, TRAIN_ROWS, VAL_TASKS = 200, 500, 40
SHOTS, QUERY_ROWS = 5, 500


@dataclass(frozen=True)
class Fit:
    """One meta-fit's cost and its quality at K = :data:`SHOTS` (log-likelihood per row, 95% half-width)."""

    network: str
    shots: str
    wall_s: float
    cpu_s: float
    steps: int
    ms_per_step: float
    target_min: float
    quality: dict[str, tuple[float, float]]

    def row(self) -> str:
        ll = {method: f"{mean:.3f} ± {half:.3f}" for method, (mean, half) in self.quality.items()}
        met = "met" if self.wall_s <= 60 * self.target_min else "MISSED"
        return (f"| {self.network} | {self.shots} | {self.wall_s / 60:.2f} | {self.cpu_s / 60:.2f} | {self.steps} | "
                f"{self.ms_per_step:.0f} | ≤ {self.target_min:g} min: {met} | {ll['graphmeta']} | "
                f"{ll['pooled EB']} | {ll['limit']} |")


def mean_and_half_width(per_site: np.ndarray) -> tuple[float, float]:
    """Mean over sites and the 95% Student-t half-width of that mean."""
    half = stats.t.ppf(0.975, len(per_site) - 1) * per_site.std(ddof=1) / math.sqrt(len(per_site))
    return float(per_site.mean()), float(half)


def run(network: str, test_sites: int) -> Fit:
    """Meta-fit on ``network``'s latent family, then score graphmeta, pooled EB and the limit at K = :data:`SHOTS`."""
    shots, target = FITS[network]
    family = BayesNetFamily(network, prior="latent", learner="table")  # the cards' defaults: d = 2, s = 1
    structure = NetworkStructure.from_pgmpy(network)
    train_frames = family.sample_dataframes(TRAIN_TASKS, TRAIN_ROWS, "train", seed=0)
    test_frames = family.sample_dataframes(test_sites, SHOTS + QUERY_ROWS, "test", seed=0)
    torch.manual_seed(0)
    learner = BayesNetMetaLearner(network)
    wall, cpu = time.perf_counter(), time.process_time()
    summary = learner.meta_fit(train_frames, progress=False, **({} if shots is None else {"shots": shots}))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{network}: {summary['steps']} steps (best {summary['best_step']}), {wall:.0f}s wall, {cpu:.0f}s CPU",
          flush=True)

    train_codes, test_codes = structure.encode(train_frames), structure.encode(test_frames)
    counts, query = structure.counts(test_codes[:, :SHOTS]), test_codes[:, SHOTS:]
    held_out = TRAIN_TASKS - VAL_TASKS
    pooled = PooledEmpiricalBayes.fit(structure, train_codes[:held_out], train_codes[held_out:], SHOTS)
    theta_star = structure.table.pack(family.theta_star)
    weights = np.moveaxis(structure.table.pack({name: np.moveaxis(w, -1, 0)
                                                for name, w in family.latent_weights.items()}), 0, -1)
    with np.errstate(divide="ignore"):
        log_theta_star = np.where(structure.table.padding(), -np.inf, np.log(theta_star))
    tables = {"graphmeta": learner.cpd_tables([frame.iloc[:SHOTS] for frame in test_frames]),
              "pooled EB": pooled.tables(counts),
              "limit": latent_posterior(log_theta_star, weights, family.scale, counts)}
    quality = {method: mean_and_half_width(structure.log_likelihood(table, query).mean(1))
               for method, table in tables.items()}
    return Fit(network, "1-200 (default)" if shots is None else str(shots), wall, cpu, summary["steps"],
               1000 * summary["wall_time_s"] / max(summary["steps"], 1), target, quality)


def markdown(fits: list[Fit], header: str) -> str:
    lines = [header, "",
             "| network (latent) | meta-fit shots | wall (min) | CPU (min) | steps | ms/step | target | "
             f"graphmeta K={SHOTS} | pooled EB K={SHOTS} | limit K={SHOTS} |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
             *[fit.row() for fit in fits], ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--networks", nargs="+", choices=list(FITS), default=list(FITS))
    parser.add_argument("--test-sites", type=int, default=30)
    parser.add_argument("--out", type=Path, default=None,
                        help="write the table here (default: benchmarks/results/bayesnet_speed.md, full runs only)")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)
    loads = [os.getloadavg()[0]]
    fits = []
    for network in args.networks:
        fits.append(run(network, args.test_sites))
        loads.append(os.getloadavg()[0])
    command = invocation()
    threads = torch.get_num_threads()
    now = utc_now()
    header = (f"## Bayesian-network meta-fit speed\n\n`{command}`: run of {now} on {threads} CPU "
              f"thread{'s' if threads > 1 else ''}, graphmeta {graphmeta_commit()}; machine shared with other "
              f"jobs, 1-minute load average {min(loads):.1f}-{max(loads):.1f} during the run (on "
              f"{os.cpu_count()} cores). {TRAIN_TASKS} meta-training sites of {TRAIN_ROWS} rows; wall and CPU: "
              "the whole `meta_fit` (encoding, pooled EB's fit, meta-training with validations); ms/step: the "
              "trainer's wall time over its steps. Quality: query log-likelihood per row in nats at "
              f"K = {SHOTS}, mean ± 95% CI over {args.test_sites} test sites of {QUERY_ROWS} query rows.")
    text = markdown(fits, header)
    print(text)
    full = args.networks == list(FITS) and args.test_sites == 30
    write_results(text, destination(args.out, ROOT / "benchmarks" / "results" / "bayesnet_speed.md", not full))


if __name__ == "__main__":
    main()
