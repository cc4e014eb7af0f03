"""The meta-step of this checkout against another commit of graphmeta, interleaved in one process.

A speed regression check that a busy machine cannot fool: both versions train the same
model from the same seed on the same batches, one step of each in turn, and the medians are
compared. Workloads:

* ``sinusoid``: MAML on the sinusoid (Finn et al. protocol: MLP 40-40, K=10+10, meta-batch 25,
  inner lr 0.01, one step, Adam 1e-3), no message passing;
* ``compositional``: MAML with message passing on the 16-node ``compositional-dag`` card
  (meta-batch 16, K=10+10, one step);
* ``alarm``: the ``alarm-latent`` card (Table and MLP banks, message passing, meta-batch 16,
  K=5+15), the closed-form path.

The other version is extracted with ``git archive`` into a temporary folder and imported under
another package name (graphmeta imports itself relatively).

    python benchmarks/compare_versions.py --base 795905e          # 3,000 steps each, 1 thread
    python benchmarks/compare_versions.py --base 795905e --workloads sinusoid compositional alarm --steps 600
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]


def import_version(commit: str, directory: Path):
    """graphmeta at ``commit``, importable as ``graphmeta_base`` (its cards beside it, as in a checkout)."""
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", commit, "graphmeta", "datasets"],
                             check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(directory)], input=archive, check=True)
    (directory / "graphmeta").rename(directory / "graphmeta_base")
    for path in (directory / "graphmeta_base" / "learners").glob("*.py"):  # banks named by absolute import path
        path.write_text(path.read_text().replace('bank="graphmeta.', 'bank="graphmeta_base.'))
    sys.path.insert(0, str(directory))
    return importlib.import_module("graphmeta_base")


#: ``{workload: (card, model keywords, meta-batch, support shots, query shots)}``.
WORKLOADS = {
    "sinusoid": ("sinusoid", {"inner_lr": 0.01, "message_passing": False}, 25, 10, 10),
    "compositional": ("compositional-dag", {"inner_lr": 0.01, "message_passing": True}, 16, 10, 10),
    "alarm": ("alarm-latent", {"inner_lr": 0.01, "message_passing": True}, 16, 5, 15),
}


def meta_step(gm, workload: str, algorithm: str = "maml"):
    """One meta-step of ``workload`` (see the module) with ``algorithm`` for the graphmeta package ``gm``."""
    card, settings, meta_batch, shots, query = WORKLOADS[workload]
    family = gm.load_family(card, seed=0)
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph, algorithm, inner_steps=1, **settings)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [family.sample(meta_batch, shots, query, "train", seed=i) for i in range(50)]

    def step(i: int) -> None:
        loss, _ = model.meta_loss(batches[i % len(batches)], metrics=False)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", required=True, help="the commit to compare with")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=200)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--workloads", nargs="+", choices=list(WORKLOADS), default=["sinusoid"])
    parser.add_argument("--algorithm", default="maml", help="an algorithm both versions know (default maml)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import graphmeta

    with tempfile.TemporaryDirectory() as directory:
        base = import_version(args.base, Path(directory))
        for workload in args.workloads:
            steps = {args.base: meta_step(base, workload, args.algorithm),
                     "this checkout": meta_step(graphmeta, workload, args.algorithm)}
            times: dict[str, list[float]] = {name: [] for name in steps}
            for i in range(args.steps):
                for name, step in steps.items():
                    start = time.perf_counter()
                    step(i)
                    times[name].append(time.perf_counter() - start)
            medians = {name: statistics.median(values[args.warmup:]) for name, values in times.items()}
            print(f"{workload} {args.algorithm} meta-step, {args.steps} interleaved steps each, {args.threads} thread(s), "
                  f"load average {os.getloadavg()[0]:.1f}")
            for name, median in medians.items():
                print(f"  {name}: median {median * 1e3:.3f} ms")
            print(f"  this checkout / {args.base}: {medians['this checkout'] / medians[args.base]:.3f}", flush=True)


if __name__ == "__main__":
    main()
