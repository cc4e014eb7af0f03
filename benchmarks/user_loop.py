"""Learned inner rates in a plain user loop: finite, and as good as graphmeta's own run loop.

ARML's 2-d protocol (the ``arml-2d`` card; 5 inner steps at 0.001, Adam 1e-3, meta-batches of 25,
K = 10 support and query points; see ``benchmarks/arml.py``), trained two ways from the same
initial weights on the same meta-batches, one meta-iteration of each in turn:

* **user loop**: the loop a user writes around ``model.meta_loss``, ``Adam(model.parameters(),
  lr=1e-3)`` on every parameter, with no Trainer and no call that keeps the rates in range;
* **run loop**: ``Trainer.outer_step``, graphmeta's own (learned rates in their own Adam group,
  projected into ``[min_rate, max_rate]`` after each step).

Then the query MSE after 20 inner steps on 1,000 fixed test tasks (mean +- 1.96 s.e.), as
``benchmarks/arml.py`` measures it, and whether every parameter is finite.

    python benchmarks/user_loop.py                  # 1,500 iterations, Meta-SGD and MAML++
    python benchmarks/user_loop.py --iterations 200 --test-tasks 200
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from arml import PROTOCOL, mean_ci, task_mse  # noqa: E402 -- the ARML benchmark's protocol and evaluator

import graphmeta as gm  # noqa: E402


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--algorithms", nargs="+", default=["metasgd", "mamlpp"])
    parser.add_argument("--test-tasks", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    family = gm.load_family("arml-2d")
    test = family.sample(args.test_tasks, PROTOCOL["shots"], PROTOCOL["query"], split="test", seed=0)
    print(f"# plain user loop against the run loop, ARML 2-d protocol, {args.iterations} iterations, "
          f"{args.test_tasks} test tasks, torch threads {torch.get_num_threads()}")
    print("| algorithm | loop | first non-finite iteration | every parameter finite | "
          f"MSE, {PROTOCOL['test_steps']} steps | s/iteration |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    for algorithm in args.algorithms:
        for row in compare(family, test, algorithm, args.iterations):
            print(row, flush=True)


def compare(family, test, algorithm: str, iterations: int) -> list[str]:
    def build() -> gm.GraphMetaLearner:
        torch.manual_seed(0)
        return gm.GraphMetaLearner(family.graph, algorithm, inner_steps=PROTOCOL["inner_steps"],
                                   inner_lr=PROTOCOL["inner_lr"], message_passing=False)

    user, run = build(), build()
    optimizer = torch.optim.Adam(user.parameters(), lr=PROTOCOL["outer_lr"])
    with tempfile.TemporaryDirectory() as run_dir:
        trainer = gm.Trainer(run, family, steps=iterations, outer_lr=PROTOCOL["outer_lr"],
                             meta_batch_size=PROTOCOL["meta_batch"], shots=PROTOCOL["shots"],
                             query_shots=PROTOCOL["query"], progress=False, run_dir=run_dir, on_nonfinite="skip")
        nonfinite = {"user loop": None, "run loop": None}
        seconds = {"user loop": 0.0, "run loop": 0.0}
        for iteration in range(iterations):
            batch = family.sample(PROTOCOL["meta_batch"], PROTOCOL["shots"], PROTOCOL["query"], seed=iteration)
            start = time.perf_counter()
            loss, _ = user.meta_loss(batch, metrics=False)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            seconds["user loop"] += time.perf_counter() - start
            if nonfinite["user loop"] is None and not torch.isfinite(loss):
                nonfinite["user loop"] = iteration
            start = time.perf_counter()
            update = trainer.outer_step(batch, metrics=False)
            seconds["run loop"] += time.perf_counter() - start
            if nonfinite["run loop"] is None and update is None:
                nonfinite["run loop"] = iteration
    rows = []
    for loop, model in (("user loop", user), ("run loop", run)):
        finite = all(bool(torch.isfinite(p).all()) for p in model.parameters())
        mean, half_width, _, _ = mean_ci(task_mse(model, test, PROTOCOL["test_steps"]))
        first = "none" if nonfinite[loop] is None else str(nonfinite[loop])
        rows.append(f"| {algorithm} | {loop} | {first} | {'yes' if finite else 'no'} | {mean:.3f} ± {half_width:.3f} "
                    f"| {seconds[loop] / iterations:.3f} |")
    return rows


if __name__ == "__main__":
    main()
