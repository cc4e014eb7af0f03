"""Online meta-learning (FTML) on a stream of ALARM tasks, against a batch meta-learner.

Protocol. A stream of ``--tasks`` (300) ``alarm-dirichlet`` tasks, ``--shots`` support and
``--query`` query examples each. :class:`graphmeta.OnlineMetaLearner` scores every arriving
task (adapt on its support set, query loss) *before* the task trains the model, stores it in a
reservoir buffer, then takes ``--updates`` meta-updates on meta-batches of ``--meta-batch``
tasks from the buffer; one run per size in ``--buffers`` (100: bounded to a third of the
stream; 300: keeps every task, FTML exactly).

The batch meta-learner is the same model, seeded alike, meta-trained by a plain loop for
``--batch-steps`` Adam steps on meta-batches drawn uniformly from exactly the same 300 tasks
(it knows them all from the start: the hindsight comparator of online learning). As the
``Trainer`` does, it is validated every 50 steps on 100 tasks of the ``val`` split and the best
state is kept; the state after all steps is reported too. Every learner is scored on the query
sets of the last 50 tasks after adapting on their support sets (the batch learner has trained
on those very query sets), and on 100 held-out ``test`` tasks.

Target: the online loss over the last 50 arriving tasks is within 5% of the batch
meta-learner's loss on the same 50 tasks. The learning curve is ``docs/online.png``.

    python benchmarks/online.py            # the full run (~6 min on 2 cores), writes benchmarks/results/online.md
    python benchmarks/online.py --quick    # smoke run: 60 tasks, prints only
"""

from __future__ import annotations

import argparse
import copy
import datetime
import math
import platform
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch
from _results import destination, graphmeta_commit, write_results

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "online.md"
FIGURE = ROOT / "docs" / "online.png"
VALIDATE_EVERY, EVALUATION_TASKS = 50, 100
MODEL = {"algorithm": "maml", "inner_steps": 1, "inner_lr": 0.5, "message_passing": True}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 60 tasks, 10-task windows, prints only")
    parser.add_argument("--tasks", type=int, default=300, help="length of the stream (default 300)")
    parser.add_argument("--window", type=int, default=50, help="first/last tasks compared (default 50)")
    parser.add_argument("--shots", type=int, default=10, help="support examples per task (default 10)")
    parser.add_argument("--query", type=int, default=15, help="query examples per task (default 15)")
    parser.add_argument("--updates", type=int, default=1, help="meta-updates per arriving task, M (default 1)")
    parser.add_argument("--buffers", type=int, nargs="+", default=[100, 300],
                        help="buffer sizes, one online run each (default 100 300); the figure shows the first")
    parser.add_argument("--policy", choices=("reservoir", "fifo"), default="reservoir")
    parser.add_argument("--meta-batch", type=int, default=16, help="tasks per meta-batch (default 16)")
    parser.add_argument("--outer-lr", type=float, default=3e-3, help="Adam rate of every learner (default 3e-3)")
    parser.add_argument("--batch-steps", type=int, default=1500,
                        help="Adam steps of the batch meta-learner (default 1500)")
    parser.add_argument("--threshold", type=float, default=0.3,
                        help="query loss for the support-examples-to-threshold metric (default 0.3)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    parser.add_argument("--output", type=Path, default=None,
                        help=f"markdown file (default {RESULTS.relative_to(ROOT)}; --quick writes none)")
    parser.add_argument("--figure", type=Path, default=None,
                        help=f"learning-curve figure (default {FIGURE.relative_to(ROOT)}; --quick writes none)")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.window, args.batch_steps, args.buffers = 60, 10, 100, [30]
    return args


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def interval(values: list[float]) -> float:
    """Half-width of the 95% Student-t interval of the mean."""
    from scipy import stats

    tensor = torch.tensor(values, dtype=torch.float64)
    return float(stats.t.ppf(0.975, len(values) - 1) * tensor.std() / math.sqrt(len(values)))


def task_losses(model, tasks) -> list[float]:
    """Query loss of every task after ``model`` adapts on its support set (mean over nodes), as
    :meth:`OnlineMetaLearner.score` computes it."""
    from graphmeta.train.evaluation import nanmean, query_results

    model.eval()
    return nanmean(query_results(model, tasks, 64, model.adapt).loss, dim=1).tolist()


def online_run(family, args: argparse.Namespace, buffer_size: int) -> dict:
    import graphmeta as gm

    torch.manual_seed(args.seed)
    with tempfile.TemporaryDirectory() as directory:
        learner = gm.OnlineMetaLearner(
            gm.GraphMetaLearner(family.graph, **MODEL), family, run_dir=directory, name="online", tasks=args.tasks,
            updates_per_task=args.updates, buffer_size=buffer_size, buffer_policy=args.policy,
            loss_threshold=args.threshold, shots=args.shots, query_shots=args.query, meta_batch_size=args.meta_batch,
            outer_lr=args.outer_lr, grad_clip=10.0, seed=args.seed, checkpoint_every=args.tasks, progress=False)
        start = time.perf_counter()
        summary = learner.fit()
        seconds = time.perf_counter() - start
        records = [r for r in learner.run.read_metrics() if r["split"] == "online"]
    return {"buffer": buffer_size, "learner": learner, "records": records, "seconds": seconds,
            "updates": summary["updates"], "losses": [r["loss"] for r in records]}


def batch_run(family, args: argparse.Namespace, stream_tasks, validation) -> dict:
    """The batch meta-learner: a plain loop over meta-batches of the stream's tasks, validated
    every ``VALIDATE_EVERY`` steps; the best state (as the Trainer keeps) and the last."""
    import graphmeta as gm

    torch.manual_seed(args.seed)
    model = gm.GraphMetaLearner(family.graph, **MODEL)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.outer_lr)
    best_loss, best_step, best_state = mean(task_losses(model, validation)), 0, copy.deepcopy(model.state_dict())
    start = time.perf_counter()
    for step in range(1, args.batch_steps + 1):
        model.train()
        loss, _ = model.meta_loss(stream_tasks.sample(args.meta_batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 10.0)
        optimizer.step()
        if step % VALIDATE_EVERY == 0:
            loss = mean(task_losses(model, validation))
            if loss < best_loss:
                best_loss, best_step, best_state = loss, step, copy.deepcopy(model.state_dict())
    seconds = time.perf_counter() - start
    best = gm.GraphMetaLearner(family.graph, **MODEL)
    best.load_state_dict(best_state)
    return {"best": best, "best_step": best_step, "last": model, "seconds": seconds}


def run(args: argparse.Namespace) -> dict:
    import graphmeta as gm
    from graphmeta.train import TaskBuffer
    from graphmeta.train.episode_sampler import EpisodeSampler

    torch.set_num_threads(args.threads)
    family = gm.load_family("alarm-dirichlet")
    online = [online_run(family, args, size) for size in args.buffers]

    # the same stream, task for task: the learner's own EpisodeSampler of meta-batch 1 and seed
    stream = EpisodeSampler(family, 1, args.shots, args.query, args.seed)
    everything = TaskBuffer(family.graph, args.tasks, seed=args.seed)
    for _ in range(args.tasks):
        everything.add(stream.next())
    batch = batch_run(family, args, everything, stream.fixed("val", EVALUATION_TASKS))
    last = everything.tasks().select(range(args.tasks - args.window, args.tasks))
    test = stream.fixed("test", EVALUATION_TASKS)
    for result in online:
        result["final_last"] = mean(task_losses(result["learner"].model, last))
        result["test"] = mean(task_losses(result["learner"].model, test))
    for key in ("best", "last"):
        batch[f"{key}_last"] = task_losses(batch[key], last)
        batch[f"{key}_test"] = mean(task_losses(batch[key], test))
    return {"online": online, "batch": batch}


def _shots(records: list[dict]) -> str:
    """Mean support examples to reach the threshold where reached, and the share of tasks that reached it."""
    reached = [r["shots_to_threshold"] for r in records if r["shots_to_threshold"] is not None]
    average = f"{mean(reached):.2f}" if reached else "-"
    return f"{average} ({100 * len(reached) / len(records):.0f}%)"


def report(args: argparse.Namespace, argv: list[str], result: dict, elapsed: float) -> str:
    w, n, batch = args.window, args.tasks, result["batch"]
    reference = mean(batch["best_last"])
    online_time = sum(r["seconds"] for r in result["online"])
    lines = [
        f"# Online meta-learning (FTML) on a stream of {n} `alarm-dirichlet` tasks",
        "",
        f"- command: `{shlex.join(['python', 'benchmarks/online.py', *argv])}`",
        f"- date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; total run time "
        f"{elapsed / 60:.1f} min (online runs {online_time / 60:.1f} min, batch meta-learner "
        f"{batch['seconds'] / 60:.1f} min, the rest loading the family and scoring)",
        f"- torch {torch.__version__}, {args.threads} thread(s), Python {platform.python_version()}, "
        f"graphmeta at {graphmeta_commit()}; 2 CPU cores shared with other jobs",
        f"- model: MAML, 1 inner step at rate 0.5, message passing on; {args.shots} support / {args.query} query "
        f"examples per task; Adam {args.outer_lr:g}, gradient norm clipped at 10; meta-batches of {args.meta_batch}",
        f"- online: each arriving task is scored (adapt on its support set, query loss) before it is stored in a "
        f"{args.policy} buffer; then M = {args.updates} meta-update(s) on meta-batches from the buffer",
        f"- batch: the same model and seed, {args.batch_steps} Adam steps on meta-batches drawn uniformly from the "
        f"same {n} tasks; validated every {VALIDATE_EVERY} steps on {EVALUATION_TASKS} `val` tasks, best state kept "
        f"(step {batch['best_step']}) as the Trainer does; the state after all {args.batch_steps} steps is shown too",
        f"- scored on the query sets of the last {w} stream tasks (online: on arrival, before training on them; "
        f"batch: after training on them) and on {EVALUATION_TASKS} held-out `test` tasks; loss = cross-entropy, "
        "mean over the 37 nodes, mean over tasks",
        "",
        f"| learner | meta-updates | first {w} tasks | last {w} tasks | last {w} ÷ batch (best) | "
        f"held-out test tasks | support examples to loss ≤ {args.threshold:g}, last {w} (share reaching) |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["online"]:
        losses = r["losses"]
        lines.append(
            f"| online, buffer {r['buffer']}, scored on arrival | {r['updates']} | {mean(losses[:w]):.4f} | "
            f"{mean(losses[-w:]):.4f} ± {interval(losses[-w:]):.4f} | {mean(losses[-w:]) / reference:.3f} | "
            f"{r['test']:.4f} | {_shots(r['records'][-w:])} |")
        lines.append(f"| online, buffer {r['buffer']}, final meta-parameters | | | {r['final_last']:.4f} | "
                     f"{r['final_last'] / reference:.3f} | {r['test']:.4f} | |")
    lines += [
        f"| batch, best by validation (step {batch['best_step']}) | {batch['best_step']} | | "
        f"{reference:.4f} ± {interval(batch['best_last']):.4f} | 1.000 | {batch['best_test']:.4f} | |",
        f"| batch, all {args.batch_steps} steps | {args.batch_steps} | | {mean(batch['last_last']):.4f} ± "
        f"{interval(batch['last_last']):.4f} | {mean(batch['last_last']) / reference:.3f} | "
        f"{batch['last_test']:.4f} | |",
        "",
    ]
    for r in result["online"]:
        losses = r["losses"]
        ratio = mean(losses[-w:]) / reference
        paired = [a - b for a, b in zip(losses[-w:], batch["best_last"])]
        verdict = "met" if ratio <= 1.05 else f"missed by {100 * (ratio - 1.05):.1f} percentage points"
        lines.append(
            f"- buffer {r['buffer']}: loss of arriving tasks {mean(losses[:w]):.4f} (first {w}) → "
            f"{mean(losses[-w:]):.4f} (last {w}), {100 * (1 - mean(losses[-w:]) / mean(losses[:w])):.1f}% lower; "
            f"within 5% of the batch learner: ratio {ratio:.3f}, {verdict} (paired difference online − batch "
            f"{mean(paired):+.4f} ± {interval(paired):.4f}, 95% CI over the {w} tasks); support examples to reach "
            f"{args.threshold:g}: {_shots(r['records'][:w])} over the first {w} tasks, {_shots(r['records'][-w:])} "
            f"over the last {w}")
    ratio_last = mean(result["online"][0]["losses"][-w:]) / mean(batch["last_last"])
    memorised = mean(batch["last_last"]) < reference and batch["last_test"] > batch["best_test"]
    lines += [
        f"- against the batch learner after all {args.batch_steps} steps the ratio is {ratio_last:.3f} (buffer "
        f"{result['online'][0]['buffer']}); its held-out loss is {batch['last_test']:.4f} against the validated "
        f"state's {batch['best_test']:.4f}"
        + (": it fits the query sets it is scored on, which it trained on, at the cost of new tasks" if memorised
           else ""),
        f"- learning curve (buffer {result['online'][0]['buffer']}): `docs/online.png`",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    started = time.perf_counter()
    result = run(args)
    text = report(args, argv, result, time.perf_counter() - started)
    print(text)
    figure = destination(args.figure, FIGURE, args.quick)
    if figure is not None:
        from graphmeta.train.figures import plot_online_curves

        first, batch = result["online"][0], result["batch"]
        plot_online_curves(first["records"], figure, threshold=args.threshold,
                           title=f"FTML on {args.tasks} alarm-dirichlet tasks (M = {args.updates}, buffer "
                                 f"{first['buffer']})",
                           references={f"batch meta-learner (best by validation), last {args.window} tasks":
                                       mean(batch["best_last"]),
                                       f"batch meta-learner ({args.batch_steps} steps), last {args.window} tasks":
                                       mean(batch["last_last"])})
        print(f"figure written to {figure}", file=sys.stderr)
    write_results(text, destination(args.output, RESULTS, args.quick))


if __name__ == "__main__":
    main()
