"""graphmeta eager and compiled against ``torch.func`` MAML eager and compiled, per meta-step.

Two workloads, each timed in one process with the contenders interleaved (one step of each in
turn, so a busy neighbour slows each alike), medians over ``--rounds`` rounds after the compiles:

* **sinusoid**: Finn et al.'s protocol (MLP 1-40-40-1, meta-batch 25, K = 10 support and 10 query
  shots, one inner SGD step of 0.01, second order). A step is forward, backward and Adam (1e-3).
  graphmeta: ``GraphMetaLearner(graph, "maml", message_passing=False)``, and a copy after
  ``model.compile()``; the peer: benchmarks/peers/torchfunc_maml.py (``vmap`` over tasks of a
  ``torch.func.grad`` inner step), and the same with its meta-loss under ``torch.compile``. Two
  more rows compile both with inductor's C++ wrapper (``options={"cpp_wrapper": True}``, the same
  option for each; on the CPU only).
* **N-node DAG** (``--nodes``, default 64): the graph, data and per-node ``torch.func`` loop of
  benchmarks/throughput.py (T = 16 tasks, K = 10, MLP 40-40 per node, one inner step, second
  order, message passing off); a step is forward and backward. The compiled peer is that loop's
  meta-loss under ``torch.compile``.

Compiles use PyTorch's defaults (inductor); their times are the first call's wall time, so they
include a warm compile cache where one exists (``TORCHINDUCTOR_CACHE_DIR``; ``--cold`` points it
at a fresh folder). Every contender's loss is checked to equal graphmeta eager's before timing.

    python benchmarks/compiled.py                 # both workloads, writes benchmarks/results/compiled.md
    python benchmarks/compiled.py --quick         # sinusoid only, few rounds, printed only
    python benchmarks/compiled.py --device cuda --mode reduce-overhead --nodes 4096   # on a GPU (CUDA graphs)
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent / "peers"))

from _results import ROOT, destination, graphmeta_commit, invocation, utc_now, write_results
from throughput import INNER_LR, T, random_dag, random_data, torch_func_peer
from torchfunc_maml import TorchFuncMAML

import graphmeta as gm

RESULTS = ROOT / "benchmarks" / "results" / "compiled.md"


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def first_call(step, device: str) -> float:
    """Wall seconds of ``step``'s first call (its compile, for a compiled one)."""
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def interleaved(steps: dict, rounds: int, device: str) -> dict[str, float]:
    """Median wall seconds per step of each contender, one step of each in turn."""
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, step in steps.items():
            start = time.perf_counter()
            step()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


class CppWrapperPeer(TorchFuncMAML):
    """The peer compiled with inductor's C++ wrapper (``options={"cpp_wrapper": True}``), beside
    graphmeta compiled alike; its own meta-loss function, so that its compiled code is looked up
    apart from the default peer's."""

    def _meta_loss(self, *args: torch.Tensor) -> torch.Tensor:
        return super()._meta_loss(*args)


def sinusoid(rounds: int, device: str, options: dict) -> tuple[dict[str, float], dict[str, float]]:
    family = gm.load_family("sinusoid", seed=0)
    batches = [family.sample(25, shots=10, query=10).to(device=device) for _ in range(16)]
    eager = gm.GraphMetaLearner(family.graph, "maml", inner_steps=1, inner_lr=0.01, message_passing=False).to(device)
    compiled = copy.deepcopy(eager)
    compiled.compile(**options)
    bank = eager.banks[0]
    linear = torch.nn.Sequential(torch.nn.Linear(1, 40), torch.nn.ReLU(), torch.nn.Linear(40, 40), torch.nn.ReLU(),
                                 torch.nn.Linear(40, 1))
    with torch.no_grad():  # the peers start from graphmeta's meta-initialisation
        for module, layer in zip(linear[::2], bank.layers):
            module.weight.copy_(bank.theta[f"{layer}_weight"][0].T)
            module.bias.copy_(bank.theta[f"{layer}_bias"][0])
    peer = TorchFuncMAML(copy.deepcopy(linear).to(device))
    peer_compiled = TorchFuncMAML(copy.deepcopy(linear).to(device))
    peer_compiled._meta_loss = torch.compile(peer_compiled._meta_loss, **options)
    models = [eager, compiled]
    peers = {"torch.func": peer, "torch.func compiled": peer_compiled}
    if device == "cpu" and not options:  # both with inductor's C++ wrapper
        compiled_cpp = copy.deepcopy(eager)
        compiled_cpp.compile(options={"cpp_wrapper": True})
        peer_cpp = CppWrapperPeer(copy.deepcopy(linear))
        peer_cpp._meta_loss = torch.compile(peer_cpp._meta_loss, options={"cpp_wrapper": True})
        models.append(compiled_cpp)
        peers["torch.func compiled, cpp_wrapper"] = peer_cpp
    optimizers = {model: torch.optim.Adam(model.parameters(), lr=1e-3) for model in models}
    turn = {"i": 0}

    def batch():
        return batches[turn["i"] % len(batches)]

    def graphmeta_step(model):
        def step():
            loss, _ = model.meta_loss(batch(), metrics=False)
            optimizers[model].zero_grad()
            loss.backward()
            optimizers[model].step()
            return loss
        return step

    def peer_step(impl):
        def step():
            b = batch()
            return impl.step(b.support.features, b.support.values, b.query.features, b.query.values)
        return step

    steps = {"graphmeta": graphmeta_step(eager), "graphmeta compiled": graphmeta_step(compiled)}
    if len(models) > 2:
        steps["graphmeta compiled, cpp_wrapper"] = graphmeta_step(models[2])
    steps.update({name: peer_step(impl) for name, impl in peers.items()})
    losses = {}
    compile_s = {}
    for name, step in steps.items():  # the first steps: the same loss from the same start
        compile_s[name] = first_call(lambda step=step, name=name: losses.__setitem__(name, step()), device)
    for name, loss in losses.items():
        torch.testing.assert_close(loss.detach(), losses["graphmeta"].detach(), rtol=1e-5, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: {m}")

    def advancing(step):
        def run():
            step()
            turn["i"] += 1 if step is last else 0
        return run

    last = list(steps.values())[-1]
    return interleaved({name: advancing(step) for name, step in steps.items()}, rounds, device), compile_s


def dag(num_nodes: int, rounds: int, device: str, options: dict) -> tuple[dict[str, float], dict[str, float]]:
    graph = random_dag(num_nodes)
    support, query = random_data(graph, T, 1, device), random_data(graph, T, 2, device)
    batch = gm.TaskBatch.from_tensors(graph, support, query)
    torch.manual_seed(0)
    eager = gm.GraphMetaLearner(graph, algorithm="maml", inner_steps=1, inner_lr=INNER_LR,
                                message_passing=False).to(device)
    compiled = copy.deepcopy(eager)
    compiled.compile(**options)
    peer_step, peer_loss = torch_func_peer(eager, graph, support, query, graph.names)
    compiled_peer_loss = torch.compile(peer_loss, **options)

    def graphmeta_step(model):
        def step():
            model.zero_grad(set_to_none=True)
            loss, _ = model.meta_loss(batch, metrics=False)
            loss.backward()
            return loss
        return step

    def compiled_peer_step():
        loss = compiled_peer_loss()
        loss.backward()
        return loss

    steps = {"graphmeta": graphmeta_step(eager), "graphmeta compiled": graphmeta_step(compiled),
             "torch.func": peer_step, "torch.func compiled": compiled_peer_step}
    losses, compile_s = {}, {}
    for name, step in steps.items():
        compile_s[name] = first_call(lambda step=step, name=name: losses.__setitem__(name, step()), device)
    for name, loss in losses.items():
        torch.testing.assert_close(loss.detach(), losses["graphmeta"].detach(), rtol=1e-4, atol=1e-6,
                                   msg=lambda m, name=name: f"{name}: {m}")
    return interleaved(steps, rounds, device), compile_s


def table(title: str, medians: dict[str, float], compile_s: dict[str, float]) -> list[str]:
    """Each contender's median step, and its speed against the compiled ``torch.func`` loop (the
    expert's program): that loop's step time over its own."""
    anchor = medians["torch.func compiled"]
    lines = [f"### {title}", "", "| contender | ms / step | speed vs torch.func compiled | first call, s |",
             "|---|---|---|---|"]
    for name, seconds in medians.items():
        lines.append(f"| {name} | {seconds * 1e3:.2f} | {anchor / seconds:.2f}x | {compile_s[name]:.1f} |")
    if "torch.func compiled, cpp_wrapper" in medians:
        ratio = medians["torch.func compiled, cpp_wrapper"] / medians["graphmeta compiled, cpp_wrapper"]
        lines += ["", f"Both with the C++ wrapper: graphmeta {ratio:.2f}x the torch.func peer."]
    return lines + [""]


def device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU, {os.cpu_count()} cores"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--nodes", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--dag-rounds", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--mode", default=None, help="torch.compile's mode for both (e.g. reduce-overhead on CUDA)")
    parser.add_argument("--cold", action="store_true", help="compile with an empty inductor cache")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--output", type=Path, default=None)
    args = parser.parse_args()
    if args.cold:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="graphmeta-inductor-")
    torch.set_num_threads(args.threads)
    options = {} if args.mode is None else {"mode": args.mode}
    started = time.perf_counter()
    lines = ["# Compiled meta-steps: graphmeta against torch.func, eager and compiled", "",
             f"`{invocation()}` at graphmeta {graphmeta_commit()}, {utc_now()}; torch {torch.__version__}, "
             f"{args.threads} thread(s), {device_name(args.device)}; load average at start "
             f"{os.getloadavg()[0]:.1f}. Medians of interleaved steps; see the script's docstring.", ""]
    medians, compile_s = sinusoid(20 if args.quick else args.rounds, args.device, options)
    lines += table(f"Sinusoid MAML (meta-batch 25, K = 10), {20 if args.quick else args.rounds} rounds",
                   medians, compile_s)
    print("\n".join(lines), flush=True)
    if not args.quick:
        medians, compile_s = dag(args.nodes, args.dag_rounds, args.device, options)
        part = table(f"{args.nodes}-node DAG (T = 16, K = 10, MLP 40-40, MP off), {args.dag_rounds} rounds",
                     medians, compile_s)
        print("\n".join(part), flush=True)
        lines += part
    lines.append(f"Whole run: {time.perf_counter() - started:.0f} s; load average at end {os.getloadavg()[0]:.1f}.")
    write_results("\n".join(lines) + "\n", destination(args.output, RESULTS, args.quick))


if __name__ == "__main__":
    main()
