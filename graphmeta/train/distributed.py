"""Data-parallel meta-training on ``torch.distributed``: one process per share of every meta-batch.

Started by ``torchrun --nproc_per_node=N -m graphmeta train CONFIG`` (or ``graphmeta train CONFIG
--nproc N``, see :mod:`.launch`), every process runs the same :class:`~graphmeta.train.Trainer`,
and the run loop (:mod:`.run_loop`) asks this module what differs between them:

- **Joining.** :func:`join_data_parallel_group` reads torchrun's environment (``RANK``,
  ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) and initialises the process
  group (``env://``), or takes the one the caller initialised; without that environment the run
  is one process and nothing here communicates. Half of it set (``RANK`` without
  ``WORLD_SIZE``, say) is a ConfigError naming what is missing. ``train.backend: auto`` is NCCL
  when ``train.device`` is a GPU, else gloo; ``train.device: cuda`` gives each process the GPU of
  its ``LOCAL_RANK``.
- **The same start.** The writer (rank 0) opens or resumes the run directory, and every other
  process takes its whole state (model, Adam, schedule, task stream, RNGs, counters) over the
  process group: every process starts from the same parameters, and the other machines of a
  run need no copy of the run directory to resume.
- **Shares.** Meta-batch ``i`` is the same for any number of processes
  (:class:`~graphmeta.train.episode_sampler.EpisodeSampler`); process ``r`` of ``W`` takes its contiguous
  block of ``B / W`` tasks (:meth:`DataParallelGroup.share`). ``train.meta_batch_size`` must be a
  multiple of ``W``, so every share counts alike: the meta-loss is the mean over the (task, node)
  pairs with query examples, every task of a family's meta-batch has query examples at every
  node, and the mean over processes of the shares' gradients is then exactly the gradient of
  the whole meta-batch.
- **Averaging: DistributedDataParallel.** :class:`Replica` runs the meta-loss through
  ``torch.nn.parallel.DistributedDataParallel``. DDP composes with the second-order inner loop:
  the inner loop differentiates the support loss with ``torch.autograd.grad`` with respect to
  the fast weights, which never reaches the parameters' gradient accumulators where DDP's hooks
  sit; the one ``backward()`` of the meta-loss, through the inner loop's graph (the double
  backward), accumulates each parameter's meta-gradient once, and DDP averages it there, in
  buckets that overlap the rest of the backward pass. Checked for MAML, first-order MAML,
  Meta-SGD, ANIL, Reptile, MAML++ and CAVIA, with and without message passing and learned inner
  rates, against the gradient of one process on the whole meta-batch (relative error 1e-15 in
  float64). An explicit all-reduce would give the same numbers with no overlap, in one more
  place to keep right; DDP is what users of ``torchrun`` expect. ``static_graph=True``: which
  parameters a meta-step uses is fixed by the model's configuration (Reptile's learned inner
  rates take no meta-gradient), so DDP records them on the first step instead of walking the
  autograd graph every step (``find_unused_parameters``); without either, such a model fails.
  ``forward_sync_buffers=False``: the only buffers training changes are the input statistics of the
  shift warning (:mod:`graphmeta.adapt.input_shift`), which each process keeps of its own share of
  the rows; rank 0 saves its own, an estimate from half the rows with two processes. The meta-loss and metrics a
  process reports are averaged over processes (:meth:`Replica.mean`, one small all-reduce), so
  every process takes the same decision on a non-finite loss and rank 0 logs the numbers of the
  whole meta-batch.
- **One writer.** Rank 0 logs, validates (the others take its record), writes checkpoints,
  config and summary; :class:`RankZeroCheckpoints` skips the write elsewhere and holds every
  process at a barrier until rank 0 has written. Only rank 0 shows a progress bar. A stop that
  one process requests (a hook, a signal) stops all of them after the same unit
  (:meth:`DataParallelGroup.agree_on_stop`).
- **Resume.** The checkpoint records the number of processes. Resumed on as many, a run goes
  on bit for bit; on another number it goes on with the same meta-batches, says so (a warning)
  and records it in ``summary.json["world_size_changes"]`` (:func:`note_world_size_change`):
  the gradients are then summed in another order, so the run matches the uninterrupted one to
  rounding, not bit for bit.
- **Evaluation.** Test tasks are split over the processes the same way (any number of tasks,
  the first ``T % W`` processes taking one more) and the per-task results gathered in task order
  (:meth:`DataParallelGroup.gather_tasks`): every process gets the table one process would print.

Online meta-learning is not data-parallel: its unit is one arriving task, scored before it
trains the model, and its first meta-batches from the buffer hold fewer tasks than there are
processes; :meth:`DataParallelGroup.check_training` refuses it with a ConfigError.
"""

from __future__ import annotations

import atexit
import os
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ..data import TaskBatch
from ..errors import ConfigError
from .hooks import CheckpointEvent
from .run_dir import RunDirectory

#: ``train.backend``: ``auto`` is NCCL for a GPU ``train.device``, gloo otherwise.
BACKENDS = ("auto", "gloo", "nccl")
#: What torchrun sets in every process it starts (``env://`` initialisation).
ENVIRONMENT = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")

Result = TypeVar("Result")


@dataclass(frozen=True)
class DataParallelGroup:
    """This process's place in a data-parallel run: ``rank`` of ``world_size`` processes,
    ``local_rank`` on its machine; collectives run on ``collective_device`` (a GPU for NCCL).
    The default is one process, where every method is local."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    collective_device: str = "cpu"

    @property
    def is_writer(self) -> bool:
        """Whether this process writes the run directory and shows progress (rank 0)."""
        return self.rank == 0

    def share(self, num_tasks: int, rank: int | None = None) -> range:
        """The tasks of ``num_tasks`` that ``rank`` (default: this process) takes: contiguous blocks
        in rank order, the first ``num_tasks % world_size`` processes taking one task more."""
        rank = self.rank if rank is None else rank
        base, extra = divmod(num_tasks, self.world_size)
        start = rank * base + min(rank, extra)
        return range(start, start + base + (rank < extra))

    def take(self, tasks: TaskBatch) -> TaskBatch:
        """This process's share of ``tasks``; a ConfigError when there are fewer tasks than processes."""
        if self.world_size == 1:
            return tasks
        if tasks.num_tasks < self.world_size:
            raise ConfigError(f"{tasks.num_tasks} tasks cannot be split over {self.world_size} processes: ask for at "
                              f"least {self.world_size} (e.g. evaluate.num_tasks)")
        return tasks.select(list(self.share(tasks.num_tasks)))

    def gather_tasks(self, values: torch.Tensor, num_tasks: int) -> torch.Tensor:
        """``[num_tasks, ...]``: every process's ``values`` of its :meth:`share`, in task order."""
        if self.world_size == 1:
            return values
        shares = [self.share(num_tasks, rank) for rank in range(self.world_size)]
        padded = values.new_full((len(shares[0]), *values.shape[1:]), torch.nan, device=self.collective_device)
        padded[:values.shape[0]] = values.to(self.collective_device)
        gathered = [torch.empty_like(padded) for _ in shares]
        dist.all_gather(gathered, padded)
        return torch.cat([part[:len(share)] for part, share in zip(gathered, shares)]).to(values.device)

    def from_writer(self, function: Callable[[], Result]) -> Result:
        """``function()`` run by the writer alone, its result handed to every process; what it
        raises is raised in every process, so none is left waiting."""
        if self.world_size == 1:
            return function()
        outcome: tuple[bool, Any] | None = None
        if self.is_writer:
            try:
                outcome = (True, function())
            except Exception as error:  # every process raises it below
                outcome = (False, error)
        box = [outcome]
        dist.broadcast_object_list(box, src=0, device=torch.device(self.collective_device))
        succeeded, value = box[0]
        if not succeeded:
            raise value
        return value

    def agree_on_stop(self, reason: str | None) -> str | None:
        """The stop reason every process adopts: the first one requested, in rank order, or ``None``
        when no process asked to stop."""
        if self.world_size == 1:
            return reason
        requested = torch.tensor([reason is not None], dtype=torch.int32, device=self.collective_device)
        dist.all_reduce(requested, op=dist.ReduceOp.MAX)
        if not requested.item():
            return None
        reasons: list[str | None] = [None] * self.world_size
        dist.all_gather_object(reasons, reason)
        return next(given for given in reasons if given is not None)

    def barrier(self) -> None:
        """Wait until every process got here."""
        if self.world_size > 1:
            dist.barrier()

    def process_device(self, device: str | None) -> str | None:
        """``train.device`` for this process: plain ``cuda`` is the GPU of its local rank when
        there are several processes; anything else as given."""
        if device is None or self.world_size == 1:
            return device
        chosen = torch.device(device)
        return f"cuda:{self.local_rank}" if chosen.type == "cuda" and chosen.index is None else device

    def check_training(self, mode: str, meta_batch_size: int) -> None:
        """A ConfigError when a run of ``mode`` with meta-batches of ``meta_batch_size`` cannot be
        split over the processes (see the module docstring)."""
        if self.world_size == 1:
            return
        if mode != "batch":
            raise ConfigError(f"train.mode {mode!r} runs in one process, not on {self.world_size}: an online learner "
                              "scores every arriving task before it trains on it, one task at a time. Start it "
                              "without torchrun (or --nproc)")
        if meta_batch_size % self.world_size:
            below = meta_batch_size - meta_batch_size % self.world_size
            nearest = sorted({max(below, self.world_size), below + self.world_size})
            raise ConfigError(f"train.meta_batch_size {meta_batch_size} does not split evenly over {self.world_size} "
                              f"processes: use a multiple of {self.world_size} ({' or '.join(map(str, nearest))}), so "
                              "every process takes the same share and the averaged gradient is the one of the whole "
                              "meta-batch")

    def replicate(self, model: torch.nn.Module) -> Replica | None:
        """``model`` under DistributedDataParallel (``None`` for one process); its parameters are
        rank 0's from here on."""
        if self.world_size == 1:
            return None
        on_gpu = torch.device(self.collective_device).type == "cuda"
        module = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[torch.device(self.collective_device)] if on_gpu else None,
            forward_sync_buffers=False, static_graph=True)
        return Replica(self, module)


SINGLE_PROCESS = DataParallelGroup()


@dataclass(frozen=True)
class Replica:
    """This process's copy of a model in a data-parallel run: calling ``module`` computes the
    meta-loss of this process's share, and its ``backward()`` leaves in every parameter's
    ``grad`` the mean over the processes (DDP)."""

    group: DataParallelGroup
    module: torch.nn.parallel.DistributedDataParallel

    def mean(self, loss: torch.Tensor,
             metrics: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``loss`` and ``metrics`` (detached) averaged over the processes, in one all-reduce. NaN
        anywhere stays NaN, so every process sees a non-finite meta-loss when one does."""
        parts = [loss.detach().reshape(1), *(value.detach().reshape(-1) for value in metrics.values())]
        flat = torch.cat(parts)
        dist.all_reduce(flat)
        flat /= self.group.world_size
        pieces = flat.split([part.numel() for part in parts])
        averaged = {key: piece.reshape(value.shape) for (key, value), piece in zip(metrics.items(), pieces[1:])}
        return pieces[0].reshape(loss.shape), averaged


@dataclass(frozen=True)
class RankZeroCheckpoints:
    """The hook (see :mod:`.hooks`) by which only rank 0 writes checkpoints and the other
    processes wait at a barrier until it has."""

    group: DataParallelGroup

    def before_checkpoint(self, event: CheckpointEvent) -> bool:
        return self.group.is_writer

    def after_checkpoint(self, event: CheckpointEvent) -> None:
        self.group.barrier()


def join_data_parallel_group(backend: str = "auto", device: str | None = None) -> DataParallelGroup:
    """The group of this process: the process group the caller initialised, else the one torchrun's
    environment describes (initialised here with ``backend``, see :data:`BACKENDS`), else one
    process. ``device`` is ``train.device``; a half-set environment, or a backend that cannot run
    on it, is a ConfigError."""
    if dist.is_available() and dist.is_initialized():
        return DataParallelGroup(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                                 _collective_device(dist.get_backend()))
    environment = _torchrun_environment()
    if environment is None or environment["WORLD_SIZE"] == 1:
        return SINGLE_PROCESS
    if not dist.is_available():
        raise ConfigError("this PyTorch was built without torch.distributed, which a run of several processes needs")
    rank, world_size, local_rank = environment["RANK"], environment["WORLD_SIZE"], environment["LOCAL_RANK"]
    group = DataParallelGroup(rank, world_size, local_rank)
    device = group.process_device(device)
    chosen = resolve_backend(backend, device)
    if chosen == "nccl":  # resolve_backend checked that device is a GPU
        torch.cuda.set_device(device)
        group = replace(group, collective_device=device)
    store, rank, world_size = next(dist.rendezvous("env://", rank, world_size))
    # torchrun's restarted processes meet in the store of the first attempt: keep each attempt's keys apart
    attempt = dist.PrefixStore(f"graphmeta/attempt-{restart_count()}", store)
    dist.init_process_group(chosen, store=attempt, rank=rank, world_size=world_size)
    atexit.register(_leave_process_group)
    return group


def restart_count() -> int:
    """How many times torchrun has restarted this run's processes (``--max-restarts``): 0 on the
    first start, or outside torchrun. ``graphmeta train`` resumes a restarted run from its last
    checkpoint."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT") or 0)


def note_world_size_change(run: RunDirectory, step: int, unit: str, trained_on: int, now: int) -> None:
    """Warn that the run in ``run`` was trained on ``trained_on`` processes up to ``unit`` ``step``
    and goes on with ``now``, and record it in ``summary.json["world_size_changes"]``."""
    warnings.warn(f"{run.path} was trained on {_processes(trained_on)} up to {unit} {step} and goes on with "
                  f"{_processes(now)}: the meta-batches are the same, each process takes another share, so the run "
                  "continues as before, to rounding (the gradients are summed in another order), not bit for bit",
                  stacklevel=3)
    history = run.read_summary().get("world_size_changes", [])
    run.update_summary("world_size_changes", [*history, {"after": step, "unit": unit, "from": trained_on, "to": now}])


def _torchrun_environment() -> dict[str, Any] | None:
    """RANK, WORLD_SIZE and LOCAL_RANK as integers (and the rest as set), ``None`` when none of
    torchrun's variables is set; a ConfigError when only some are, or they do not fit together."""
    given = {name: os.environ[name] for name in ENVIRONMENT if os.environ.get(name)}
    if not {"RANK", "WORLD_SIZE", "LOCAL_RANK"} & given.keys():
        return None
    missing = [name for name in ENVIRONMENT if name not in given]
    if missing:
        raise ConfigError(f"the environment is half set up for several processes: {', '.join(sorted(given))} "
                          f"{'is' if len(given) == 1 else 'are'} set but not {', '.join(missing)}. Start the run with "
                          "torchrun (or graphmeta train --nproc N), which sets them all, or unset them for one process")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_PORT"):
        try:
            given[name] = int(given[name])
        except ValueError:
            raise ConfigError(f"environment variable {name} must be a whole number, got {given[name]!r}") from None
    if given["WORLD_SIZE"] < 1 or not 0 <= given["RANK"] < given["WORLD_SIZE"] or given["LOCAL_RANK"] < 0:
        raise ConfigError(f"environment variables RANK={given['RANK']}, WORLD_SIZE={given['WORLD_SIZE']}, "
                          f"LOCAL_RANK={given['LOCAL_RANK']} do not fit together: RANK must be in 0 .. WORLD_SIZE - 1")
    return given


def resolve_backend(backend: str, device: str | None) -> str:
    """The collective backend ``train.backend`` means on ``train.device`` (``auto``: NCCL on a GPU,
    gloo otherwise); NCCL without a GPU is a ConfigError."""
    on_gpu = device is not None and torch.device(device).type == "cuda"
    if backend == "auto":
        return "nccl" if on_gpu else "gloo"
    if backend == "nccl" and not (on_gpu and torch.cuda.is_available()):
        raise ConfigError(f"train.backend nccl runs on GPUs, but train.device is {device!r}"
                          f"{'' if torch.cuda.is_available() else ' and no GPU is visible'}: set train.device: cuda, "
                          "or train.backend: gloo (or auto) on CPU")
    return backend


def _collective_device(backend: str) -> str:
    return f"cuda:{torch.cuda.current_device()}" if backend == "nccl" else "cpu"


def _processes(count: int) -> str:
    return f"{count} process{'' if count == 1 else 'es'}"


def _leave_process_group() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
