"""Meta-training beside a busy PyTorch process: does graphmeta's thread count hold up?

``steps`` (default 30) meta-training steps of ``examples/configs/alarm-latent-table.yaml``
(``Trainer.fit``, which validates once at the start, as ``graphmeta train`` does), timed in a
fresh process per run, in three thread settings:

* ``graphmeta defaults``: nothing set (``train.threads`` is 1 unless the config says otherwise);
* ``1 thread forced``: ``OMP_NUM_THREADS=1``, ``MKL_NUM_THREADS=1`` and ``train.threads: 1``;
* ``torch's threads``: ``train.threads`` = torch's own default (one per core), what a run used
  before graphmeta chose its count;

each with the machine as it is ("quiet") and beside one busy PyTorch process (a subprocess
multiplying 2048x2048 matrices with torch's default threads). The six runs go in turn, round
after round, so load from elsewhere hits all alike; the table shows medians and the 1-minute
load average seen during the runs.

    python benchmarks/contention.py                 # 3 rounds, writes benchmarks/results/contention.md
    python benchmarks/contention.py --rounds 1 --steps 10
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _results import ROOT, destination, graphmeta_commit, write_results

CONFIG = ROOT / "examples" / "configs" / "alarm-latent-table.yaml"
RESULTS = ROOT / "benchmarks" / "results" / "contention.md"
SETTINGS = {
    "graphmeta defaults": ({}, []),
    "1 thread forced": ({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}, ["train.threads=1"]),
    "torch's threads": ({}, [f"train.threads={os.cpu_count() or 1}"]),
}
BUSY = "import torch\na = torch.randn(2048, 2048)\nwhile True:\n    a @ a\n"


def timed_fit(steps: int, overrides: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds (all threads) of ``Trainer.fit`` for ``steps`` steps of the config
    (run in its own process)."""
    from graphmeta.train import Trainer, load_config

    with tempfile.TemporaryDirectory() as run_dir:
        config = load_config(CONFIG, [f"train.steps={steps}", f"train.run_dir={run_dir}", "train.name=contention",
                                      "train.progress=false", *overrides])
        trainer = Trainer.from_config(config)
        start, start_cpu = time.perf_counter(), time.process_time()
        trainer.fit()
        return time.perf_counter() - start, time.process_time() - start_cpu


def run(setting: str, steps: int) -> tuple[list[float], float]:
    """Wall and CPU seconds of one run in a fresh process, and the load average at its end."""
    environment, overrides = SETTINGS[setting]
    command = [sys.executable, __file__, "--steps", str(steps), "--fit", *overrides]
    output = subprocess.run(command, check=True, capture_output=True, text=True,
                            env={**os.environ, **environment}).stdout
    return json.loads(output.strip().splitlines()[-1]), os.getloadavg()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--output", type=Path, help=f"where to write the report (default {RESULTS.relative_to(ROOT)})")
    parser.add_argument("--fit", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.fit is not None:
        print(json.dumps(timed_fit(args.steps, args.fit)))
        return

    started, clock = datetime.datetime.now(datetime.timezone.utc), time.perf_counter()
    seconds: dict[tuple[str, bool], list[list[float]]] = {}
    loads: dict[bool, list[float]] = {False: [], True: []}
    for round_ in range(args.rounds):
        for busy in (False, True):
            neighbour = subprocess.Popen([sys.executable, "-c", BUSY]) if busy else None
            try:
                if neighbour is not None:
                    time.sleep(2.0)  # let it reach full speed
                for setting in SETTINGS:
                    elapsed, load = run(setting, args.steps)
                    seconds.setdefault((setting, busy), []).append(elapsed)
                    loads[busy].append(load)
                    print(f"  round {round_ + 1}: {setting}{', busy neighbour' if busy else ''}: "
                          f"{elapsed[0]:.2f} s ({elapsed[1]:.2f} s CPU)", file=sys.stderr)
            finally:
                if neighbour is not None:
                    neighbour.kill()
                    neighbour.wait()

    median = {key: [statistics.median(run[clock] for run in runs) for clock in (0, 1)] for key, runs in seconds.items()}
    lines = [
        f"# Meta-training beside a busy PyTorch process ({args.steps} steps of alarm-latent-table)", "",
        f"- command: `{shlex.join(['python', 'benchmarks/contention.py', *sys.argv[1:]])}`",
        f"- date: {started:%Y-%m-%d %H:%M} UTC; run time {(time.perf_counter() - clock) / 60:.1f} min; "
        f"graphmeta at {graphmeta_commit()}; {os.cpu_count()} cores visible",
        f"- `Trainer.fit` of `{CONFIG.relative_to(ROOT)}` with `train.steps={args.steps}` (one validation of "
        "64 tasks at the start, as `graphmeta train` does), each run a fresh process; medians of "
        f"{args.rounds} rounds, the six runs of a round in turn",
        f"- 1-minute load average at the end of the runs: quiet {min(loads[False]):.1f}-{max(loads[False]):.1f}, "
        f"beside the busy process {min(loads[True]):.1f}-{max(loads[True]):.1f} (other jobs share this machine, "
        "so \"quiet\" is not idle); each cell: wall time, and in brackets the CPU time of all the run's threads", "",
        "| threads | quiet | beside a busy process | slowdown |",
        "| --- | ---: | ---: | ---: |",
    ]
    for setting in SETTINGS:
        quiet, busy = median[setting, False], median[setting, True]
        lines.append(f"| {setting} | {quiet[0]:.2f} s ({quiet[1]:.2f} s) | {busy[0]:.2f} s ({busy[1]:.2f} s) "
                     f"| {busy[0] / quiet[0]:.2f}x ({busy[1] / quiet[1]:.2f}x) |")
    text = "\n".join(lines) + "\n"
    print(text)
    write_results(text, destination(args.output, RESULTS, quick=args.steps != 30))


if __name__ == "__main__":
    main()
