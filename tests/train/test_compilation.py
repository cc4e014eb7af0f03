"""``train.compile``: when a run compiles its meta-step, what ``auto`` decides from the step times it
measures, and the summary's record. (Compiled equals eager: tests/adapt/test_compiled.py.)"""

import pytest
import torch

import graphmeta as gm
from graphmeta.train.compilation import AUTO_MIN_SECONDS, TRIAL_STEPS, RunCompilation


class FakeModel:
    """Records compile() / eager() the way GraphMetaLearner answers is_compiled."""

    def __init__(self) -> None:
        self.is_compiled = False
        self.calls: list[str] = []

    def compile(self, adapt: bool = True) -> None:
        assert adapt is False  # the run compiles the meta-step alone
        self.is_compiled = True
        self.calls.append("compile")

    def eager(self) -> None:
        self.is_compiled = False
        self.calls.append("eager")


def run(setting, eager_s: float, compiled_s: float, steps: int, processes: int = 1) -> RunCompilation:
    """A run of ``steps`` steps whose steps take ``eager_s`` eager and ``compiled_s`` compiled (the
    first compiled step 30 s: the compile)."""
    model = FakeModel()
    compilation = RunCompilation(model, setting, processes)
    compilation.start()
    compiled_before = False
    for step in range(1, steps + 1):
        if model.is_compiled:
            seconds = 30.0 if not compiled_before else compiled_s
            compiled_before = True
        else:
            seconds = eager_s
        compilation.after_step(seconds, steps - step)
    return compilation


def test_auto_keeps_the_compiled_step_where_it_is_faster():
    compilation = run("auto", eager_s=0.1, compiled_s=0.05, steps=100_000)
    assert compilation.model.calls == ["compile"] and compilation.compiled
    record = compilation.record()
    assert record["decision"].startswith("compiled (auto") and record["compile_s"] == 30.0
    assert record["eager_step_s"] == 0.1 and record["compiled_step_s"] == 0.05


def test_auto_goes_back_to_eager_where_compiled_steps_are_slower():
    compilation = run("auto", eager_s=0.05, compiled_s=0.08, steps=100_000)
    assert compilation.model.calls == ["compile", "eager"] and not compilation.compiled
    assert compilation.record()["decision"] == "eager (auto: compiled steps were not faster)"


def test_auto_never_compiles_a_short_run():
    steps = int(AUTO_MIN_SECONDS / 0.1) - 1  # at 0.1 s a step, less than the threshold in all
    compilation = run("auto", eager_s=0.1, compiled_s=0.01, steps=steps)
    assert compilation.model.calls == [] and "too short" in compilation.record()["decision"]


@pytest.mark.parametrize(("setting", "processes", "calls"), [(True, 1, ["compile"]), (True, 2, ["compile"]),
                                                             (False, 1, []), ("auto", 2, [])])
def test_true_and_false_decide_at_the_start(setting, processes, calls):
    compilation = run(setting, eager_s=1.0, compiled_s=0.01, steps=TRIAL_STEPS * 3, processes=processes)
    record = compilation.record()
    assert compilation.model.calls == calls and record["decision"] is not None
    assert record["compile_s"] == (30.0 if calls else None)  # a compiled run's first step is its compile


def test_a_compiled_run_trains_compiled_and_says_so(make_trainer, monkeypatch):
    """``compile: true`` compiles the model's meta-step before its first step (here with the
    ``aot_eager`` backend, to keep the test short) and the summary records it."""
    original = gm.GraphMetaLearner.compile

    def compile_quickly(model, *args, **kwargs):
        original(model, *args, backend="aot_eager", **kwargs)

    monkeypatch.setattr(gm.GraphMetaLearner, "compile", compile_quickly)
    trainer = make_trainer(compile=True, steps=3, val_every=3)
    summary = trainer.fit()
    assert trainer.model.is_compiled and summary["compile"]["compiled"] is True
    assert summary["compile"]["decision"] == "compiled (train.compile: true)"
    assert torch.isfinite(torch.tensor(summary["final_train_loss"]))


def test_a_short_auto_run_stays_eager_and_says_so(make_trainer):
    summary = make_trainer(steps=2, val_every=2).fit()
    assert summary["compile"]["compiled"] is False and summary["compile"]["decision"] is None


def test_compile_must_be_a_switch_or_auto(make_trainer):
    with pytest.raises(gm.ConfigError, match="compile"):
        make_trainer(compile="sometimes")
