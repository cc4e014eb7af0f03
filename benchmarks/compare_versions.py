"""The meta-step of this checkout against another commit of graphmeta, interleaved in one process.

A speed regression check that a busy machine cannot fool: both versions train the same
sinusoid MAML (Finn et al. protocol: MLP 40-40, K=10+10, meta-batch 25, inner lr 0.01, one
step, Adam 1e-3) from the same seed on the same batches, one step of each in turn, and the
medians are compared. The other version is extracted with ``git archive`` into a temporary
folder and imported under another package name (graphmeta imports itself relatively).

    python benchmarks/compare_versions.py --base 795905e          # 3,000 steps each, 1 thread
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
    sys.path.insert(0, str(directory))
    return importlib.import_module("graphmeta_base")


def sinusoid_step(gm):
    family = gm.load_family("sinusoid", seed=0)
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(family.graph, "maml", inner_steps=1, inner_lr=0.01, message_passing=False)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batches = [family.sample(25, 10, 10, "train", seed=i) for i in range(50)]

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
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import graphmeta

    with tempfile.TemporaryDirectory() as directory:
        base = import_version(args.base, Path(directory))
        steps = {args.base: sinusoid_step(base), "this checkout": sinusoid_step(graphmeta)}
        times: dict[str, list[float]] = {name: [] for name in steps}
        for i in range(args.steps):
            for name, step in steps.items():
                start = time.perf_counter()
                step(i)
                times[name].append(time.perf_counter() - start)
    medians = {name: statistics.median(values[args.warmup:]) for name, values in times.items()}
    print(f"sinusoid MAML meta-step, {args.steps} interleaved steps each, {args.threads} thread(s), "
          f"load average {os.getloadavg()[0]:.1f}")
    for name, median in medians.items():
        print(f"  {name}: median {median * 1e3:.3f} ms")
    print(f"  this checkout / {args.base}: {medians['this checkout'] / medians[args.base]:.3f}")


if __name__ == "__main__":
    main()
