"""Hyperparameter search against the hand-set example configs: random search and TPE on Optuna.

Protocol, for each card (``sinusoid``, ``alarm-latent``, MLP learners):

- ``examples/configs/<card>-tune.yaml`` is ``examples/configs/<card>.yaml`` (the hand-set
  settings) at this benchmark's budget, fewer meta-training steps per run (sinusoid 200 instead
  of 5000, alarm-latent 30 instead of up to 1000) and more frequent validation, plus a ``tune:``
  section; the script checks that nothing else differs.
- **hand-set**: that config as a study of one ``fixed`` trial (the config as given), 3 seeds.
- **random** and **TPE** (Optuna's defaults: 10 random start-up trials, then TPE), 40 trials
  each, 3 seeds per trial (``train.seed`` 0, 1, 2; a trial's value is the mean of its seeds'
  best validation query loss after adaptation), median pruning on the first seed's validation
  curve. Trials run one at a time, so the first 20 trials of a study are exactly the trials a
  20-trial study would run: the best of trials 0-19 is the 20-trial result. Both strategies draw
  trial ``n`` from the same per-trial seed, so their 10 start-up trials are the same settings.
- **test**: the hand-set config and the best configuration of every study at 20 and 40 trials are
  trained again with seeds 10, 11, 12 (not the seeds they were selected on), at the same budget,
  and scored on 200 ``test`` tasks that no trial saw, after adaptation with the model's own inner
  steps (the protocol the trials were scored by; sinusoid.yaml evaluates with 10): each run's mean
  query loss over the tasks, then mean ± 95% CI over the 3 seeds (Student t, 2 degrees of freedom).

Target: a tuned configuration beats the hand-set one on test tasks with non-overlapping CIs on at
least one card; TPE is reported against random search at equal budgets, whichever wins.

    python benchmarks/tuning.py            # the full run, writes benchmarks/results/tuning.md and docs/tuning.png
    python benchmarks/tuning.py --quick    # smoke run: 4 trials, 2 seeds, a few steps, prints only
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch
from _results import destination, graphmeta_commit, invocation, utc_now, write_results
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from optuna.trial import FrozenTrial, TrialState

import graphmeta as gm
from graphmeta.train import RunConfig, load_config
from graphmeta.train.config import config_changes
from graphmeta.train.evaluation import Estimate
from graphmeta.tune.search_space import with_settings
from graphmeta.tune.seeds import over_seeds, train_seeds

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
EXAMPLES = ROOT / "examples" / "configs"
RESULTS = HERE / "results" / "tuning.md"
FIGURE = ROOT / "docs" / "tuning.png"
CARDS = ("sinusoid", "alarm-latent")
STRATEGIES = ("random", "tpe")
#: The keys in which <card>-tune.yaml may differ from the hand-set <card>.yaml: the budget.
BUDGET_KEYS = ("train.steps", "train.val_every", "train.val_tasks", "train.checkpoint_every")
TEST_SEEDS = (10, 11, 12)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 4 trials, 2 seeds, a few steps, prints only")
    parser.add_argument("--trials", type=int, nargs=2, default=[20, 40], metavar=("SMALL", "LARGE"),
                        help="the two budgets of trials (default 20 40); each study runs the larger")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per trial and retraining seeds (default 3)")
    parser.add_argument("--test-tasks", type=int, default=200, help="test tasks per retrained run (default 200)")
    parser.add_argument("--cards", nargs="+", default=list(CARDS), choices=CARDS)
    parser.add_argument("--runs", type=Path, help="where the studies live (default: a temporary folder)")
    parser.add_argument("--output", type=Path, help=f"results file (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--figure", type=Path, help=f"figure (default {FIGURE.relative_to(ROOT)})")
    return parser.parse_args(argv)


def budget_config(card: str, quick: bool) -> RunConfig:
    """``<card>-tune.yaml``, checked to be the hand-set ``<card>.yaml`` but for the budget keys."""
    tuned = load_config(EXAMPLES / f"{card}-tune.yaml")
    hand_set = load_config(EXAMPLES / f"{card}.yaml")
    differing = set(config_changes(hand_set.to_dict(), dataclasses.replace(tuned, tune=None).to_dict()))
    if not differing <= set(BUDGET_KEYS):
        raise SystemExit(f"{card}-tune.yaml differs from {card}.yaml beyond the budget: {sorted(differing)}")
    if quick:
        tuned = tuned.with_values({"train.steps": 6, "train.val_every": 3, "train.val_tasks": 8})
    return tuned


def run_study(config: RunConfig, folder: Path, name: str, **tune: object) -> tuple[object, float]:
    """The study ``name`` of ``config`` with ``tune`` keys replaced; its result and wall time."""
    started = time.perf_counter()
    settings = {"train.run_dir": str(folder), "tune.study_name": name, **{f"tune.{k}": v for k, v in tune.items()}}
    result = gm.tune(config.with_values(settings))
    return result, time.perf_counter() - started


def best_within(trials: list[FrozenTrial], budget: int) -> FrozenTrial | None:
    """The completed trial with the lowest value among trials ``0 .. budget - 1``."""
    completed = [t for t in trials if t.number < budget and t.state == TrialState.COMPLETE]
    return min(completed, key=lambda t: t.value) if completed else None


@dataclasses.dataclass
class TestScore:
    label: str
    validation: Estimate | None
    loss: Estimate
    losses: list[float]
    accuracy: Estimate | None
    params: dict


def test_score(config: RunConfig, params: dict, folder: Path, name: str, seeds: list[int], tasks: int,
               label: str, validation: Estimate | None) -> TestScore:
    """``config`` with ``params``, trained with ``seeds`` and scored on ``tasks`` test tasks."""
    run = with_settings(config, params).with_values({
        "train.run_dir": str(folder), "train.name": name, "evaluate.num_tasks": tasks, "evaluate.split": "test",
        "evaluate.adapt_steps": None, "evaluate.ablation": False, "evaluate.scratch_steps": 0})
    report = train_seeds(run, seeds)
    losses = [evaluation.methods["adapted"].total_loss().mean for evaluation in report.evaluations]
    accuracies = [evaluation.methods["adapted"].total_accuracy().mean for evaluation in report.evaluations]
    has_accuracy = report.evaluations[0].has_accuracy
    return TestScore(label, validation, over_seeds(losses), losses, over_seeds(accuracies) if has_accuracy else None,
                     params)


def trial_estimate(trial: FrozenTrial | None) -> Estimate | None:
    return None if trial is None else over_seeds(trial.user_attrs["values"])


def beats(tuned: Estimate, hand_set: Estimate) -> bool:
    """Lower loss with non-overlapping 95% intervals."""
    return tuned.mean + tuned.ci95 < hand_set.mean - hand_set.ci95


def draw(histories: dict[str, dict[str, list[float | None]]], hand_set: dict[str, float], path: Path) -> None:
    """Per card: best validation so far against trials, random and TPE, and the hand-set config's value."""
    figure = Figure(figsize=(5.2 * len(histories), 3.8))
    FigureCanvasAgg(figure)
    for n, (card, curves) in enumerate(histories.items()):
        ax = figure.add_subplot(1, len(histories), n + 1)
        for strategy, values in curves.items():
            best, running = [], float("inf")
            for value in values:
                running = min(running, value) if value is not None else running
                best.append(running if running < float("inf") else None)
            ax.step(range(1, len(best) + 1), [float("nan") if b is None else b for b in best], where="post",
                    label=f"{'TPE' if strategy == 'tpe' else 'random search'}: best so far")
        ax.axhline(hand_set[card], color="0.4", linestyle="--", label="hand-set config")
        ax.set_xlabel("trials")
        ax.set_ylabel("validation query loss (mean of 3 seeds)")
        ax.set_yscale("log")
        ax.set_title(card)
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)


def fmt(estimate: Estimate | None) -> str:
    return "-" if estimate is None else str(estimate)


def params_text(params: dict) -> str:
    return ", ".join(f"{key.split('.', 1)[1]} {value:.3g}" if isinstance(value, float) else
                     f"{key.split('.', 1)[1]} {value}" for key, value in params.items()) or "as given"


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    torch.set_num_threads(1)
    small, large = (2, 4) if args.quick else args.trials
    seeds = 2 if args.quick else args.seeds
    tasks = 20 if args.quick else args.test_tasks
    test_seeds = list(TEST_SEEDS[:seeds])
    runs = args.runs or Path(tempfile.mkdtemp(prefix="graphmeta-tuning-"))
    started = time.perf_counter()
    load_before = os.getloadavg()
    study_rows, test_rows, verdicts = [], [], []
    histories: dict[str, dict[str, list[float | None]]] = {}
    hand_set_values: dict[str, float] = {}
    for card in args.cards:
        config = budget_config(card, args.quick)
        folder = runs / card
        hand, hand_time = run_study(config, folder, "hand-set", strategy="fixed", space={}, trials=[{}], seeds=seeds,
                                    n_trials=1)
        hand_trial = hand.study.trials[0]
        hand_set_values[card] = hand_trial.value
        scores = [test_score(config, {}, folder, "test-hand-set", test_seeds, tasks, "hand-set",
                             trial_estimate(hand_trial))]
        histories[card] = {}
        study_rows.append((card, "hand-set", "1 (1 complete)", hand_time, fmt(trial_estimate(hand_trial)), "",
                           "as given"))
        for strategy in STRATEGIES:
            result, seconds = run_study(config, folder, strategy, strategy=strategy, n_trials=large, seeds=seeds)
            trials = result.study.trials
            histories[card][strategy] = [t.value if t.state == TrialState.COMPLETE else None for t in trials]
            counts = {state: sum(t.state == state for t in trials) for state in TrialState}
            count_text = (f"{len(trials)} ({counts[TrialState.COMPLETE]} complete, {counts[TrialState.PRUNED]} pruned"
                          f"{f', {counts[TrialState.FAIL]} failed' if counts[TrialState.FAIL] else ''})")
            best = {budget: best_within(trials, budget) for budget in (small, large)}
            study_rows.append((card, strategy, count_text, seconds, fmt(trial_estimate(best[small])),
                               fmt(trial_estimate(best[large])), params_text(best[large].params)))
            for budget, trial in best.items():
                label = f"{strategy}, {budget} trials (trial {trial.number})"
                same = [score for score in scores if score.params == trial.params]
                if same:  # the same settings (TPE starts with random search's trials): the same runs
                    scores.append(dataclasses.replace(same[0], label=label, validation=trial_estimate(trial)))
                    continue
                scores.append(test_score(config, trial.params, folder, f"test-{strategy}-{budget}", test_seeds, tasks,
                                         label, trial_estimate(trial)))
        hand_score = scores[0]
        for score in scores:
            better = "" if score is hand_score else ("yes" if beats(score.loss, hand_score.loss) else "no")
            test_rows.append((card, score, better))
        tuned = [score for score in scores[1:] if beats(score.loss, hand_score.loss)]
        verdicts.append(f"- **{card}**: " + (
            f"{len(tuned)} of {len(scores) - 1} tuned configurations beat the hand-set config on test tasks with "
            f"non-overlapping 95% CIs (best: {min(tuned, key=lambda s: s.loss.mean).label}, "
            f"{min(tuned, key=lambda s: s.loss.mean).loss} against {hand_score.loss})." if tuned else
            f"no tuned configuration beats the hand-set config ({hand_score.loss}) with non-overlapping 95% CIs."))
        by_label = {score.label.split(" (")[0]: score for score in scores}
        for budget in (small, large):
            random_score, tpe_score = by_label[f"random, {budget} trials"], by_label[f"tpe, {budget} trials"]
            if tpe_score.params == random_score.params:
                verdicts.append(f"  - {budget} trials: both found the same best configuration, "
                                f"{tpe_score.label.split('(')[1][:-1]} ({tpe_score.loss} on test).")
                continue
            winner = "TPE" if tpe_score.loss.mean < random_score.loss.mean else "random search"
            overlap = not (beats(tpe_score.loss, random_score.loss) or beats(random_score.loss, tpe_score.loss))
            verdicts.append(f"  - {budget} trials: TPE {tpe_score.loss} against random search {random_score.loss} on test: "
                            f"{winner} lower{', within each other’s CIs' if overlap else ', CIs apart'}.")
    wall = time.perf_counter() - started

    command = invocation(argv)
    date = utc_now()
    lines = [
        "# Hyperparameter search: hand-set configs against random search and TPE",
        "",
        f"`{command}` — run of {date}, graphmeta {graphmeta_commit()}, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores shared with other jobs (load average {load_before[0]:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end), 1 torch thread, 1 worker per study. "
        f"**Wall time {wall / 60:.1f} min** in all.",
        "",
        (__doc__ or "").split("\n\n", 1)[1].split("\n\n    python")[0],
        "",
        "## Budget per run",
        "",
        "| card | meta-training steps, hand-set config | steps per run here | validation every | validation tasks |"
        " seeds per trial | trials |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for card in args.cards:
        tuned, hand_set = budget_config(card, args.quick), load_config(EXAMPLES / f"{card}.yaml")
        lines.append(f"| {card} | {hand_set.train.steps} | {tuned.train.steps} | {tuned.train.val_every} | "
                     f"{tuned.train.val_tasks} | {seeds} | {small} and {large} |")
    lines += ["", "## Studies", "",
              "Validation query loss after adaptation of the best completed trial, mean ± 95% CI over its seeds.", "",
              f"| card | strategy | trials | wall time | best validation, {small} trials | best validation, {large} trials |"
              f" best settings, {large} trials |",
              "| --- | --- | --- | ---: | ---: | ---: | --- |"]
    lines += [f"| {card} | {strategy} | {count} | {seconds / 60:.1f} min | {at_small} | {at_large} | {params} |"
              for card, strategy, count, seconds, at_small, at_large, params in study_rows]
    lines += ["", "## Test tasks", "",
              f"Each configuration trained again with seeds {', '.join(map(str, test_seeds))} and scored on {tasks} test "
              "tasks: query loss after adaptation, mean ± 95% CI over the seeds (each seed's value: the run's mean "
              "over the tasks). *Beats hand-set*: lower, with non-overlapping CIs.", "",
              "| card | configuration | validation (selection) | test query loss | per seed | test accuracy |"
              " beats hand-set |",
              "| --- | --- | ---: | ---: | --- | ---: | :---: |"]
    lines += [f"| {card} | {score.label} | {fmt(score.validation)} | {score.loss} | "
              f"{', '.join(f'{value:.4f}' for value in score.losses)} | {fmt(score.accuracy)} | {better} |"
              for card, score, better in test_rows]
    lines += ["", "## Verdict", "", *verdicts, "",
              f"![best validation loss so far against trials]({os.path.relpath(FIGURE, RESULTS.parent)})", ""]
    text = "\n".join(lines)
    print(text)
    write_results(text, destination(args.output, RESULTS, args.quick))
    figure = destination(args.figure, FIGURE, args.quick)
    if figure is not None:
        draw(histories, hand_set_values, figure)
        print(f"figure: {figure}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
