"""Task-sampling throughput of the task families: tasks per second, as a markdown table.

Each row times ``family.sample(T, K, Q)`` (fresh tasks every call: parameters, joint ancestral
draws, the packed ``TaskBatch``) until ``--seconds`` have passed, after one warm-up call, and
reports the best of ``--repeats`` rounds. Numpy and torch are pinned to ``--threads`` threads
(default 1) before they are imported.

    python benchmarks/sampling.py                  # the default table (1 thread)
    python benchmarks/sampling.py --threads 2 --seconds 2
"""

from __future__ import annotations

import argparse
import functools
import os
import platform
import sys
import time

CASES = (  # (card, overrides, tasks, support shots, query shots)
    ("alarm-dirichlet", {}, 32, 20, 20),
    ("alarm-dirichlet", {}, 256, 20, 20),
    ("alarm-latent", {}, 256, 20, 20),
    ("asia-dirichlet", {}, 256, 20, 20),
    ("child-latent", {}, 256, 20, 20),
    ("ecoli70-gaussian", {}, 256, 20, 20),
    ("compositional-chain", {"num_nodes": 1024}, 32, 20, 20),
    ("compositional-tree", {"num_nodes": 1024}, 32, 20, 20),
    ("compositional-dag", {"num_nodes": 1024}, 32, 20, 20),
    ("compositional-independent", {"num_nodes": 1024}, 32, 20, 20),
    ("sinusoid", {}, 1024, 10, 10),
    ("graph-subtasks", {}, 256, 20, 20),
)


def rate(call, tasks: int, seconds: float, repeats: int) -> float:
    """Best tasks/s over ``repeats`` rounds of calling ``call`` for ``seconds`` each."""
    call()
    best = 0.0
    for _ in range(repeats):
        calls, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            call()
            calls += 1
        best = max(best, calls * tasks / elapsed)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="numpy / torch threads (default 1)")
    parser.add_argument("--seconds", type=float, default=1.0, help="time per round (default 1)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds per row; the best is kept (default 3)")
    args = parser.parse_args()
    for variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[variable] = str(args.threads)

    import numpy as np
    import torch

    import graphmeta

    torch.set_num_threads(args.threads)
    print(f"`python {' '.join(sys.argv)}`\n")
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load average "
          f"{os.getloadavg()[0]:.1f}; {torch.get_num_threads()} thread(s); torch {torch.__version__}, "
          f"numpy {np.__version__}, graphmeta {graphmeta.__version__}\n")
    print("| card | overrides | nodes | T | K + Q | tasks/s | ms / batch |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for card, overrides, tasks, shots, query in CASES:
        family = graphmeta.load_family(card, **overrides)
        per_second = rate(functools.partial(family.sample, tasks, shots, query), tasks, args.seconds, args.repeats)
        options = ", ".join(f"{k}={v}" for k, v in overrides.items()) or "-"
        print(f"| {card} | {options} | {len(family.graph)} | {tasks} | {shots} + {query} | "
              f"{per_second:,.0f} | {1000 * tasks / per_second:.1f} |", flush=True)
    family = graphmeta.load_family("alarm-dirichlet")
    per_second = rate(functools.partial(family.sample_dataframes, 32, 40), 32, args.seconds, args.repeats)
    print(f"| alarm-dirichlet, `sample_dataframes` | - | {len(family.graph)} | 32 | 40 rows | "
          f"{per_second:,.0f} | {1000 * 32 / per_second:.1f} |")


if __name__ == "__main__":
    main()
