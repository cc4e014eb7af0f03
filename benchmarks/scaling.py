"""Data-parallel scaling: meta-steps per second on 1 and 2 processes of this machine, 1 thread each.

Each round starts the processes as ``torchrun --standalone`` would
(:func:`graphmeta.train.launch.run_on_processes`, gloo on CPU); every process builds the
case's model from the same seed and runs the training step of :class:`graphmeta.Trainer`: the
next meta-batch of the :class:`~graphmeta.train.episode_sampler.EpisodeSampler` (every process samples
the whole meta-batch and keeps its share) and one :func:`~graphmeta.train.outer_step.meta_update`
through the model's DDP replica (with the per-node metrics on the step that ends each log window, as
the Trainer takes them), ``--warmup`` steps untimed, then ``--steps`` timed. Rounds
alternate 1 and 2 processes ``--repeats`` times and each row keeps its fastest round, so a
burst of load from other jobs costs a row its worst round, not its figure.

CPU ms is the processor time a process spent per step (``time.process_time``, all its threads),
of the busier process: unlike the wall time it barely grows when other jobs take the cores, and
the ratio of one process's CPU time to the busier one's of two is the speed-up two idle cores
would allow at best. It is reported beside the measured speed-up, never in its place.

The all-reduce share is the time from launching to completing the all-reduces of a step (the
gradient buckets, timed by a DDP communication hook, and the meta-loss and metrics, timed
around ``torch.distributed.all_reduce``) over the step's time. It includes waiting for the
other process to arrive, and DDP overlaps the gradient buckets with the rest of the backward
pass, so it bounds the cost of communication from above.

    python benchmarks/scaling.py                     # the table of the README (writes benchmarks/results/scaling.md)
    python benchmarks/scaling.py --quick             # fewer steps, writes nothing
    python benchmarks/scaling.py --compile --cards alarm-latent --output benchmarks/results/scaling_compiled.md

``--compile`` runs every process's model after ``model.compile(adapt=False)`` (as ``train.compile:
true`` does); the warm-up steps then include the compile, on each process.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _results import ROOT, destination, graphmeta_commit, write_results  # noqa: E402


@dataclass(frozen=True)
class Case:
    """One row pair of the table: a card, its overrides, the model and the meta-batch."""

    card: str
    overrides: dict[str, Any] = field(default_factory=dict)
    model: dict[str, Any] = field(default_factory=dict)
    meta_batch_size: int = 32
    shots: int = 5
    query_shots: int = 15

    @property
    def label(self) -> str:
        return self.card + "".join(f", {key}={value}" for key, value in self.overrides.items())


CASES = (  # the models of examples/configs/alarm-latent.yaml and compositional-dag.yaml
    Case("alarm-latent", {}, {"algorithm": "maml", "inner_steps": 1, "inner_lr": 0.5, "message_passing": True},
         shots=3),
    Case("compositional-dag", {"num_nodes": 512}, {"algorithm": "maml", "inner_steps": 1, "inner_lr": 0.1,
                                                   "message_passing": True, "message_channels": 32,
                                                   "message_rounds": 2}),
)


def measure(cases: tuple[Case, ...], warmup: int, steps: int, compiled: bool = False) -> list[dict[str, float]]:
    """In each process of the run: time ``steps`` training steps of every case; rank 0's figures."""
    import torch
    import torch.distributed as dist
    from torch.distributed.algorithms.ddp_comm_hooks import default_hooks

    import graphmeta as gm
    from graphmeta.train.config import TrainConfig
    from graphmeta.train.distributed import join_data_parallel_group
    from graphmeta.train.episode_sampler import EpisodeSampler
    from graphmeta.train.outer_step import meta_update

    torch.set_num_threads(1)
    group = join_data_parallel_group()
    communication: list[float] = []

    def timed_bucket(state, bucket):  # unannotated: DDP checks a hook's annotations against its own types
        start = time.perf_counter()

        def done(future: Any) -> Any:
            communication.append(time.perf_counter() - start)
            return future.value()

        return default_hooks.allreduce_hook(None, bucket).then(done)

    def timed_all_reduce(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return all_reduce(*args, **kwargs)
        finally:
            communication.append(time.perf_counter() - start)

    all_reduce = dist.all_reduce
    dist.all_reduce = timed_all_reduce  # the meta-loss and metrics (Replica.mean); this process ends after
    log_every = TrainConfig().log_every
    results = []
    for case in cases:
        family = gm.load_family(case.card, **case.overrides)
        torch.manual_seed(0)
        model = gm.GraphMetaLearner(family.graph, **case.model)
        if compiled:
            model.compile(adapt=False)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        share = group.share(case.meta_batch_size) if group.world_size > 1 else None
        sampler = EpisodeSampler(family, case.meta_batch_size, case.shots, case.query_shots, seed=0, share=share)
        replica = group.replicate(model)
        if replica is not None:
            replica.module.register_comm_hook(None, timed_bucket)
        sampling = 0.0
        for step in range(warmup + steps):
            if step == warmup:
                group.barrier()
                communication.clear()
                sampling, start, cpu_start = 0.0, time.perf_counter(), time.process_time()
            before = time.perf_counter()
            batch = sampler.next()
            sampling += time.perf_counter() - before
            # as the Trainer does: the per-node metrics on the step that ends a log window (every step compiled)
            metrics = (step + 1) % log_every == 0 or compiled
            meta_update(model, optimizer, batch, None, metrics, replica)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        cpus = [cpu]
        if group.world_size > 1:
            cpus = [0.0] * group.world_size
            dist.all_gather_object(cpus, cpu)
        results.append({"step_s": elapsed / steps, "cpu_s": max(cpus) / steps, "sampling_s": sampling / steps,
                        "all_reduce_s": sum(communication) / steps})
        group.barrier()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per case and round (default 20)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (default 3)")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of 1 and 2 processes (default 3)")
    parser.add_argument("--quick", action="store_true", help="5 steps, 1 round, write nothing")
    parser.add_argument("--compile", action="store_true", help="compile each process's model (module docstring)")
    parser.add_argument("--cards", nargs="+", help="only the cases of these cards")
    parser.add_argument("--output", type=Path, help="markdown file (default benchmarks/results/scaling.md)")
    args = parser.parse_args()
    if args.quick:
        args.steps, args.warmup, args.repeats = 5, 1, 1
    os.environ["OMP_NUM_THREADS"] = "1"

    import torch

    import graphmeta
    from graphmeta.train.launch import run_on_processes

    started, load_before = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), os.getloadavg()
    cases = tuple(case for case in CASES if args.cards is None or case.card in args.cards)
    best: dict[tuple[int, int], dict[str, float]] = {}
    loads = []
    for _ in range(args.repeats):
        for processes in (1, 2):
            rows = run_on_processes(processes, measure, cases, args.warmup, args.steps, args.compile)
            loads.append(os.getloadavg()[0])
            for index, row in enumerate(rows):
                kept = best.get((index, processes))
                if kept is None or row["step_s"] < kept["step_s"]:
                    best[(index, processes)] = row
    load_after = os.getloadavg()

    lines = [f"# Data-parallel scaling (run of {started}, {args.repeats} rounds of {args.steps} timed steps)", "",
             f"`python benchmarks/{Path(__file__).name}{' ' if len(sys.argv) > 1 else ''}{' '.join(sys.argv[1:])}` "
             f"- graphmeta {graphmeta.__version__} ({graphmeta_commit()}), torch {torch.__version__}, "
             f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, 1 thread per process, gloo"
             f"{', every model compiled (model.compile())' if args.compile else ''}", "",
             "| card | nodes | meta-batch | processes | meta-steps/s | ms / step | speed-up | efficiency | "
             "CPU ms / step (busier process) | CPU-time ratio | sampling ms | all-reduce ms (share) |",
             "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for index, case in enumerate(cases):
        nodes = len(graphmeta.load_family(case.card, **case.overrides).graph)
        single = best[(index, 1)]
        for processes in (1, 2):
            row = best[(index, processes)]
            speedup = single["step_s"] / row["step_s"]
            lines.append(f"| {case.label} | {nodes} | {case.meta_batch_size} | {processes} | {1 / row['step_s']:.2f} | "
                         f"{1000 * row['step_s']:.1f} | {speedup:.2f}x | {speedup / processes:.0%} | "
                         f"{1000 * row['cpu_s']:.1f} | {single['cpu_s'] / row['cpu_s']:.2f}x | "
                         f"{1000 * row['sampling_s']:.1f} | {1000 * row['all_reduce_s']:.1f} "
                         f"({row['all_reduce_s'] / row['step_s']:.0%}) |")
    lines += ["", f"Load average (1 min) {load_before[0]:.2f} before the run, {', '.join(f'{x:.2f}' for x in loads)} "
              f"after each round, {load_after[0]:.2f} at the end; this machine has {os.cpu_count()} cores, so a load "
              "above that means other jobs competed with the processes for them.",
              "Each process samples the whole meta-batch (sampling ms) and keeps its share, so that part does "
              "not shrink with more processes. Target: >= 1.6x at 2 processes on an otherwise idle machine."]
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(text, destination(args.output, ROOT / "benchmarks" / "results" / "scaling.md", args.quick))


if __name__ == "__main__":
    main()
