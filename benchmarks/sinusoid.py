"""Sinusoid regression, the protocol of Finn et al. (2017), for graphmeta and its peers.

Protocol: a 1-40-40-1 ReLU MLP; tasks ``y = A sin(x - phi)``, ``A ~ U[0.1, 5]``,
``phi ~ U[0, pi]``, ``x ~ U[-5, 5]``; K = 10 support and 10 query points; meta-batch 25;
inner SGD lr 0.01, 1 inner step in training; Adam 1e-3 outside. Evaluation: 1,000 fixed test
tasks, query MSE after 1 and after 10 inner steps, mean +- 95% CI (1.96 standard errors).

Rows: graphmeta's MAML, first-order MAML, Meta-SGD and Reptile (one node, so
``message_passing=False``), and MAML as learn2learn, higher and a plain ``torch.func`` program
write it, the last also with its meta-loss under ``torch.compile`` (PyTorch's defaults). Every learner starts from the same initial weights and sees the same meta-batches,
one meta-iteration of each in turn (interleaved), so the timings share the machine's noise.
Only the meta-iteration itself is timed (forward, inner loop, backward, Adam step), not the
sampling of the batch. The peers train for ``--peer-iterations`` (they are slow); graphmeta's
MAML is evaluated at that point too, so every MAML is compared at the same iteration count.

The peers live in their own environment (``bash benchmarks/peers/setup.sh``). Run from
either environment: without ``higher`` importable here, the script re-runs itself in
``benchmarks/peers/.venv`` when that exists (``--no-peers`` runs graphmeta alone).

    python benchmarks/sinusoid.py                 # the full run, writes benchmarks/results/sinusoid.md
    python benchmarks/sinusoid.py --quick         # smoke run, prints only
    python benchmarks/sinusoid.py --profile       # adds torch.profiler tables of one MAML step
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import shlex
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _results import destination, graphmeta_commit, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PEERS = HERE / "peers"
PEERS_PYTHON = PEERS / ".venv" / "bin" / "python"
RESULTS = HERE / "results" / "sinusoid.md"
sys.path.insert(0, str(PEERS))

PROTOCOL = dict(shots=10, query=10, meta_batch=25, hidden=(40, 40), inner_lr=0.01, inner_steps=1, outer_lr=1e-3)
GRAPHMETA_ALGORITHMS = ("maml", "fomaml", "metasgd", "reptile", "mamlpp", "cavia", "alpaca")
PEER_NAMES = ("torch.func", "torch.func compiled", "learn2learn", "higher")
INSTALLED_PEERS = ("learn2learn", "higher")  # from benchmarks/peers/setup.sh
LABELS = {"maml": "graphmeta MAML", "fomaml": "graphmeta first-order MAML", "metasgd": "graphmeta Meta-SGD",
          "reptile": "graphmeta Reptile", "mamlpp": "graphmeta MAML++", "cavia": "graphmeta CAVIA",
          "alpaca": "graphmeta ALPaCA",
          "torch.func": "torch.func MAML (vmap + grad)",
          "torch.func compiled": "torch.func MAML (vmap + grad), meta-loss under `torch.compile`",
          "learn2learn": "learn2learn 0.2.0 `MAML`", "higher": "higher 0.2.1 `innerloop_ctx` MAML"}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=30000,
                        help="meta-iterations of every graphmeta algorithm (default 30000: about 15 min for "
                             "the seven on this 2-core machine, one thread)")
    parser.add_argument("--peer-iterations", type=int, default=5000,
                        help="meta-iterations of each peer MAML, at most --iterations; graphmeta's MAML is "
                             "also evaluated there (default 5000; 0 means --iterations)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 200 iterations, 200 test tasks, prints only")
    parser.add_argument("--algorithms", nargs="+", choices=GRAPHMETA_ALGORITHMS, default=list(GRAPHMETA_ALGORITHMS))
    parser.add_argument("--peers", nargs="*", choices=PEER_NAMES, default=list(PEER_NAMES),
                        help="peers to compare with (none: --peers with no names)")
    parser.add_argument("--no-peers", action="store_true", help="graphmeta only, in this environment")
    parser.add_argument("--torchfunc-outer", choices=("backward", "grad"), default="backward",
                        help="outer gradient of the torch.func MAML: .backward() on vmap'd losses, or torch.func.grad")
    parser.add_argument("--reptile-inner-steps", type=int, default=5)
    parser.add_argument("--reptile-inner-lr", type=float, default=0.02)
    parser.add_argument("--mamlpp-inner-steps", type=int, default=5,
                        help="MAML++ inner steps in training (its paper's 5: the multi-step loss needs several)")
    parser.add_argument("--cavia-inner-lr", type=float, default=1.0, help="CAVIA's context rate (its paper's 1.0)")
    parser.add_argument("--cavia-context-dim", type=int, default=5, help="CAVIA's context size (its paper's 5)")
    parser.add_argument("--test-tasks", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the family")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--warmup", type=int, default=20, help="first iterations left out of the timings")
    parser.add_argument("--profile", action="store_true",
                        help="after the run, torch.profiler tables of graphmeta's and torch.func's MAML step")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"markdown file to write (default {RESULTS.relative_to(ROOT)}; --quick writes none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.peer_iterations, args.test_tasks = 200, 200, 200
    if args.no_peers:
        args.peers = []
    if args.peer_iterations <= 0 or args.peer_iterations > args.iterations:
        args.peer_iterations = args.iterations
    if not args.peers:
        args.peer_iterations = 0
    if args.warmup >= max(args.peer_iterations or args.iterations, 1):
        args.warmup = 0
    return args


def peers_importable() -> bool:
    import importlib.util

    return all(importlib.util.find_spec(name) is not None for name in ("higher", "learn2learn"))


def maybe_reexec_in_peers_venv(args: argparse.Namespace, argv: list[str]) -> None:
    """Run this same command in the peers' environment when learn2learn or higher are wanted but not
    here (the torch.func peers need torch alone)."""
    installed = [name for name in args.peers if name in INSTALLED_PEERS]
    if not installed or peers_importable() or os.environ.get("GRAPHMETA_BENCH_REEXEC"):
        return
    if not PEERS_PYTHON.exists():
        print(f"peers not installed ({PEERS_PYTHON} missing; run `bash benchmarks/peers/setup.sh`): "
              f"timing without {' and '.join(installed)}", file=sys.stderr)
        args.peers = [name for name in args.peers if name not in INSTALLED_PEERS]
        if not args.peers:
            args.peer_iterations = 0
        return
    os.environ["GRAPHMETA_BENCH_REEXEC"] = sys.executable
    os.execv(str(PEERS_PYTHON), [str(PEERS_PYTHON), str(Path(__file__).resolve()), *argv])


# --------------------------------------------------------------------------- data
@dataclass
class Episode:
    """One meta-batch, as graphmeta's TaskBatch and as the plain tensors the peers take."""

    batch: object
    x_support: object
    y_support: object
    x_query: object
    y_query: object

    @classmethod
    def of(cls, batch) -> Episode:
        return cls(batch, batch.support.features, batch.support.values, batch.query.features, batch.query.values)


def sinusoid_family(seed: int):
    import graphmeta

    if hasattr(graphmeta, "load_family"):
        return graphmeta.load_family("sinusoid", seed=seed)
    from graphmeta.families.sinusoid import SinusoidFamily

    return SinusoidFamily(seed=seed)


# --------------------------------------------------------------------------- learners
def finn_mlp():
    from torch import nn

    h1, h2 = PROTOCOL["hidden"]
    return nn.Sequential(nn.Linear(1, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(), nn.Linear(h2, 1))


def graphmeta_theta_as_linear(model) -> list:
    """graphmeta's one-node ``theta`` (``W: [1, in, out]``) in ``nn.Linear`` layout (``W: [out, in]``)."""
    out = []
    for name, p in model.banks[0].theta.items():
        out.append(p.detach()[0].t().contiguous() if name.endswith("_weight") else p.detach()[0].clone())
    return out


def load_linear_into_graphmeta(model, tensors) -> None:
    import torch

    with torch.no_grad():
        for (name, p), t in zip(model.banks[0].theta.items(), tensors):
            p.copy_((t.t() if name.endswith("_weight") else t).unsqueeze(0))


def load_linear_into_module(module, tensors) -> None:
    import torch

    with torch.no_grad():
        for p, t in zip(module.parameters(), tensors):
            p.copy_(t)


class GraphmetaLearner:
    """``GraphMetaLearner.meta_loss`` + Adam, the loop a graphmeta user writes."""

    def __init__(self, graph, algorithm: str, init, args) -> None:
        import torch

        import graphmeta

        settings = {"inner_steps": PROTOCOL["inner_steps"], "inner_lr": PROTOCOL["inner_lr"]}
        settings.update({
            "reptile": {"inner_steps": args.reptile_inner_steps, "inner_lr": args.reptile_inner_lr},
            "mamlpp": {"inner_steps": args.mamlpp_inner_steps},
            "cavia": {"inner_lr": args.cavia_inner_lr, "algorithm_options": {"context_dim": args.cavia_context_dim}},
        }.get(algorithm, {}))
        self.inner_steps, self.inner_lr = settings["inner_steps"], settings["inner_lr"]
        self.model = graphmeta.GraphMetaLearner(graph, algorithm, message_passing=False, **settings)
        self.iterations = args.iterations
        self.done = 0
        load_linear_into_graphmeta(self.model, init)
        from graphmeta.train.config import TrainConfig
        from graphmeta.train.outer_step import outer_parameter_groups

        # graphmeta's training defaults: learned inner rates in their own Adam group, projected after each step
        self.defaults = TrainConfig.from_dict({"outer_lr": PROTOCOL["outer_lr"]}, "train")
        self.optimizer = torch.optim.Adam(outer_parameter_groups(self.model, self.defaults), lr=PROTOCOL["outer_lr"])

    def step(self, episode: Episode):
        loss, _ = self.model.meta_loss(episode.batch, metrics=False)
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()
        self.model.algorithm.project_rates_()
        self.done += 1
        self.model.algorithm.set_progress(self.done / self.iterations)  # what graphmeta's Trainer does each step
        return loss

    def evaluate(self, test_batch, steps: int):
        """Per-task query MSE ``[T]`` after ``steps`` inner steps, through graphmeta's own API."""
        return self.model.adapt(test_batch, steps=steps).evaluate(test_batch)["loss"][:, 0]

    def parameters_as_linear(self):
        return graphmeta_theta_as_linear(self.model)


class PeerLearner:
    def __init__(self, name: str, init, args) -> None:
        module = finn_mlp()
        load_linear_into_module(module, init)
        kwargs = dict(inner_lr=PROTOCOL["inner_lr"], inner_steps=PROTOCOL["inner_steps"], outer_lr=PROTOCOL["outer_lr"])
        if name.startswith("torch.func"):
            from torchfunc_maml import TorchFuncMAML

            self.impl = TorchFuncMAML(module, outer=args.torchfunc_outer, **kwargs)
            if name == "torch.func compiled":  # inductor, PyTorch's defaults; the first step compiles
                import torch

                self.impl._meta_loss = torch.compile(self.impl._meta_loss)
        elif name == "learn2learn":
            from peer_maml import L2LMAML

            self.impl = L2LMAML(module, **kwargs)
        else:
            from peer_maml import HigherMAML

            self.impl = HigherMAML(module, **kwargs)
        self.inner_lr = PROTOCOL["inner_lr"]

    def step(self, episode: Episode):
        return self.impl.step(episode.x_support, episode.y_support, episode.x_query, episode.y_query)

    def evaluate(self, test_batch, steps: int):
        return functional_evaluate(self.impl.parameters_as_linear(), test_batch, self.inner_lr, steps)

    def parameters_as_linear(self):
        return self.impl.parameters_as_linear()


def functional_evaluate(params, test_batch, lr: float, steps: int, with_rises: bool = False):
    """Per-task query MSE ``[T]`` of the MLP ``params`` (``nn.Linear`` layout) after ``steps``
    plain SGD steps on each task's support set. One evaluator for every peer (and, as a check,
    graphmeta's MAML), independent of graphmeta's code. ``with_rises``: also ``[T]`` bool, whether
    any step raised the task's support MSE (where graphmeta's support guard refuses a step)."""
    import torch

    xs, ys = test_batch.support.features, test_batch.support.values
    xq, yq = test_batch.query.features, test_batch.query.values
    T = xs.shape[0]

    def forward(weights, x):
        h = x
        for i in range(0, len(weights), 2):
            h = torch.baddbmm(weights[i + 1].unsqueeze(1), h, weights[i].transpose(1, 2))
            if i < len(weights) - 2:
                h = torch.relu(h)
        return h

    def task_mse(weights, x, y):
        return ((forward(weights, x) - y) ** 2).mean(dim=(1, 2))

    fast = [p.detach().unsqueeze(0).expand(T, *p.shape).clone() for p in params]
    rose, before = torch.zeros(T, dtype=torch.bool), None
    for _ in range(steps):
        fast = [w.requires_grad_() for w in fast]
        with torch.enable_grad():
            support_mse = task_mse(fast, xs, ys)
            grads = torch.autograd.grad(support_mse.sum(), fast)
        if before is not None:
            rose |= support_mse.detach() > before
        before = support_mse.detach()
        fast = [(w - lr * g).detach() for w, g in zip(fast, grads)]
    with torch.no_grad():
        if steps:
            rose |= task_mse(fast, xs, ys) > before
        query_mse = task_mse(fast, xq, yq)
    return (query_mse, rose) if with_rises else query_mse


def mean_ci(values) -> tuple[float, float, int, float]:
    """``(mean, 95% CI half-width, tasks with a non-finite MSE, median)`` of per-task MSEs."""
    values = values.double()
    return (float(values.mean()), float(1.96 * values.std(unbiased=True) / math.sqrt(values.numel())),
            int((~values.isfinite()).sum()), float(values.nanmedian()))


# --------------------------------------------------------------------------- run
@dataclass
class Row:
    key: str
    learner: object
    iterations: int
    times: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    mse: dict[int, tuple[float, float]] = field(default_factory=dict)
    mse_at_peer_iterations: dict[int, tuple[float, float]] = field(default_factory=dict)
    error: str | None = None
    weight_diff: float = float("nan")  # peers: max |weights - graphmeta MAML's| at --peer-iterations


def run(args: argparse.Namespace) -> tuple[list[Row], dict]:
    import torch

    torch.set_num_threads(args.threads)
    family = sinusoid_family(args.seed)
    graph = family.graph
    test_batch = family.sample(args.test_tasks, PROTOCOL["shots"], PROTOCOL["query"], split="test", seed=0)

    torch.manual_seed(args.seed)
    init = graphmeta_theta_as_linear(__import__("graphmeta").GraphMetaLearner(graph, "maml", message_passing=False))
    rows = [Row(a, GraphmetaLearner(graph, a, init, args), args.iterations) for a in args.algorithms]
    for name in args.peers:
        try:
            rows.append(Row(name, PeerLearner(name, init, args), args.peer_iterations))
        except Exception as error:  # noqa: BLE001 - a peer that cannot load is reported, not fatal
            row = Row(name, None, 0, error=f"{type(error).__name__}: {error}")
            rows.append(row)
            print(f"{name}: cannot run ({row.error})", file=sys.stderr)
    checks: dict = {}
    maml = next((r for r in rows if r.key == "maml"), None)

    from tqdm import tqdm

    loads = [os.getloadavg()[0]]
    started = time.perf_counter()
    for it in tqdm(range(args.iterations), desc="meta-iterations", mininterval=10, file=sys.stderr):
        episode = Episode.of(family.sample(PROTOCOL["meta_batch"], PROTOCOL["shots"], PROTOCOL["query"],
                                           split="train", seed=it))
        active = [r for r in rows if r.learner is not None and it < r.iterations]
        shift = it % len(active)
        for row in active[shift:] + active[:shift]:  # rotate the order: no learner always runs first
            tick = time.perf_counter()
            row.learner.step(episode)
            elapsed = time.perf_counter() - tick
            row.times.append(elapsed)
            row.train_seconds += elapsed
        if it % 200 == 199:
            loads.append(os.getloadavg()[0])
        if it + 1 == args.peer_iterations and maml is not None:
            checks["maml_weights_at_peer_iterations"] = [p.clone() for p in maml.learner.parameters_as_linear()]
            if args.peer_iterations < args.iterations:
                maml.mse_at_peer_iterations = {s: mean_ci(maml.learner.evaluate(test_batch, s)) for s in (1, 10)}
    checks["wall_seconds_training"] = time.perf_counter() - started
    loads.append(os.getloadavg()[0])
    checks["load"] = (statistics.median(loads), max(loads))

    for row in rows:
        if row.learner is None:
            continue
        for steps in (0, 1, 10):
            row.mse[steps] = mean_ci(row.learner.evaluate(test_batch, steps))
        if row.key == "maml" and not row.mse_at_peer_iterations:
            row.mse_at_peer_iterations = {s: row.mse[s] for s in (1, 10)}
        reference = checks.get("maml_weights_at_peer_iterations")
        if row.key in PEER_NAMES and reference is not None:
            row.weight_diff = max(float((a - b).abs().max()) for a, b in zip(row.learner.parameters_as_linear(), reference))
    checks.pop("maml_weights_at_peer_iterations", None)
    if maml is not None:
        # graphmeta's adapt/evaluate against the independent evaluator on the same weights
        ours = maml.learner.evaluate(test_batch, 10)
        plain, rose = functional_evaluate(maml.learner.parameters_as_linear(), test_batch, PROTOCOL["inner_lr"], 10,
                                          with_rises=True)
        checks["evaluator_max_abs_diff"] = float((ours - plain)[~rose].abs().max()) if not rose.all() else float("nan")
        checks["evaluator_tasks_agreeing"] = f"{int((~rose).sum())} of {rose.numel()}"
    return rows, checks


# --------------------------------------------------------------------------- report
def timing(row: Row, warmup: int, upto: int | None = None) -> tuple[float, float]:
    """``(median ms, iterations/s from the median)`` over iterations ``warmup..upto``."""
    window = row.times[warmup:upto] or row.times
    median = statistics.median(window)
    return median * 1e3, 1.0 / median


def environment(args: argparse.Namespace, argv: list[str], checks: dict) -> dict:
    import torch

    interpreter = os.environ.get("GRAPHMETA_BENCH_REEXEC", sys.executable)
    try:
        rel = os.path.relpath(interpreter, os.getcwd())
        interpreter = rel if not rel.startswith("..") else interpreter
    except ValueError:
        pass
    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except Exception:  # noqa: BLE001
        pass
    versions = {"torch": torch.__version__}
    for name in ("higher", "learn2learn"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001
            pass
    return {
        "command": "python benchmarks/sinusoid.py" + ("" if not argv else " " + shlex.join(argv)),
        "interpreter": interpreter,
        "ran_in": sys.executable,
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "threads": torch.get_num_threads(),
        "cpu": f"{cpu}, {os.cpu_count()} cores visible, Python {platform.python_version()}",
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()),
        "commit": graphmeta_commit(),
        **checks,
    }


def fmt(mse: dict, steps: int) -> str:
    if steps not in mse:
        return "–"
    mean, ci, nonfinite, median = mse[steps]
    if nonfinite or not mean < 1e3:
        return f"diverges ({nonfinite} tasks non-finite; median {median:.3g})"
    return f"{mean:.3f} ± {ci:.3f}"


def report(args: argparse.Namespace, rows: list[Row], env: dict, total_seconds: float) -> str:
    maml = next((r for r in rows if r.key == "maml"), None)
    window = (args.warmup, args.peer_iterations) if args.peer_iterations else (args.warmup, None)
    lines = [
        "# Sinusoid regression (Finn et al. 2017 protocol): graphmeta and peers",
        "",
        f"- command: `{env['command']}` (interpreter `{env['interpreter']}`; ran in `{env['ran_in']}`)",
        f"- date: {env['date']}; total run time {total_seconds / 60:.1f} min "
        f"(training loop {env['wall_seconds_training'] / 60:.1f} min)",
        f"- torch threads: {env['threads']} (`torch.set_num_threads({env['threads']})`); {env['cpu']}; "
        "machine shared with other jobs (1-min load "
        f"average during training: median {env['load'][0]:.1f}, max {env['load'][1]:.1f}), so timings are medians "
        "over interleaved iterations",
        f"- versions: {env['versions']}; graphmeta at {env['commit']}",
        f"- protocol: 1-40-40-1 ReLU MLP, K={PROTOCOL['shots']} support + {PROTOCOL['query']} query points, "
        f"meta-batch {PROTOCOL['meta_batch']}, inner SGD lr {PROTOCOL['inner_lr']}, {PROTOCOL['inner_steps']} inner step "
        f"in training, Adam {PROTOCOL['outer_lr']:g}; Reptile: {args.reptile_inner_steps} inner steps at lr "
        f"{args.reptile_inner_lr:g} in training (and its lr at test), meta-step = Adam {PROTOCOL['outer_lr']:g} on "
        f"1/2‖θ−φ‖²; MAML++: {args.mamlpp_inner_steps} inner steps with learned per-layer, per-step rates and the "
        f"annealed multi-step loss; CAVIA: a {args.cavia_context_dim}-number context at lr {args.cavia_inner_lr:g}; "
        "ALPaCA: the output layer fitted in closed form (one prior component; no rate, no steps); "
        "same initial weights and the same meta-batches for every row",
        f"- evaluation: {args.test_tasks} fixed test tasks (split `test`, seed 0), query MSE after 1 and 10 inner "
        "SGD steps (Meta-SGD: its learned rates), mean ± 95% CI (1.96 s.e. over tasks); graphmeta rows through "
        "`model.adapt(...).evaluate(...)`, peers through one plain batched evaluator (on graphmeta MAML's weights "
        f"the two agree to {env.get('evaluator_max_abs_diff', float('nan')):.1e} on the "
        f"{env.get('evaluator_tasks_agreeing', '?')} tasks where no plain SGD step raised the support MSE; on the "
        "others graphmeta's support guard refuses such a step)",
        "",
        "## graphmeta's algorithms",
        "",
        "| algorithm | meta-iterations | ms / meta-iteration (median) | meta-it/s | training time | "
        "MSE, 0 steps | MSE, 1 step | MSE, 10 steps |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in rows:
        if row.key not in GRAPHMETA_ALGORITHMS:
            continue
        ms, its = timing(row, args.warmup)
        lines.append(f"| {LABELS[row.key]} | {row.iterations} | {ms:.2f} | {its:.0f} | {row.train_seconds / 60:.1f} min"
                     f" | {fmt(row.mse, 0)} | {fmt(row.mse, 1)} | {fmt(row.mse, 10)} |")
    peers = [r for r in rows if r.key in PEER_NAMES]
    if peers and maml is not None:
        gm_ms, gm_its = timing(maml, *window)
        lines += [
            "",
            f"## MAML: graphmeta against the peers ({args.peer_iterations} meta-iterations each, interleaved)",
            "",
            f"Timings over iterations {window[0]}–{args.peer_iterations} of the same interleaved loop; "
            "ratio = graphmeta MAML's meta-it/s ÷ the row's (targets: ≥ 8× learn2learn, ≥ 1.2× torch.func).",
            "",
            "| implementation | ms / meta-iteration (median) | meta-it/s | graphmeta MAML ÷ this | "
            f"MSE, 1 step @ {args.peer_iterations} | MSE, 10 steps @ {args.peer_iterations} | "
            "max \\|θ − θ_graphmeta\\| |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            f"| {LABELS['maml']} | {gm_ms:.2f} | {gm_its:.0f} | 1.00× | {fmt(maml.mse_at_peer_iterations, 1)} | "
            f"{fmt(maml.mse_at_peer_iterations, 10)} | 0 |",
        ]
        for row in peers:
            label = LABELS[row.key] + (f" (outer: {args.torchfunc_outer})" if row.key.startswith("torch.func") else "")
            if row.learner is None:
                lines.append(f"| {label} | could not run: {row.error} | | | | | |")
                continue
            ms, its = timing(row, *window)
            lines.append(f"| {label} | {ms:.2f} | {its:.0f} | {gm_its / its:.2f}× | {fmt(row.mse, 1)} | "
                         f"{fmt(row.mse, 10)} | {row.weight_diff:.1e} |")
        compiled = next((r for r in peers if r.key == "torch.func compiled" and r.times), None)
        if compiled is not None:
            lines += ["", f"The compiled peer's first meta-iteration, its compile, took {compiled.times[0]:.1f} s "
                      "(left out of its timings with the other warm-up iterations)."]
        lines += ["", "Every MAML starts from the same weights and sees the same meta-batches, so the last column "
                  "(largest difference of any meta-learned weight from graphmeta's at that iteration) shows how "
                  "far the implementations drift apart through float rounding alone."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- profile
def profile(args: argparse.Namespace, steps: int = 200) -> str:
    """torch.profiler tables (self CPU time) of graphmeta's MAML step and the torch.func one."""
    import torch
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    torch.set_num_threads(args.threads)
    family = sinusoid_family(args.seed)
    episodes = [Episode.of(family.sample(PROTOCOL["meta_batch"], PROTOCOL["shots"], PROTOCOL["query"],
                                         split="train", seed=i)) for i in range(steps)]
    torch.manual_seed(args.seed)
    import graphmeta

    init = graphmeta_theta_as_linear(graphmeta.GraphMetaLearner(family.graph, "maml", message_passing=False))
    learners = {"graphmeta MAML": GraphmetaLearner(family.graph, "maml", init, args)}
    try:
        learners["torch.func MAML"] = PeerLearner("torch.func", init, args)
    except Exception as error:  # noqa: BLE001
        print(f"torch.func profile skipped: {error}", file=sys.stderr)
    out = ["", f"## Profile: {steps} meta-iterations, torch.profiler, self CPU time, {args.threads} thread(s)", ""]
    for name, learner in learners.items():
        for e in episodes[:20]:
            learner.step(e)
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            for e in episodes:
                learner.step(e)
        averages = prof.key_averages()
        total = sum(evt.self_cpu_time_total for evt in averages)
        out += [f"### {name}: {len([e for e in averages])} distinct ops, "
                f"{sum(evt.count for evt in averages) / steps:.0f} op calls / iteration, "
                f"{total / steps / 1e3:.2f} ms self CPU / iteration (profiler overhead included)", "",
                "```", averages.table(sort_by="self_cpu_time_total", row_limit=25, max_name_column_width=48), "```", ""]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    maybe_reexec_in_peers_venv(args, argv)
    started = time.perf_counter()
    rows, checks = run(args)
    env = environment(args, argv, checks)
    text = report(args, rows, env, time.perf_counter() - started)
    if args.profile:
        text += profile(args)
    print(text)
    write_results(text, destination(args.output, RESULTS, args.quick))


if __name__ == "__main__":
    main()
