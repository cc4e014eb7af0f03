"""One meta-training run for every support size: MLP graphs trained over a range of K against runs specialised per K.

Protocol. The ``alarm-latent`` card (37 classification subtasks, MLP learners, one 2-d task
latent moving every CPD), the model of ``graphmeta demo`` (MAML, one inner step at rate 0.5,
message passing on). One :class:`graphmeta.Trainer` run with ``train.shots`` the range
``--range`` (each task of a meta-batch draws its own support size log-uniformly from it), and
one run specialised for each size in ``--shots``; every run has the same settings otherwise
(``--steps`` steps, meta-batch 16, 15 query examples, Adam 3e-3 with a cosine schedule to a
tenth, gradient norm clipped at 10, validated every 50 steps on 64 tasks, the best state kept).
Then every model adapts with ``Trainer.evaluate(shots=K)`` on the same ``--tasks`` test tasks at
every ``K`` in ``--shots``: query loss after adaptation, mean ± 95% CI over tasks.

Target: at every K, the range run's query loss within 5% of the run specialised for that K.

    python benchmarks/support_sizes.py            # the full run, writes benchmarks/results/support_sizes.md
    python benchmarks/support_sizes.py --quick    # smoke run: 30 steps, 20 tasks, prints only
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from _results import destination, graphmeta_commit, invocation, utc_now, write_results

import graphmeta

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "support_sizes.md"
MODEL = {"algorithm": "maml", "inner_steps": 1, "inner_lr": 0.5, "message_passing": True}
TRAIN = {"meta_batch_size": 16, "query_shots": 15, "outer_lr": 3e-3, "schedule": "cosine", "final_lr_ratio": 0.1,
         "grad_clip": 10.0, "val_every": 50, "val_tasks": 64, "checkpoint_every": 10_000, "seed": 0,
         "progress": False}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 steps, 20 test tasks, prints only")
    parser.add_argument("--card", default="alarm-latent", help="dataset card (default alarm-latent)")
    parser.add_argument("--range", type=int, nargs=2, default=[1, 30], metavar=("LOW", "HIGH"),
                        help="train.shots of the one run (default 1 30)")
    parser.add_argument("--shots", type=int, nargs="+", default=[1, 3, 10, 30],
                        help="support sizes: one specialised run each, every model adapts at each (default 1 3 10 30)")
    parser.add_argument("--steps", type=int, default=400, help="meta-training steps of every run (default 400)")
    parser.add_argument("--tasks", type=int, default=200, help="test tasks (default 200)")
    parser.add_argument("--out", type=Path, default=None,
                        help=f"results file (default {RESULTS.relative_to(HERE.parent)})")
    args = parser.parse_args(argv)
    if args.quick:
        args.steps, args.tasks = 30, 20
    return args


def train(card: str, shots: int | list[int], steps: int, run_dir: str) -> tuple[graphmeta.Trainer, float]:
    """A trained Trainer for ``train.shots = shots`` and its training time in seconds."""
    family = graphmeta.load_family(card)
    torch.manual_seed(0)
    model = graphmeta.GraphMetaLearner(family.graph, **MODEL)
    name = f"shots-{shots if isinstance(shots, int) else '-'.join(map(str, shots))}"
    trainer = graphmeta.Trainer(model, family, steps=steps, shots=shots, run_dir=run_dir, name=name, **TRAIN)
    start = time.perf_counter()
    summary = trainer.fit()
    elapsed = time.perf_counter() - start
    print(f"  {name}: {summary['steps']} steps (best {summary['best_step']}), {elapsed:.0f}s", flush=True)
    return trainer, elapsed


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    torch.set_num_threads(1)
    start = time.perf_counter()
    runs: dict[str, graphmeta.Trainer] = {}
    seconds: dict[str, float] = {}
    one_fit = f"one run, K in [{args.range[0]}, {args.range[1]}]"
    with tempfile.TemporaryDirectory(prefix="graphmeta-support-sizes-") as run_dir:
        for label, shots in [(one_fit, list(args.range)), *((f"specialised, K = {k}", k) for k in args.shots)]:
            runs[label], seconds[label] = train(args.card, shots, args.steps, run_dir)
        losses = {label: {k: trainer.evaluate(shots=k, num_tasks=args.tasks, ablation=False,
                                              scratch_steps=0).methods["adapted"].total_loss()
                          for k in args.shots}
                  for label, trainer in runs.items()}
        unadapted = {k: runs[one_fit].evaluate(shots=k, num_tasks=args.tasks, ablation=False, scratch_steps=0)
                     .methods["no_adaptation"].total_loss() for k in args.shots}
    elapsed = time.perf_counter() - start
    text = report(args, losses, unadapted, seconds, one_fit, elapsed)
    print(text)
    write_results(text, destination(args.out, RESULTS, args.quick))


def report(args: argparse.Namespace, losses: dict, unadapted: dict, seconds: dict, one_fit: str,
           elapsed: float) -> str:
    command = invocation()
    header = "| model | " + " | ".join(f"adapted at K = {k}" for k in args.shots) + " | training |"
    rule = "| --- |" + " ---: |" * (len(args.shots) + 1)
    rows = [f"| {label} | " + " | ".join(str(losses[label][k]) for k in args.shots) + f" | {seconds[label]:.0f} s |"
            for label in losses]
    rows.append("| meta-init, no adaptation (one run) | " + " | ".join(str(unadapted[k]) for k in args.shots) + " | |")
    checks = []
    for k in args.shots:
        ours, theirs = losses[one_fit][k].mean, losses[f"specialised, K = {k}"][k].mean
        ratio = ours / theirs
        checks.append(f"- K = {k}: one run {ours:.4f}, specialised {theirs:.4f}, ratio {ratio:.3f} "
                      f"(target <= 1.05): {'met' if ratio <= 1.05 else 'MISSED'}")
    now = utc_now()
    return "\n".join([
        "## One meta-training run for every support size (MLP graphs)", "",
        f"`{command}`: run of {now}, {elapsed / 60:.1f} min on 1 CPU thread "
        f"({platform.processor() or platform.machine()}), "
        f"graphmeta {graphmeta_commit()}. Card `{args.card}`, model {MODEL}, {args.steps} meta-training steps per "
        f"run; query loss after adaptation on the same {args.tasks} test tasks at every K, mean ± 95% CI over tasks.",
        "", header, rule, *rows, "", "Targets (one run within 5% of the run specialised for K):", "", *checks, ""])


if __name__ == "__main__":
    main(sys.argv[1:])
