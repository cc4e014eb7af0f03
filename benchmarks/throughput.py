"""Meta-step throughput of graphmeta against a hand-written ``torch.func`` per-node loop.

One meta-step = forward + backward of ``GraphMetaLearner.meta_loss(batch, metrics=False)``: T=16 tasks, K=10
support and 10 query shots, 8-dim own inputs, MLP 40-40, second-order MAML, one inner step,
on random DAGs of N nodes (each node has up to two parents), message passing off and on.

The script does what a user script does: it builds the model and calls ``meta_loss``; it
calls nothing to tune torch or ``malloc`` but ``torch.set_num_threads(--threads)``.

The peer is the strongest loop one writes by hand for this graph: for each node, an
``nn.Module`` MLP whose second-order MAML loss runs as ``torch.func.vmap`` over the 16 tasks,
``torch.func.grad`` inside and ``functional_call`` on the adapted weights, initialised from the
model's own weights (its loss is checked to equal graphmeta's). Beyond ``--peer-nodes`` nodes the
peer runs on the first ``--peer-nodes`` and its time is scaled by N over that (its cost is a
sum over nodes), and the table says so.

Every timing of one N comes from one process, in rounds: a step with message passing off, a
step with it on, a peer step, three per-node-shape matmuls ``[N, 160, 40] @ [N, 40, 40]``
(the shapes of one node's 160 rows through a 40x40 layer), so a busy neighbour slows each alike;
the table shows medians. Achieved GFLOP/s counts the matmul FLOPs of the executed step
(``torch.utils.flop_counter``; element-wise work uncounted) over its median time. Peak memory
is the growth of the max RSS over two steps, in a fresh process per configuration: as a user
gets it (the engine turns ``malloc``'s page recycling on at its first step, which keeps the
peak heap, holes included) and with ``GRAPHMETA_REUSE_ALLOCATIONS=0`` (glibc's defaults, the
memory the step really holds, at the price of page faults).

    python benchmarks/throughput.py                      # the README table (1 thread)
    python benchmarks/throughput.py --nodes 64 --rounds 5 # a quick look
    python benchmarks/throughput.py --device cuda --nodes 64 4096 65536
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from _results import ROOT, destination, graphmeta_commit, write_results
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils.flop_counter import flop_registry

from graphmeta.allocator import OPT_OUT_VARIABLE

T, K, IN_DIM, HIDDEN, INNER_LR = 16, 10, 8, (40, 40), 0.01
RESULTS = ROOT / "benchmarks" / "results" / "throughput.md"


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


def random_data(graph, num_tasks: int, seed: int, device: str) -> dict:
    generator = torch.Generator().manual_seed(seed)
    return {name: (torch.randn(num_tasks, K, IN_DIM, generator=generator).to(device),
                   torch.randn(num_tasks, K, 1, generator=generator).to(device)) for name in graph.names}


def synchronize(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


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


def torch_func_peer(model, graph, support: dict, query: dict, nodes: list[str]):
    """The peer's meta-step on ``nodes``: per node a vmap over tasks of second-order MAML, the
    node's loss the mean over tasks, the step's loss the mean over ``nodes``; MLPs initialised
    from the model's meta-initialisation (unpadded), so the loss is the model's."""
    bank = model.banks[0]
    theta = {name: p.detach() for name, p in bank.theta.items()}

    def inputs(data: dict, name: str) -> torch.Tensor:
        return torch.cat([data[name][0]] + [data[parent][1] for parent in graph.parents(name)], dim=-1)

    steps = []
    for name in nodes:
        row, width = bank.names.index(name), IN_DIM + len(graph.parents(name))
        widths = [width, *HIDDEN, 1]
        mlp = nn.Sequential(*[module for d_in, d_out in zip(widths[:-1], widths[1:])
                              for module in (nn.Linear(d_in, d_out), nn.ReLU())][:-1]).to(support[name][0].device)
        with torch.no_grad():
            for linear, layer in zip(mlp[::2], bank.layers):
                linear.weight.copy_(theta[f"{layer}_weight"][row, :linear.in_features].T)
                linear.bias.copy_(theta[f"{layer}_bias"][row])

        def loss(params, x, y, mlp=mlp):
            return ((functional_call(mlp, params, (x,)) - y) ** 2).mean()

        def task_loss(params, x_support, y_support, x_query, y_query, loss=loss):
            grads = grad(loss)(params, x_support, y_support)
            adapted = {key: params[key] - INNER_LR * grads[key] for key in params}
            return loss(adapted, x_query, y_query)

        data = (inputs(support, name), support[name][1], inputs(query, name), query[name][1])
        steps.append((mlp, vmap(task_loss, in_dims=(None, 0, 0, 0, 0)), data))

    def meta_loss() -> torch.Tensor:
        return sum(node_loss(dict(mlp.named_parameters()), *data).mean() for mlp, node_loss, data in steps) / len(steps)

    def step() -> torch.Tensor:
        for mlp, _, _ in steps:
            mlp.zero_grad(set_to_none=True)
        loss = meta_loss()
        loss.backward()
        return loss

    return step, meta_loss


def timing(num_nodes: int, device: str, rounds: int, peer_nodes: int) -> dict:
    """Interleaved medians for one N (run in its own process; see the module docstring)."""
    import graphmeta as gm

    graph = random_dag(num_nodes)
    support, query = random_data(graph, T, 1, device), random_data(graph, T, 2, device)
    batch = gm.TaskBatch.from_tensors(graph, support, query)
    models = {}
    for message_passing in (False, True):
        torch.manual_seed(0)
        models[message_passing] = gm.GraphMetaLearner(graph, algorithm="maml", inner_steps=1, inner_lr=INNER_LR,
                                                      message_passing=message_passing).to(device)

    def graphmeta_step(message_passing: bool):
        model = models[message_passing]

        def step() -> None:
            model.zero_grad(set_to_none=True)
            loss, _ = model.meta_loss(batch, metrics=False)
            loss.backward()
        return step

    sampled = graph.names[:min(num_nodes, peer_nodes)]
    peer_step, peer_loss = torch_func_peer(models[False], graph, support, query, sampled)
    if len(sampled) == num_nodes:  # the same loss, so the same work
        ours = models[False].meta_loss(batch, metrics=False)[0]
        torch.testing.assert_close(peer_loss(), ours, rtol=1e-4, atol=1e-6)
    layer_input = torch.randn(num_nodes, T * K, HIDDEN[0], device=device)
    layer_weight = torch.randn(num_nodes, HIDDEN[0], HIDDEN[1], device=device)

    contenders = {"off": graphmeta_step(False), "on": graphmeta_step(True), "peer": peer_step,
                  "matmul": lambda: torch.bmm(layer_input, layer_weight)}
    wall: dict[str, list[float]] = {name: [] for name in contenders}
    cpu: dict[str, list[float]] = {name: [] for name in contenders}
    for run in contenders.values():  # warm-up: first-call costs
        run()
    synchronize(device)
    loads = [os.getloadavg()[0]]
    for _ in range(rounds):
        for name, run in contenders.items():
            for _ in range(3 if name == "matmul" else 1):
                start, start_cpu = time.perf_counter(), time.thread_time()
                run()
                synchronize(device)
                wall[name].append(time.perf_counter() - start)
                cpu[name].append(time.thread_time() - start_cpu)
    loads.append(os.getloadavg()[0])
    with MatmulFlops() as counter:
        graphmeta_step(False)()
    matmul_flops = 2 * num_nodes * T * K * HIDDEN[0] * HIDDEN[1]
    result = {"nodes": num_nodes, "peer_nodes": len(sampled), "flops": counter.total, "matmul_flops": matmul_flops,
              "load": loads, "rounds": rounds}
    for clock, seconds in (("wall", wall), ("cpu", cpu)):
        median = {name: statistics.median(values) for name, values in seconds.items()}
        result[clock] = {"off": median["off"], "on": median["on"], "peer": median["peer"] * num_nodes / len(sampled),
                         "matmul": median["matmul"]}
    return result


def peak_memory(num_nodes: int, message_passing: bool, device: str) -> float:
    """MB the max RSS (CUDA: the allocator's peak) grows by over two meta-steps; in its own process."""
    import graphmeta as gm

    graph = random_dag(num_nodes)
    batch = gm.TaskBatch.from_tensors(graph, random_data(graph, T, 1, device), random_data(graph, T, 2, device))
    torch.manual_seed(0)
    model = gm.GraphMetaLearner(graph, algorithm="maml", inner_steps=1, inner_lr=INNER_LR,
                                message_passing=message_passing).to(device)
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(2):
        model.zero_grad(set_to_none=True)
        loss, _ = model.meta_loss(batch, metrics=False)
        loss.backward()
    if device == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - baseline) / 1024


def in_subprocess(args: argparse.Namespace, *extra: str, environment: dict[str, str] | None = None) -> dict | float:
    command = [sys.executable, __file__, "--threads", str(args.threads), "--device", args.device,
               "--rounds", str(args.rounds), "--peer-nodes", str(args.peer_nodes), *extra]
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env={**os.environ, **(environment or {})}).stdout
    return json.loads(output.strip().splitlines()[-1])


def report(rows: list[dict], memory: dict, args: argparse.Namespace, device: str, started: datetime.datetime,
           minutes: float) -> str:
    loads = [load for row in rows for load in row["load"]]
    lines = [
        "# Meta-step throughput: graphmeta and a torch.func per-node loop", "",
        f"- command: `{shlex.join(['python', 'benchmarks/throughput.py', *sys.argv[1:]])}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; run time {minutes:.1f} min; graphmeta at {graphmeta_commit()}",
        f"- {device}, torch {torch.__version__}, {args.threads} thread(s) (`torch.set_num_threads`), "
        f"{os.cpu_count()} cores visible; 1-min load average during the timings {min(loads):.1f}-{max(loads):.1f}: "
        "the machine is shared, so every comparison is of steps interleaved in one process, and each cell "
        "gives the median wall time and, in brackets, the median CPU time of the thread (what the step cost "
        "while it ran)",
        f"- meta-step: forward + backward of `meta_loss(batch, metrics=False)`, T={T}, K={K}+{K}, in_dim={IN_DIM}, "
        "MLP 40-40, second-order MAML, 1 inner step; medians of "
        + ", ".join(f"{row['rounds']} rounds at N={row['nodes']}" for row in rows), "",
        "| N | step, MP off | step, MP on | MP overhead | per node, MP off | torch.func peer | speed-up over peer |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]

    def both(row: dict, cell) -> str:
        """``cell(figures)`` for the wall-clock figures, then for the CPU-time ones in brackets."""
        return f"{cell(row['wall'])} ({cell(row['cpu'])})"

    for row in rows:
        n = row["nodes"]
        sampled = f", from {row['peer_nodes']} nodes" if row["peer_nodes"] < n else ""
        cells = [both(row, lambda f: f"{f['off'] * 1e3:.1f} ms"), both(row, lambda f: f"{f['on'] * 1e3:.1f} ms"),
                 both(row, lambda f: f"{f['on'] / f['off'] - 1:+.0%}"),
                 both(row, lambda f: f"{f['off'] / n * 1e6:.0f} us"),
                 both(row, lambda f: f"{f['peer'] * 1e3:.0f} ms") + sampled,
                 both(row, lambda f: f"{f['peer'] / f['off']:.1f}x")]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    lines += ["", "| N | step matmul FLOPs | step GFLOP/s | per-node matmul GFLOP/s | step / matmul rate "
                  "| peak mem MP off / on | peak mem per node, MP off | the same, glibc's malloc defaults |",
              "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        n, off_mb, on_mb = row["nodes"], memory[row["nodes"], False], memory[row["nodes"], True]

        def step_rate(f: dict, row=row) -> float:
            return row["flops"] / f["off"] / 1e9

        def matmul_rate(f: dict, row=row) -> float:
            return row["matmul_flops"] / f["matmul"] / 1e9

        cells = [f"{row['flops'] / 1e6:.0f} M", both(row, lambda f: f"{step_rate(f):.1f}"),
                 both(row, lambda f: f"{matmul_rate(f):.1f}"),
                 both(row, lambda f: f"{step_rate(f) / matmul_rate(f):.0%}"),
                 f"{off_mb:.0f} / {on_mb:.0f} MB", f"{off_mb / n * 1024:.0f} KB",
                 f"{memory[n, 'malloc defaults'] / n * 1024:.0f} KB"]
        lines.append(f"| {n} | " + " | ".join(cells) + " |")
    by_nodes = {row["nodes"]: row for row in rows}
    if 64 in by_nodes and 4096 in by_nodes:
        ratio = {c: (by_nodes[4096][c]["off"] / 4096) / (by_nodes[64][c]["off"] / 64) for c in ("wall", "cpu")}
        lines += ["", f"Per-node time at N=4096 / at N=64: {ratio['wall']:.2f} ({ratio['cpu']:.2f})."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--nodes", type=int, nargs="+", default=[1, 8, 64, 512, 4096])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=15,
                        help="interleaved rounds per N (N >= 4096: a third, at least 3)")
    parser.add_argument("--peer-nodes", type=int, default=512, help="largest N the peer runs in full; beyond, sampled")
    parser.add_argument("--output", type=Path, help=f"where to write the report (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--timing", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--memory", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--mp", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.timing is not None:
        rounds = args.rounds if args.timing < 4096 else max(3, args.rounds // 3)
        print(json.dumps(timing(args.timing, args.device, rounds, args.peer_nodes)))
        return
    if args.memory is not None:
        print(json.dumps(peak_memory(args.memory, args.mp, args.device)))
        return

    started, clock = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    rows, memory = [], {}
    for nodes in args.nodes:
        rows.append(in_subprocess(args, "--timing", str(nodes)))
        for message_passing in (False, True):
            memory[nodes, message_passing] = in_subprocess(args, "--memory", str(nodes),
                                                           *(["--mp"] if message_passing else []))
        memory[nodes, "malloc defaults"] = in_subprocess(args, "--memory", str(nodes),
                                                         environment={OPT_OUT_VARIABLE: "0"})
        print(f"  measured N={nodes}", file=sys.stderr)
    device = torch.cuda.get_device_name() if args.device == "cuda" else "CPU"
    text = report(rows, memory, args, device, started, (time.perf_counter() - clock) / 60)
    print(text)
    write_results(text, destination(args.output, RESULTS, quick=args.nodes != parser.get_default("nodes")))


if __name__ == "__main__":
    main()
