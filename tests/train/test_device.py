"""train.device and train.threads: checked before any work, and the thread count restored."""

import pytest
import torch

import graphmeta as gm
from graphmeta.train.device import auto_threads, resolve_device, thread_count


def test_cpu_is_a_device():
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_cuda_without_cuda_is_a_config_error_not_a_traceback():
    with pytest.raises(gm.ConfigError, match=r"train.device is 'cuda' but (this torch build has no CUDA|no CUDA GPU)"):
        resolve_device("cuda")


def test_unknown_device_name_is_a_config_error():
    with pytest.raises(gm.ConfigError, match=r"train.device 'gpu' is not a device name"):
        resolve_device("gpu")


def test_trainer_refuses_a_missing_device_before_training(make_trainer):
    with pytest.raises(gm.ConfigError, match="train.device 'gpu'"):
        make_trainer(device="gpu")


def test_thread_count_is_set_for_the_block_and_restored():
    before = torch.get_num_threads()
    with thread_count(1) as used:
        assert used == 1 and torch.get_num_threads() == 1
    assert torch.get_num_threads() == before
    assert 1 <= auto_threads() <= max(before, 1)


def test_threads_setting_is_validated(make_trainer):
    with pytest.raises(gm.ConfigError, match="threads"):
        make_trainer(threads=0)
    with pytest.raises(gm.ConfigError, match="threads"):
        make_trainer(threads="many")


def test_fit_runs_with_the_configured_threads_and_restores_them(make_trainer):
    seen = []
    trainer = make_trainer(threads=1, hooks=[gm.Hook(after_step=lambda event: seen.append(torch.get_num_threads()))])
    before = torch.get_num_threads()
    trainer.fit()
    assert set(seen) == {1} and torch.get_num_threads() == before


def test_from_run_without_checkpoints_says_so(make_trainer):
    trainer = make_trainer()
    trainer.fit()
    for checkpoint in (trainer.run.best, trainer.run.last):
        checkpoint.unlink()
    with pytest.raises(gm.CheckpointError, match=r"has no checkpoint .*neither best\.pt nor last\.pt"):
        gm.Trainer.from_run(trainer.run.path)
