"""Meta-step throughput of the batched engine against the per-node reference loop.

One meta-step = forward + backward of ``GraphMetaLearner.meta_loss(batch, metrics=False)``: T=16 tasks, K=10
support and 10 query shots, 8-dim own inputs, MLP 40-40, second-order MAML, one inner step,
on random DAGs of N nodes (each node has up to two parents), message passing off and on.

Each configuration runs in a fresh subprocess so its peak memory (max RSS above the
process's footprint after warm-up imports) is its own. The per-node reference
(:mod:`graphmeta.testing.reference`, one ``autograd.grad`` per task and node, as a
learn2learn-style loop runs) is timed in full up to ``--reference-max`` (task, node) pairs;
beyond that it is timed on a sample of tasks and extrapolated linearly in T x N, and the
table says so. Achieved GFLOP/s (matmul FLOPs counted by ``torch.utils.flop_counter``) is
shown next to a 2048 x 2048 float32 matmul on the same machine and thread count.

    python benchmarks/throughput.py                 # the README table (1 thread)
    python benchmarks/throughput.py --nodes 1 8 64  # a subset
    python benchmarks/throughput.py --device cuda --nodes 64 4096 65536
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

T, K, IN_DIM, HIDDEN = 16, 10, 8, (40, 40)


def random_dag(num_nodes: int, seed: int = 0):
    import graphmeta as gm

    generator = torch.Generator().manual_seed(seed)
    graph = gm.TaskGraph(name=f"random-dag-{num_nodes}")
    for i in range(num_nodes):
        graph.add_subtask(f"n{i}", in_dim=IN_DIM, learner=gm.MLP(hidden=HIDDEN))
        if i:
            for parent in set(torch.randint(0, i, (2,), generator=generator).tolist()):
                graph.add_dependency(f"n{parent}", f"n{i}")
    return graph


def random_data(graph, num_tasks: int, seed: int, device: str):
    generator = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(num_tasks, K, IN_DIM, generator=generator).to(device),
                   torch.randn(num_tasks, K, 1, generator=generator).to(device)) for name in graph.names}


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def time_call(step, device: str, repeats: int, min_seconds: float = 1.0) -> float:
    """Median seconds of ``step()`` after one warm-up call."""
    step()
    synchronize(device)
    times = []
    start = time.perf_counter()
    while len(times) < repeats or (time.perf_counter() - start < min_seconds and len(times) < 50):
        t0 = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


class MatmulFlops(TorchDispatchMode):
    """Counts the FLOPs of every op ``torch.utils.flop_counter`` knows (matmuls, convolutions)."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        if func._overloadpacket in flop_registry:
            self.total += flop_registry[func._overloadpacket](*args, **kwargs, out_val=out)
        return out


def run_one(num_nodes: int, message_passing: bool, device: str, reference_max: int) -> dict:
    """Time one configuration; called in its own subprocess."""
    import graphmeta as gm
    from graphmeta.allocator import reuse_large_allocations
    from graphmeta.testing.reference import reference_meta_loss

    reuse_large_allocations()
    torch.manual_seed(0)
    graph = random_dag(num_nodes)
    support, query = random_data(graph, T, 1, device), random_data(graph, T, 2, device)
    batch = gm.TaskBatch.from_tensors(graph, support, query)
    model = gm.GraphMetaLearner(graph, algorithm="maml", inner_steps=1, inner_lr=0.01,
                                message_passing=message_passing).to(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    def step():
        model.zero_grad(set_to_none=True)
        loss, _ = model.meta_loss(batch, metrics=False)
        loss.backward()

    seconds = time_call(step, device, repeats=5 if num_nodes < 4096 else 3)
    if device == "cuda":
        peak_mb = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak_mb = max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline_rss) / 1024
    with MatmulFlops() as counter:
        step()
    flops = counter.total

    result = {"nodes": num_nodes, "message_passing": message_passing, "seconds": seconds,
              "peak_mb": peak_mb, "gflops": flops / seconds / 1e9}
    if not message_passing:
        sample_tasks = max(1, min(T, reference_max // num_nodes))
        ref_support = {k: (x[:sample_tasks], y[:sample_tasks]) for k, (x, y) in support.items()}
        ref_query = {k: (x[:sample_tasks], y[:sample_tasks]) for k, (x, y) in query.items()}

        def reference_step():
            model.zero_grad(set_to_none=True)
            reference_meta_loss(model, ref_support, ref_query).backward()

        reference_seconds = time_call(reference_step, device, repeats=1, min_seconds=0.0)
        result["reference_seconds"] = reference_seconds * T / sample_tasks
        result["reference_extrapolated"] = sample_tasks < T
    return result


def matmul_gflops(device: str) -> float:
    a = torch.randn(2048, 2048, device=device)
    b = torch.randn(2048, 2048, device=device)
    seconds = time_call(lambda: a @ b, device, repeats=5)
    return 2 * 2048**3 / seconds / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 8, 64, 512, 4096])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reference-max", type=int, default=1024,
                        help="largest T x N the reference loop is timed in full; beyond, sampled and extrapolated")
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mp", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one is not None:
        print(json.dumps(run_one(args.one, args.mp, args.device, args.reference_max)))
        return

    rows = []
    for nodes in args.nodes:
        for mp in (False, True):
            command = [sys.executable, __file__, "--one", str(nodes), "--threads", str(args.threads),
                       "--device", args.device, "--reference-max", str(args.reference_max)] + (["--mp"] if mp else [])
            output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
            rows.append(json.loads(output.strip().splitlines()[-1]))
            print(f"  measured N={nodes} message_passing={mp}", file=sys.stderr)
    peak = matmul_gflops(args.device)
    by_key = {(r["nodes"], r["message_passing"]): r for r in rows}
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    print(f"\nMeta-step (forward + backward of meta_loss), T={T}, K={K}+{K}, in_dim={IN_DIM}, MLP 40-40, "
          f"second-order MAML, 1 inner step; {device}, {args.threads} thread(s), "
          "graphmeta.allocator.reuse_large_allocations() on; "
          f"2048x2048 matmul: {peak:.1f} GFLOP/s\n")
    print("| N | step, MP off | step, MP on | MP overhead | per node, MP off | reference loop | speed-up "
          "| peak mem MP off / on | GFLOP/s MP off |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for nodes in args.nodes:
        off, on = by_key[nodes, False], by_key[nodes, True]
        reference = f"{off['reference_seconds']:.3g} s" + (" (extrapolated)" if off["reference_extrapolated"] else "")
        print(f"| {nodes} | {off['seconds'] * 1e3:.2f} ms | {on['seconds'] * 1e3:.2f} ms "
              f"| {on['seconds'] / off['seconds'] - 1:+.0%} | {off['seconds'] / nodes * 1e6:.1f} us "
              f"| {reference} | {off['reference_seconds'] / off['seconds']:.0f}x "
              f"| {off['peak_mb']:.0f} / {on['peak_mb']:.0f} MB | {off['gflops']:.2f} |")
    n64, n4096 = by_key.get((64, False)), by_key.get((4096, False))
    if n64 and n4096:
        ratio = (n4096["seconds"] / 4096) / (n64["seconds"] / 64)
        print(f"\nper-node time at N=4096 / at N=64: {ratio:.2f}")
    print(f"\ncommand: python benchmarks/throughput.py {' '.join(sys.argv[1:])}".rstrip())


if __name__ == "__main__":
    main()
