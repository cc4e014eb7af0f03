"""ARML's 2-d few-shot regression table (Yao et al., ICLR 2020), reproduced with graphmeta's algorithms.

Protocol, as the authors' code has it (github.com/huaxiuyao/ARML: ``data_generator.py``,
``main.py``, ``maml.py``, ``2D_bash/2D_10shot.sh``), on the ``arml-2d`` card: each task is one of
six function families (sinusoid, line, quadratic, cubic, quadratic surface, ripple) on inputs
``U[-5, 5]^2``, noise ``N(0, 0.3^2)``; K = 10 support and 10 query points; a 2-40-40-1 ReLU MLP;
inner SGD lr 0.001, 5 inner steps, second order; Adam 1e-3 on meta-batches of 25 tasks. Test:
1,000 fixed tasks, query MSE after 20 inner steps, mean +- 1.96 std / sqrt(1000).

Rows: the paper's, and graphmeta's MAML, first-order MAML, Meta-SGD, ANIL, Reptile, MAML++,
CAVIA and ALPaCA with the protocol's settings (CAVIA adapts a context, not the weights: its
paper's context of 5 numbers at rate 1.0; ALPaCA fits the output layer in closed form, so its
rate and step count are not read and its MSE is the same after 5 and 20 steps), each trained through graphmeta's own outer step
(``Trainer.outer_step``: Adam, learned inner rates in their own parameter group at
``train.rate_lr``, projected into ``[model.min_rate, model.max_rate]``; graphmeta's defaults); MAML
again from the authors' initialisation (truncated normal, std 0.01, zero biases); and the best
setting found for graphmeta (``--best``, trained for ``--best-iterations``). Every row starts
from the same weights (but the authors'-initialisation row) and sees the same meta-batches,
one meta-iteration of each in turn, so their timings share the machine's noise; only the
meta-iteration is timed. The learning curve is the validation MSE (20 steps) of fixed
validation tasks every ``--curve-every`` iterations.

For the rows with learned inner rates the 20 test steps follow graphmeta's policy for steps
beyond the trained ones (the 5 trained steps, then the last trained rate times 5/20,
``graphmeta.adapt.algorithms.base.trained_step``); an independent evaluator also adapts them
with the former policy (every step past the 5th reuses the last trained rate), for comparison.

    python benchmarks/arml.py                    # the full run, writes benchmarks/results/arml.md
    python benchmarks/arml.py --quick            # smoke run, prints only
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
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _results import destination, graphmeta_commit, write_results

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "arml.md"

PROTOCOL = dict(shots=10, query=10, meta_batch=25, inner_lr=1e-3, inner_steps=5, outer_lr=1e-3, test_steps=20)
#: The paper's table (Yao et al. 2020, 2D regression, 10-shot): MSE +- 95% CI, 70,000 meta-iterations.
PAPER = (("MAML", "2.292 ± 0.163"), ("Meta-SGD", "2.908 ± 0.229"), ("MT-Net", "1.757"), ("MUMOMAML", "0.523"),
         ("HSML", "0.494"), ("ARML", "0.438 ± 0.029"))
ALGORITHMS = ("maml", "fomaml", "metasgd", "anil", "reptile", "mamlpp", "cavia", "alpaca")
LABELS = {"maml": "MAML", "fomaml": "first-order MAML", "metasgd": "Meta-SGD", "anil": "ANIL", "reptile": "Reptile",
          "mamlpp": "MAML++", "cavia": "CAVIA", "alpaca": "ALPaCA"}
#: CAVIA adapts a context, which the protocol's weight rate does not fit: its paper's context and rate.
CAVIA_PROTOCOL = {"inner_lr": 1.0, "algorithm_options": {"context_dim": 5}}
#: The best setting found (exploratory runs; see the results file): ALPaCA's closed-form head under
#: a mixture of six Gaussian priors, one per function family if it learns to.
BEST = {"algorithm": "alpaca", "model": {"algorithm_options": {"prior_components": 6}}, "train": {}}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--iterations", type=int, default=6000,
                        help="meta-iterations of every protocol row (the paper's 70,000 do not fit a shared 2-core "
                             "machine: default 6000, about 30 min with the other rows at a load average of 8 on 2 cores)")
    parser.add_argument("--best-iterations", type=int, default=70000,
                        help="meta-iterations of the best setting's row (default 70000, the paper's; 0: no such row)")
    parser.add_argument("--algorithms", nargs="+", choices=ALGORITHMS, default=list(ALGORITHMS))
    parser.add_argument("--authors-init-iterations", type=int, default=1500,
                        help="meta-iterations of MAML from the authors' initialisation, compared with graphmeta's MAML "
                             "on the learning curve (default 1500; 0: no such row)")
    parser.add_argument("--test-tasks", type=int, default=1000)
    parser.add_argument("--curve-every", type=int, default=1000, help="validation MSE every this many iterations")
    parser.add_argument("--curve-tasks", type=int, default=200, help="fixed validation tasks of the learning curve")
    parser.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the family")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--warmup", type=int, default=20, help="first iterations left out of the timings")
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 iterations, 50 test tasks, prints only")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"markdown file to write (default {RESULTS.relative_to(HERE.parent)}; --quick writes none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.best_iterations, args.authors_init_iterations, args.test_tasks = 60, 80, 40, 50
        args.curve_every, args.curve_tasks, args.warmup = 30, 20, 5
    return args


# --------------------------------------------------------------------------- rows
@dataclass
class Row:
    """One graphmeta row: a model, the trainer that steps it, and what was measured."""

    key: str
    label: str
    settings: str
    trainer: Any
    iterations: int
    times: list[float] = field(default_factory=list)
    train_seconds: float = 0.0
    nonfinite_updates: int = 0
    curve: dict[int, float] = field(default_factory=dict)
    mse: dict[int, tuple[float, float, int, float]] = field(default_factory=dict)
    per_function: list[float] = field(default_factory=list)
    repeated: tuple[float, float, int, float] | None = None  # 20 steps, the last trained rate reused
    rates: tuple[float, float, float] | None = None
    evaluator_difference: float = float("nan")  # the independent evaluator against graphmeta, at the trained steps
    nonfinite_parameters: bool = False

    @property
    def model(self):
        return self.trainer.model


def build_row(key: str, label: str, algorithm: str, family, init: dict, run_dir: str, iterations: int,
              model_settings: dict, train_settings: dict, authors_init: bool = False) -> Row:
    import graphmeta
    from graphmeta.train import Trainer

    model_settings = {"inner_steps": PROTOCOL["inner_steps"], "inner_lr": PROTOCOL["inner_lr"], **model_settings}
    model = graphmeta.GraphMetaLearner(family.graph, algorithm, message_passing=False, **model_settings)
    load_theta(model, authors_initialisation(model) if authors_init else init)
    trainer = Trainer(model, family, steps=iterations, outer_lr=PROTOCOL["outer_lr"],
                      meta_batch_size=PROTOCOL["meta_batch"], shots=PROTOCOL["shots"], query_shots=PROTOCOL["query"],
                      progress=False, run_dir=run_dir, name=key, on_nonfinite="skip", **train_settings)
    unread = ("inner_steps", "inner_lr") if algorithm == "alpaca" else ("inner_steps",)  # ALPaCA fits, never steps
    shown = {**{k: v for k, v in model_settings.items() if k not in unread}, **train_settings}
    settings = ", ".join(f"{k} {v:g}" if isinstance(v, float) else f"{k} {v}" for k, v in shown.items())
    if authors_init:
        settings += ", init truncated normal(0, 0.01), biases 0"
    return Row(key, label, settings, trainer, iterations)


def theta_of(model) -> dict:
    return {name: weight.detach().clone() for name, weight in model.banks[0].theta.items()}


def load_theta(model, theta: dict) -> None:
    import torch

    with torch.no_grad():
        for name, weight in model.banks[0].theta.items():
            weight.copy_(theta[name])


def authors_initialisation(model) -> dict:
    """The authors' ``construct_fc_weights``: weights truncated normal (std 0.01, cut at 2 std), biases 0."""
    import torch

    theta = {}
    for name, weight in model.banks[0].theta.items():
        value = torch.zeros_like(weight)
        if name.endswith("_weight"):
            torch.nn.init.trunc_normal_(value, std=0.01, a=-0.02, b=0.02)
        theta[name] = value
    return theta


# --------------------------------------------------------------------------- evaluation
def mean_ci(values) -> tuple[float, float, int, float]:
    """``(mean, 95% CI half-width, tasks with a non-finite MSE, median)`` of per-task MSEs."""
    values = values.double()
    return (float(values.mean()), float(1.96 * values.std(unbiased=True) / math.sqrt(values.numel())),
            int((~values.isfinite()).sum()), float(values.nanmedian()))


def task_mse(model, batch, steps: int):
    """Per-task query MSE ``[T]`` after ``steps`` inner steps, through graphmeta's own API."""
    model.eval()
    mse = model.adapt(batch, steps=steps).evaluate(batch)["loss"][:, 0]
    model.train()
    return mse


def repeated_rate_mse(model, batch, steps: int):
    """Per-task query MSE ``[T]`` after ``steps`` plain SGD steps with the learned rates, every step
    past the trained ones reusing the last trained rate (the policy graphmeta had before): an
    evaluator independent of graphmeta's inner loop, reading the rates by their names."""
    import torch

    algorithm, theta = model.algorithm, model.banks[0].theta
    trained = model.config["inner_steps"]

    def rate(name: str, step: int):  # the rate of the trained step, reused past the last one
        return algorithm.rate(0, name, min(step, trained - 1), trained)

    names = list(theta)

    def forward(fast, x):
        h = x
        for layer in range(0, len(names) - 2, 2):
            h = torch.relu(torch.baddbmm(fast[names[layer + 1]].unsqueeze(1), h, fast[names[layer]]))
        return torch.baddbmm(fast[names[-1]].unsqueeze(1), h, fast[names[-2]])

    def loss(fast, split):
        return ((forward(fast, split.features) - split.values) ** 2).mean(dim=(1, 2))

    num_tasks = batch.num_tasks
    fast = {name: w.detach()[0].expand(num_tasks, *w.shape[1:]).clone() for name, w in theta.items()}
    for step in range(steps):
        fast = {name: w.requires_grad_() for name, w in fast.items()}
        with torch.enable_grad():
            grads = torch.autograd.grad(loss(fast, batch.support).sum(), list(fast.values()))
        fast = {name: (w - rate(name, step).detach() * g).detach() for (name, w), g in zip(fast.items(), grads)}
    with torch.no_grad():
        return loss(fast, batch.query)


def evaluate_row(row: Row, test, functions) -> None:
    import torch

    row.nonfinite_parameters = not all(bool(torch.isfinite(p).all()) for p in row.model.parameters())
    for steps in (0, PROTOCOL["inner_steps"], PROTOCOL["test_steps"]):
        per_task = task_mse(row.model, test, steps)
        row.mse[steps] = mean_ci(per_task)
        if steps == PROTOCOL["test_steps"]:
            row.per_function = [float(per_task[functions == f].double().mean()) for f in range(int(functions.max()) + 1)]
    learned = row.model.algorithm.learned_rates()
    if learned:
        flat = torch.cat([row.model.algorithm.bounded(scales).detach().flatten() for scales in learned])
        row.rates = (float(flat.min()), float(flat.median()), float(flat.max()))
        row.repeated = mean_ci(repeated_rate_mse(row.model, test, PROTOCOL["test_steps"]))
        check = repeated_rate_mse(row.model, test, PROTOCOL["inner_steps"]) - task_mse(row.model, test,
                                                                                         PROTOCOL["inner_steps"])
        row.evaluator_difference = float(check.abs().max())


# --------------------------------------------------------------------------- run
def run(args: argparse.Namespace) -> tuple[list[Row], dict]:
    import numpy as np
    import torch

    import graphmeta

    torch.set_num_threads(args.threads)
    family = graphmeta.load_family("arml-2d", seed=args.seed)
    test = family.sample(args.test_tasks, PROTOCOL["shots"], PROTOCOL["query"], split="test", seed=0)
    functions = torch.from_numpy(np.asarray(family.task_params(args.test_tasks, split="test", seed=0)["function"]))
    validation = family.sample(args.curve_tasks, PROTOCOL["shots"], PROTOCOL["query"], split="val", seed=0)

    torch.manual_seed(args.seed)
    init = theta_of(graphmeta.GraphMetaLearner(family.graph, "maml", message_passing=False))
    run_dir = tempfile.mkdtemp(prefix="arml-benchmark-")
    rows = [build_row(a, LABELS[a], a, family, init, run_dir, args.iterations,
                      CAVIA_PROTOCOL if a == "cavia" else {}, {}) for a in args.algorithms]
    if args.authors_init_iterations:
        torch.manual_seed(args.seed)
        rows.append(build_row("maml-authors-init", "MAML, the authors' initialisation", "maml", family, init, run_dir,
                              args.authors_init_iterations, {}, {}, authors_init=True))
    if args.best_iterations:
        rows.append(build_row("best", f"{LABELS[BEST['algorithm']]}, best setting found", BEST["algorithm"], family,
                              init, run_dir, args.best_iterations, BEST["model"], BEST["train"]))

    from tqdm import tqdm

    loads = [os.getloadavg()[0]]
    total = max(row.iterations for row in rows)
    started = time.perf_counter()
    for it in tqdm(range(total), desc="meta-iterations", mininterval=30, file=sys.stderr):
        batch = family.sample(PROTOCOL["meta_batch"], PROTOCOL["shots"], PROTOCOL["query"], split="train", seed=it)
        active = [row for row in rows if it < row.iterations]
        shift = it % len(active)
        for row in active[shift:] + active[:shift]:  # rotate the order: no row always runs first
            tick = time.perf_counter()
            update = row.trainer.outer_step(batch, metrics=False)
            elapsed = time.perf_counter() - tick
            row.times.append(elapsed)
            row.train_seconds += elapsed
            row.nonfinite_updates += update is None
            if (it + 1) % args.curve_every == 0 or it + 1 == row.iterations:
                row.curve[it + 1] = float(task_mse(row.model, validation, PROTOCOL["test_steps"]).double().mean())
        if it % 200 == 199:
            loads.append(os.getloadavg()[0])
    checks = {"wall_seconds_training": time.perf_counter() - started}
    loads.append(os.getloadavg()[0])
    checks["load"] = (statistics.median(loads), max(loads))
    for row in rows:
        evaluate_row(row, test, functions)
    checks["functions"] = family.functions
    return rows, checks


# --------------------------------------------------------------------------- report
def fmt(result: tuple[float, float, int, float] | None) -> str:
    if result is None:
        return "–"
    mean, ci, nonfinite, median = result
    if nonfinite or not mean < 1e6:
        return f"diverges ({nonfinite} tasks non-finite; median {median:.3g})"
    return f"{mean:.3f} ± {ci:.3f}"


def timing(row: Row, warmup: int) -> float:
    """Median milliseconds per meta-iteration after ``warmup``."""
    return statistics.median(row.times[warmup:] or row.times) * 1e3


def environment(args: argparse.Namespace, argv: list[str], checks: dict) -> dict:
    import torch

    cpu = "?"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "command": "python benchmarks/arml.py" + ("" if not argv else " " + shlex.join(argv)),
        "date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "threads": torch.get_num_threads(),
        "cpu": f"{cpu}, {os.cpu_count()} cores visible, Python {platform.python_version()}, torch {torch.__version__}",
        "commit": graphmeta_commit(),
        **checks,
    }


def report(args: argparse.Namespace, rows: list[Row], env: dict, total_seconds: float) -> str:
    test_steps, trained = PROTOCOL["test_steps"], PROTOCOL["inner_steps"]
    lines = [
        "# ARML's 2-d few-shot regression (Yao et al. 2020): the paper's table and graphmeta's algorithms",
        "",
        f"- command: `{env['command']}`",
        f"- date: {env['date']}; total run time {total_seconds / 60:.1f} min (training loop "
        f"{env['wall_seconds_training'] / 60:.1f} min, learning-curve evaluations included)",
        f"- torch threads: {env['threads']}; {env['cpu']}; machine shared with other jobs (1-min load average during "
        f"training: median {env['load'][0]:.1f}, max {env['load'][1]:.1f}); graphmeta at {env['commit']}",
        f"- protocol (card `arml-2d`): K={PROTOCOL['shots']} support + {PROTOCOL['query']} query points, 2-40-40-1 "
        f"ReLU MLP, inner SGD lr {PROTOCOL['inner_lr']:g}, {trained} inner steps, second order (first order for "
        f"first-order MAML and Reptile), Adam {PROTOCOL['outer_lr']:g}, meta-batch {PROTOCOL['meta_batch']}; "
        "graphmeta's training defaults: learned inner rates at Adam rate `outer_lr * inner_lr`, clamped to "
        "[0, ∞) after each step; every row but the authors'-initialisation one from the same initial weights, all "
        "on the same meta-batches",
        f"- evaluation: {args.test_tasks} fixed test tasks (split `test`, seed 0), query MSE after {test_steps} inner "
        f"steps (the protocol) and after {trained} (as trained), mean ± 1.96 std / sqrt(tasks); learned rates at "
        f"{test_steps} steps take the {trained} trained steps, then the last trained rate times {trained}/{test_steps} "
        "(graphmeta's policy)",
        "",
        "## The table",
        "",
        f"| method | settings (beyond the protocol) | meta-iterations | ms / meta-iteration (median) | training time | "
        f"non-finite updates | MSE, {trained} steps | MSE, {test_steps} steps |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for name, mse in PAPER:
        lines.append(f"| {name} (paper) | | 70000 | | | | | {mse} |")
    for row in rows:
        settings = row.settings or "protocol"
        nonfinite = f"{row.nonfinite_updates}" + (" (parameters non-finite)" if row.nonfinite_parameters else "")
        lines.append(f"| graphmeta {row.label} | {settings} | {row.iterations} | {timing(row, args.warmup):.1f} | "
                     f"{row.train_seconds / 60:.1f} min | {nonfinite} | {fmt(row.mse[trained])} | "
                     f"{fmt(row.mse[test_steps])} |")
    functions = env["functions"]
    lines += ["", f"## Per function family, MSE after {test_steps} steps (the same {args.test_tasks} test tasks)", "",
              "| method | " + " | ".join(f.replace("_", " ") for f in functions) + " |",
              "| --- |" + " ---: |" * len(functions)]
    for row in rows:
        lines.append(f"| graphmeta {row.label} | " + " | ".join(f"{v:.3f}" for v in row.per_function) + " |")
    checkpoints = sorted({it for row in rows for it in row.curve})
    lines += ["", f"## Learning curve: validation MSE after {test_steps} steps ({args.curve_tasks} fixed `val` tasks)",
              "", "| meta-iteration | " + " | ".join(row.label for row in rows) + " |",
              "| ---: |" + " ---: |" * len(rows)]
    for it in checkpoints:
        lines.append(f"| {it} | " + " | ".join(f"{row.curve[it]:.3f}" if it in row.curve else "" for row in rows) + " |")
    learned = [row for row in rows if row.rates is not None]
    if learned:
        lines += ["", "## Learned rates past the trained steps: graphmeta's policy against reusing the last rate", "",
                  f"| method | learned rates after training (min / median / max) | MSE, {test_steps} steps, rates "
                  f"(graphmeta's policy) | MSE, {test_steps} steps, last rate reused | independent evaluator vs "
                  f"graphmeta at {trained} steps (max abs diff) |",
                  "| --- | ---: | ---: | ---: | ---: |"]
        for row in learned:
            low, median, high = row.rates
            lines.append(f"| graphmeta {row.label} | {low:.2g} / {median:.2g} / {high:.2g} | "
                         f"{fmt(row.mse[test_steps])} | {fmt(row.repeated)} | {row.evaluator_difference:.1e} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.perf_counter()
    rows, checks = run(args)
    env = environment(args, argv, checks)
    text = report(args, rows, env, time.perf_counter() - started)
    print(text)
    write_results(text, destination(args.output, RESULTS, args.quick))


if __name__ == "__main__":
    main()
