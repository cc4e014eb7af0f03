"""Mutation testing: plant realistic one-line bugs, one at a time, in a copy of the tree and see
which tests catch each one by a value check, which only by a crash, and which survive.

Every mutant in :data:`MUTANTS` replaces one line (an exact snippet that must occur once) of the
package. The tool copies the tree to ``--workdir`` (never touching the source tree), checks that
Python imports the copy's ``graphmeta``, runs the mutants' test directories once unmutated (a
test that fails there already, e.g. under someone's change in progress, is left out), then for
each mutant plants it, runs its tests with a JUnit report, and restores the file. A failing test *checks a value* when it fails on an assertion (``assert``,
``torch.testing.assert_close``, ``pytest.raises`` whose error did not come, a strict xfail that
passed); any other exception is a *crash*. ``--full-for-survivors`` reruns the whole suite for
each survivor, so "survived" means the whole suite passed.

Usage (from the repository root, with the project's virtualenv)::

    python benchmarks/mutation.py                          # every mutant, writes benchmarks/results/mutation.md
    python benchmarks/mutation.py --only mp-no-child-messages anil-adapts-everything
    python benchmarks/mutation.py --source /tmp/head --out /tmp/before.md   # another tree (e.g. an older commit)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENGINE_TESTS = ("tests/test_model.py", "tests/test_reference.py", "tests/test_properties.py", "tests/adapt",
                "tests/learners", "tests/test_adapted.py")
FAMILY_TESTS = ("tests/families", "tests/interop", "tests/bayesnet", "tests/test_properties.py")
TRAIN_TESTS = ("tests/train", "tests/bayesnet/test_learner.py")
IGNORED = shutil.ignore_patterns(".venv", ".git", "__pycache__", ".pytest_cache", ".hypothesis", "runs", "*.egg-info")


@dataclass(frozen=True)
class Mutant:
    """One planted bug: ``original`` (one line, exactly once in ``path``) becomes ``mutated``."""

    name: str
    area: str
    path: str
    original: str
    mutated: str
    bug: str
    tests: tuple[str, ...]
    #: Why the mutant cannot change a result, where it cannot (it is then not expected to be caught).
    equivalent: str = ""


MUTANTS = [
    # ------------------------------------------------------------------ engine
    Mutant("support-loss-statistic-detached", "engine", "graphmeta/adapt/inner_loop.py",
           "initial_loss = loss if create_graph else loss.detach()", "initial_loss = loss.detach()",
           "the support-loss statistic that message passing reads loses its second-order meta-gradient",
           ENGINE_TESTS),
    Mutant("conjugate-update-every-step", "engine", "graphmeta/adapt/inner_loop.py",
           "(algorithm.solve(b, bank, weights, support) if step == 0 else weights) if solved[b]",
           "algorithm.solve(b, bank, weights, support) if solved[b]",
           "a Table adds its support counts again at every inner step", ENGINE_TESTS),
    Mutant("query-mean-over-all-pairs", "engine", "graphmeta/model.py",
           "return (losses * weight).sum() / weight.sum().clamp(min=1)", "return (losses * weight).mean()",
           "the meta-loss averages over every (task, node), also those without a query example", ENGINE_TESTS),
    Mutant("shots-ignore-parents", "engine", "graphmeta/model.py",
           "shots = self.banks.example_mask(support).sum(-1).to(support_loss.dtype)",
           "shots = support.observed.sum(1).to(support_loss.dtype)",
           "the support-shot statistic counts shots whose parents are missing", ENGINE_TESTS),
    Mutant("second-order-in-eval-mode", "engine", "graphmeta/model.py",
           "second_order = self.algorithm.second_order and self.training",
           "second_order = self.algorithm.second_order",
           "an evaluation-mode meta-loss keeps the second-order graph", ENGINE_TESTS),
    Mutant("low-rank-step-ascends", "engine", "graphmeta/learners/banks/low_rank.py",
           "return LowRankWeight(self.initial, OuterProducts.cat([self.update, gradient.scaled(rate)]))",
           "return LowRankWeight(self.initial, OuterProducts.cat([self.update, gradient.scaled(-rate)]))",
           "a low-rank inner step climbs the support loss", ENGINE_TESTS),
    Mutant("low-rank-whenever-possible", "engine", "graphmeta/adapt/inner_loop.py",
           "return (weight.rank + grad.rank) * (d_in + d_out) <= 2 * d_in * d_out",
           "return (weight.rank + grad.rank) * (d_in + d_out) >= 2 * d_in * d_out",
           "a step stays low-rank exactly where dense would be cheaper", ENGINE_TESTS,
           equivalent="the low-rank and the dense step compute the same weights, only time and memory differ; "
                      "`test_low_rank` asserts which form a step takes, so it is caught all the same"),
    # ---------------------------------------------------------------- learners
    Mutant("mask-ignores-parents", "learners", "graphmeta/learners/banks/bank.py",
           "        for slot in range(1, index.shape[1]):", "        for slot in range(1, 1):",
           "a shot counts for a node even where a parent's value is missing", ENGINE_TESTS),
    Mutant("mse-over-padded-outputs", "learners", "graphmeta/learners/banks/bank.py",
           "per_example = ((outputs - targets) ** 2 * output_mask).sum(-1) / output_mask.sum(-1)",
           "per_example = ((outputs - targets) ** 2 * output_mask).mean(-1)",
           "the squared error is averaged over the bank's padded output width", ENGINE_TESTS),
    Mutant("mlp-init-wrong-fan-in", "learners", "graphmeta/learners/banks/mlp.py",
           "fan_in = torch.full_like(self.fan_in, weight.shape[-1])",
           "fan_in = torch.full_like(self.fan_in, weight.shape[-2])",
           "the hidden layers are initialised with the previous layer's fan-in", ENGINE_TESTS),
    Mutant("gcn-without-self-loops", "learners", "graphmeta/learners/banks/gnn.py",
           "with_loops = adjacency + torch.diag_embed(mask_float)", "with_loops = adjacency",
           "the GCN propagation drops its self loops", ENGINE_TESTS),
    Mutant("gnn-sum-readout", "learners", "graphmeta/learners/banks/gnn.py",
           "pooled = (hidden * mask.unsqueeze(-1)).sum(-2) / mask.sum(-1, keepdim=True).clamp(min=1)",
           "pooled = (hidden * mask.unsqueeze(-1)).sum(-2)",
           "the GNN pools its graph by a sum instead of the mean", ENGINE_TESTS),
    Mutant("table-prior-per-class", "learners", "graphmeta/learners/banks/table.py",
           "log_counts.copy_((self.spec.prior_strength / classes).log()[:, None, None].expand_as(log_counts))",
           "log_counts.copy_(torch.full_like(classes, self.spec.prior_strength).log()[:, None, None]"
           ".expand_as(log_counts))",
           "a Table starts with prior_strength pseudo-counts per class instead of in total", ENGINE_TESTS),
    Mutant("table-rows-first-parent-fastest", "learners", "graphmeta/learners/banks/table.py",
           "return [math.prod(widths[j + 1:]) for j in range(len(widths))]",
           "return [math.prod(widths[:j]) for j in range(len(widths))]",
           "a Table numbers its rows with the first parent varying fastest (not pgmpy's order)",
           ENGINE_TESTS + ("tests/bayesnet",)),
    Mutant("table-posterior-adds-log-counts", "learners", "graphmeta/learners/banks/table.py",
           "torch.logaddexp(log_counts, torch.where(seen, counts, 1.0).log())",
           "torch.logaddexp(log_counts, torch.where(seen, counts, 1.0))",
           "the conjugate update adds exp(n) pseudo-counts instead of n", ENGINE_TESTS),
    # --------------------------------------------------------- message passing
    Mutant("mp-no-child-messages", "message passing", "graphmeta/adapt/message_passing.py",
           "                            from_children, self.up.weight.t())",
           "                            from_children, 0 * self.up.weight.t())",
           "messages go from parents to children only (child -> parent dropped)", ENGINE_TESTS),
    Mutant("mp-sum-readout", "message passing", "graphmeta/adapt/message_passing.py",
           "readout = torch.addmm(self.self_weight.bias, hidden.mean(0), self.graph_level.weight.t())",
           "readout = torch.addmm(self.self_weight.bias, hidden.sum(0), self.graph_level.weight.t())",
           "the graph-level readout sums instead of averaging", ENGINE_TESTS),
    Mutant("mp-parents-read-through-up", "message passing", "graphmeta/adapt/message_passing.py",
           "local = torch.addmm(torch.addmm(rows.mm(self.self_weight.weight.t()), from_parents, self.down.weight.t()),",
           "local = torch.addmm(torch.addmm(rows.mm(self.self_weight.weight.t()), from_parents, self.up.weight.t()),",
           "parent -> child messages go through the child -> parent weights", ENGINE_TESTS),
    Mutant("mp-update-size-not-per-entry", "message passing", "graphmeta/learners/banks/low_rank.py",
           "return (adapted - initial).flatten(2).pow(2).mean(-1)",
           "return (adapted - initial).flatten(2).pow(2).sum(-1)",
           "the update sizes message passing reads are norms, not root-mean-squares", ENGINE_TESTS),
    Mutant("mp-low-rank-size-over-bank", "message passing", "graphmeta/learners/banks/low_rank.py",
           "return difference.squared_norm() / initial.initial[0].numel()",
           "return difference.squared_norm() / initial.initial.numel()",
           "a low-rank update's size is averaged over the whole bank's entries, not one node's", ENGINE_TESTS),
    Mutant("mp-node-embedding-dropped", "message passing", "graphmeta/adapt/message_passing.py",
           "hidden = hidden + self.node_embedding[:, None]",
           "hidden = hidden",
           "the learned node embedding is never added", ENGINE_TESTS),
    Mutant("mp-means-normalised-by-wrong-degree", "message passing", "graphmeta/adapt/message_passing.py",
           "values = torch.cat([1.0 / in_degree[children], 1.0 / out_degree[parents]])",
           "values = torch.cat([1.0 / out_degree[children].clamp(min=1), 1.0 / in_degree[parents].clamp(min=1)])",
           "the parent mean divides by the node's number of children (and the child mean by its parents)",
           ENGINE_TESTS),
    # -------------------------------------------------------------- algorithms
    Mutant("anil-adapts-everything", "algorithms", "graphmeta/adapt/algorithms/anil.py",
           "return bank.head", "return tuple(bank.theta)", "ANIL adapts the whole network", ENGINE_TESTS),
    Mutant("rate-of-first-step-always", "algorithms", "graphmeta/adapt/algorithms/base.py",
           "return share_of(self.bounded(self.rate_scales[trained]), share)",
           "return share_of(self.bounded(self.rate_scales[0]), share)",
           "learned per-step rates: every step uses the first", ENGINE_TESTS),
    Mutant("more-steps-reuse-the-last-rate", "algorithms", "graphmeta/adapt/algorithms/base.py",
           "return trained - 1, trained / steps", "return trained - 1, 1.0",
           "adapting with more steps than trained reuses the last learned rate at full size", ENGINE_TESTS),
    Mutant("fomaml-second-order", "algorithms", "graphmeta/adapt/algorithms/fomaml.py",
           "second_order = False", "second_order = True",
           "first-order MAML differentiates through the inner gradients", ENGINE_TESTS),
    Mutant("mamlpp-anneal-whole-run", "algorithms", "graphmeta/adapt/algorithms/mamlpp.py",
           "done = float(self.progress) / ANNEAL_FRACTION", "done = float(self.progress)",
           "MAML++ anneals its multi-step loss over the whole run, not the first 15%", ENGINE_TESTS),
    Mutant("mamlpp-last-rate-always", "algorithms", "graphmeta/adapt/algorithms/mamlpp.py",
           "return share_of(self.bounded(scales[trained]), share)", "return share_of(self.bounded(scales[-1]), share)",
           "MAML++ uses its last step's learned rates at every step", ENGINE_TESTS),
    Mutant("reptile-pull-not-averaged", "algorithms", "graphmeta/adapt/algorithms/reptile.py",
           "pull = sum(0.5 * (theta[name] - plain[name].detach()).pow(2).sum() / num_tasks",
           "pull = sum(0.5 * (theta[name] - plain[name].detach()).pow(2).sum()",
           "Reptile's pull is summed over tasks instead of averaged", ENGINE_TESTS),
    Mutant("cavia-context-subtracted", "algorithms", "graphmeta/adapt/algorithms/cavia.py",
           "weights[first_bias] = weights[first_bias] + shift", "weights[first_bias] = weights[first_bias] - shift",
           "CAVIA subtracts its context's shift", ENGINE_TESTS,
           equivalent="the context starts at 0 and only enters as c W_c: -W_c gives the context -c at every step, "
                      "the same shift, loss and gradients"),
    # ---------------------------------------------------------------- families
    Mutant("dirichlet-tasks-gamma-off-by-one", "families", "graphmeta/families/bayesnet.py",
           "logits[:, real] = np.log(rng.gamma(shape + 1.0, size=size)) + np.log(rng.random(size)) / shape",
           "logits[:, real] = np.log(rng.gamma(shape + 1.0, size=size))",
           "Dirichlet tasks are drawn from Dir(alpha theta* + 1)", FAMILY_TESTS),
    Mutant("cpd-columns-first-parent-fastest", "families", "graphmeta/interop/cpd_table.py",
           "strides = np.flip(np.cumprod(np.flip(parent_cards, 1), 1), 1) // parent_cards * present",
           "strides = np.cumprod(parent_cards, 1) // parent_cards * present",
           "sampling and counting read CPD columns with the first parent varying fastest", FAMILY_TESTS),
    Mutant("cpd-sampling-cdf-shifted", "families", "graphmeta/interop/cpd_table.py",
           "cdf = np.cumsum(theta, axis=-1)[..., :-1].reshape(num_tasks * self.columns, self.width - 1)",
           "cdf = np.cumsum(theta, axis=-1)[..., 1:].reshape(num_tasks * self.columns, self.width - 1)",
           "ancestral sampling compares with the CDF one state late", FAMILY_TESTS),
    Mutant("compositional-scale-not-sqrt", "families", "graphmeta/families/compositional.py",
           "self._scale = 1.0 / np.sqrt(self.in_dim + present.sum(1))  # 1 / sqrt(D_i)",
           "self._scale = 1.0 / (self.in_dim + present.sum(1))  # 1 / sqrt(D_i)",
           "the compositional family scales a node's inputs by 1/D instead of 1/sqrt(D)", FAMILY_TESTS),
    Mutant("sinusoid-phase-sign", "families", "graphmeta/families/sinusoid.py",
           'y = params["amplitude"][:, None, None] * np.sin(x - params["phase"][:, None, None])',
           'y = params["amplitude"][:, None, None] * np.sin(x + params["phase"][:, None, None])',
           "the sinusoid's phase enters with the wrong sign", FAMILY_TESTS),
    # -------------------------------------------------------------- checkpoints
    Mutant("checkpoint-written-in-place", "checkpoints", "graphmeta/train/checkpoint.py",
           "return atomic_write(path, lambda file: file.write(data))",
           "Path(path).parent.mkdir(parents=True, exist_ok=True); Path(path).write_bytes(data); return Path(path)",
           "checkpoints are written straight to their final path, not a temporary file and a rename",
           TRAIN_TESTS),
    Mutant("json-written-in-place", "checkpoints", "graphmeta/train/run_dir.py",
           'return atomic_write_text(path, json.dumps(_plain(data), indent=2) + "\\n")',
           'Path(path).parent.mkdir(parents=True, exist_ok=True); Path(path).write_text(json.dumps(_plain(data), '
           'indent=2) + "\\n"); return Path(path)',
           "summary and evaluation JSON are written in place", TRAIN_TESTS),
    Mutant("python-generator-not-restored", "checkpoints", "graphmeta/train/checkpoint.py",
           'random.setstate((python["version"], tuple(python["words"]), python["gauss"]))',
           'python = python  # random.setstate(...) forgotten',
           "a resume leaves Python's generator where it was", TRAIN_TESTS),
    Mutant("generators-not-restored-on-resume", "checkpoints", "graphmeta/train/run_state.py",
           'set_rng_state(state["rng"])', 'state["rng"]  # set_rng_state forgotten',
           "a resume restores no generator at all", TRAIN_TESTS),
    Mutant("metrics-truncated-before-checkpoint-step", "checkpoints", "graphmeta/train/run_dir.py",
           'kept = [record for record in self.read_metrics() if record["step"] <= step]',
           'kept = [record for record in self.read_metrics() if record["step"] < step]',
           "a resume also drops the records of the checkpoint's own step", TRAIN_TESTS),
    # ------------------------------------------------------------- run safety
    Mutant("checkpoint-graph-not-compared", "run safety", "graphmeta/train/checkpoint.py",
           'if state.get("graph_fingerprint") != recorded["graph_fingerprint"]:', "if False:",
           "a checkpoint loads into a model of another task graph with the same settings",
           ("tests/train/test_recorded_graph.py",)),
    Mutant("learned-graph-learned-again", "run safety", "graphmeta/train/recorded_graph.py",
           'return dataclasses.replace(config, family={**config.family, "graph": str(graph_file)})', "return config",
           "a run on a table is rebuilt on a graph learned again, not on its graph.yaml",
           ("tests/train/test_recorded_graph.py",)),
    Mutant("second-writer-let-in", "run safety", "graphmeta/train/run_lock.py",
           "if not _try_lock(descriptor):", "if False:",
           "a second process may write a run directory that one is writing", ("tests/train/test_run_lock.py",)),
    Mutant("first-signal-stops-at-once", "run safety", "graphmeta/train/interrupts.py",
           "if self.received is not None:", "if True:",
           "the first Ctrl-C stops in the middle of a step, without a checkpoint of it",
           ("tests/train/test_interrupts.py",)),
    Mutant("damaged-metrics-line-kept", "run safety", "graphmeta/train/run_dir.py",
           'if isinstance(record, dict) and isinstance(record.get("step"), int):', "if True:",
           "a damaged metrics.jsonl line that parses as JSON but is no record is read as one",
           ("tests/train/test_run_files_fuzz.py",)),
    Mutant("splits-share-one-stream", "run safety", "graphmeta/families/base.py",
           "sequence = np.random.SeedSequence([self.seed, SPLITS.index(split), seed])",
           "sequence = np.random.SeedSequence([self.seed, 0, seed])",
           "validation and test tasks are drawn from the training stream", ("tests/train/test_split_disjointness.py",)),
    Mutant("process-shares-overlap", "run safety", "graphmeta/train/distributed.py",
           "start = rank * base + min(rank, extra)", "start = rank * base",
           "with tasks left over, the processes' shares of the tasks overlap and miss the last ones",
           ("tests/train/test_distributed.py",)),
    # ------------------------------------------------------ Bayesian-network export
    Mutant("probe-rows-ignore-strides", "BN export", "graphmeta/bayesnet/tabular.py",
           "digit = config // np.maximum(stride, 1) % table.cardinality[parent]",
           "digit = config % table.cardinality[parent]",
           "the probe rows that read off the CPDs set every parent to the same digit", FAMILY_TESTS),
    Mutant("exported-evidence-reversed", "BN export", "graphmeta/interop/tabular_cpds.py",
           "name, len(states[name]), np.asarray(tables[name], dtype=np.float64), evidence=parents or None,",
           "name, len(states[name]), np.asarray(tables[name], dtype=np.float64), evidence=parents[::-1] or None,",
           "exported TabularCPDs list their evidence in reverse order", FAMILY_TESTS),
]


def copy_tree(source: Path, destination: Path) -> None:
    if destination.exists():
        shutil.rmtree(destination)
    shutil.copytree(source, destination, ignore=IGNORED)


def environment(tree: Path) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(tree), "MPLBACKEND": "Agg", "PYTHONDONTWRITEBYTECODE": "1",
            "GRAPHMETA_NO_SHRINK": "1"}  # a failing property test need not be shrunk here


def check_imports_the_copy(tree: Path) -> None:
    found = subprocess.run([sys.executable, "-c", "import graphmeta; print(graphmeta.__file__)"], cwd=tree,
                           env=environment(tree), capture_output=True, text=True, check=True).stdout.strip()
    if not Path(found).resolve().is_relative_to(tree.resolve()):
        raise SystemExit(f"python imports graphmeta from {found}, not from the copy {tree}: the mutants would not run")


def run_tests(tree: Path, tests: tuple[str, ...], report: Path, timeout: int) -> dict[str, str] | None:
    """``{test id: "value" | "crash"}`` of the failing tests; ``None`` when the run timed out."""
    tests = [test for test in tests if (tree / test).exists()]  # an older tree may lack the newer test files
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}", *tests]
    try:
        subprocess.run(command, cwd=tree, env=environment(tree), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return None
    failures = {}
    for case in ElementTree.parse(report).iter("testcase"):
        for problem in [*case.iter("failure"), *case.iter("error")]:
            test = f"{case.get('classname')}::{case.get('name')}"
            failures[test] = classify(problem.tag, problem.get("message") or "", problem.text or "")
    return failures


def classify(tag: str, message: str, text: str) -> str:
    """A failing assertion is a value check; any other exception is a crash."""
    value_messages = ("AssertionError", "assert ", "Failed: DID NOT RAISE", "[XPASS(strict)]", "Regex pattern")
    if tag == "failure" and (message.startswith(value_messages) or
                             ("ExceptionGroup" in message and "AssertionError" in text)):
        return "value"
    return "crash"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=ROOT, help="the tree to mutate (copied, never changed)")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/mutants/work"))
    parser.add_argument("--only", nargs="*", help="mutant names to run (default: all)")
    parser.add_argument("--full-for-survivors", action="store_true", help="rerun the whole suite for survivors")
    parser.add_argument("--timeout", type=int, default=900)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "mutation.md")
    parser.add_argument("--before", type=Path, help="the .json of an earlier run (e.g. on an older tree), shown "
                                                    "as a column")
    parser.add_argument("--render", action="store_true", help="only rewrite --out from its .json (after editing "
                                                              "the mutants' descriptions)")
    args = parser.parse_args()
    earlier = json.loads(args.before.read_text()) if args.before else {"source": "", "results": []}
    before = {r["mutant"]: r["outcome"] for r in earlier["results"]}
    if args.render:
        run = json.loads(args.out.with_suffix(".json").read_text())
        by_name = {m.name: m for m in MUTANTS}
        results = [{**r, "mutant": by_name[r["mutant"]]} for r in run["results"]]
        write_report(results, args.out, run["source"], run.get("left_out", []), before, earlier["source"])
        return
    mutants = [m for m in MUTANTS if not args.only or m.name in args.only]
    copy_tree(args.source, args.workdir)
    check_imports_the_copy(args.workdir)
    tests = tuple(sorted({t for m in mutants for t in m.tests}))
    baseline = run_tests(args.workdir, tests, args.workdir / "baseline.xml", args.timeout)
    if baseline is None:
        raise SystemExit("the unmutated tree's tests timed out")
    if baseline:  # another change in progress: those tests say nothing about the mutants
        print(f"the unmutated tree already fails {sorted(baseline)}; they are left out", flush=True)
    results = []
    for mutant in mutants:
        target = args.workdir / mutant.path
        original = target.read_text()
        occurrences = original.count(mutant.original)
        if occurrences != 1:
            results.append({"mutant": mutant, "outcome": f"not planted ({occurrences} matches)", "failures": {},
                            "scope": "-"})
            continue
        target.write_text(original.replace(mutant.original, mutant.mutated))
        started = time.perf_counter()
        try:
            failures = run_tests(args.workdir, mutant.tests, args.workdir / "mutant.xml", args.timeout)
            scope = "relevant tests"
            if failures == {} and args.full_for_survivors:
                failures = run_tests(args.workdir, ("tests",), args.workdir / "mutant.xml", args.timeout)
                scope = "whole suite"
        finally:
            target.write_text(original)
        if failures is not None:
            failures = {test: kind for test, kind in failures.items() if test not in baseline}
        outcome = ("timeout" if failures is None else "value" if "value" in failures.values()
                   else "crash" if failures else "survived")
        results.append({"mutant": mutant, "outcome": outcome, "failures": failures or {}, "scope": scope,
                        "seconds": round(time.perf_counter() - started, 1)})
        print(f"{mutant.name}: {outcome} ({len(failures or {})} failing tests, {results[-1]['seconds']} s)",
              flush=True)
    write_report(results, args.out, args.source, sorted(baseline), before, earlier["source"])


def write_report(results: list[dict], path: Path, source: Path | str, left_out: list[str],
                 before: dict[str, str], before_source: str = "") -> None:
    counts = {outcome: sum(r["outcome"] == outcome for r in results) for outcome in ("value", "crash", "survived")}
    lines = [
        "# Mutation score",
        "",
        f"`python benchmarks/mutation.py` on `{source}`: {len(results)} single-line bugs planted one at a time in a "
        "copy of the tree, each run against its area's test directories (`MUTANTS` in `benchmarks/mutation.py`). "
        "*value*: at least one test failed on an assertion of a value; *crash*: tests failed only by an exception; "
        "*survived*: every test passed.",
        "",
        f"**{counts['value']} caught by a value check, {counts['crash']} only by a crash, {counts['survived']} survived** "
        f"({sum(bool(r['mutant'].equivalent) for r in results)} of the mutants cannot change a result).",
        "",
        *([f"*before*: the outcome of the same mutant in an earlier run (`{before_source}`), where it could be "
           "planted; *not planted*: the line is not in that tree.", ""] if before else []),
        "| mutant | area | bug | outcome |" + (" before |" if before else "")
        + " value-checking tests that fail (of all failing) |",
        "| --- | --- | --- | --- |" + (" --- |" if before else "") + " --- |",
    ]
    for result in results:
        mutant, failures = result["mutant"], result["failures"]
        value_tests = sorted(test.rsplit(".", 1)[-1] for test, kind in failures.items() if kind == "value")
        shown = ", ".join(f"`{t}`" for t in value_tests[:3]) + (f" +{len(value_tests) - 3}" if len(value_tests) > 3 else "")
        outcome = result["outcome"] + (" (cannot change a result)" if mutant.equivalent else "")
        if result["outcome"] == "survived":
            outcome += f" ({result['scope']})"
        earlier = f" {before.get(mutant.name, 'not measured')} |" if before else ""
        lines.append(f"| `{mutant.name}` | {mutant.area} | {mutant.bug} | {outcome} |{earlier} "
                     f"{shown or '-'} ({len(value_tests)} of {len(failures)}) |")
    if left_out:
        lines += ["", "Left out: tests that failed on the unmutated tree too: " + ", ".join(f"`{t}`" for t in left_out)]
    equivalent = [r["mutant"] for r in results if r["mutant"].equivalent]
    if equivalent:
        lines += ["", "Mutants that cannot change a result:", ""]
        lines += [f"- `{m.name}`: {m.equivalent}." for m in equivalent]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps({"source": str(source), "left_out": left_out, "results": [
        {"mutant": r["mutant"].name, "outcome": r["outcome"], "scope": r["scope"], "failures": r["failures"]}
        for r in results]}, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
