"""Data-parallel training under ``torchrun``, kept out of the pages.

``torchrun --nproc_per_node=N page.py`` starts N copies of a page. Every copy (a *rank*) runs the whole page: it
builds the same models from the same seed and calls :func:`~itemchest_utils.fit`. While ``fit`` trains, this module
makes the N copies behave like one process training on the page's batch:

- each rank trains on its own contiguous slice of every batch (:func:`shard_batch`), so the global batch is still
  the page's ``batch_size``;
- at the end of every backward pass the gradients of the parameters that ``state``'s optimizers update are
  averaged over the ranks, in one flattened buffer, as ``DistributedDataParallel`` does. A page's ``train_step``
  closes over its modules, so wrapping them in ``DistributedDataParallel`` would mean editing every page, and DDP
  refuses the double backward of a gradient penalty; a hook at the end of each backward pass needs neither.
  Averaging there (rather than just before ``optimizer.step()``) matters: pages that clip the gradient norm
  clip the global batch's gradient, as one process would;
- the ranks start from rank 0's parameters and buffers, draw different noise (each rank's torch seed is offset),
  and only rank 0 prints, shows a progress bar and writes checkpoints.

With ``WORLD_SIZE`` unset or 1 nothing here does anything: a page run as usual behaves exactly as before.
"""

from __future__ import annotations

import atexit
import os
from typing import Mapping

import torch
import torch.distributed as dist
from torch import nn

RANK_SEED_STRIDE = 1_000_003   # seeds of neighbouring ranks differ by a large prime, not by one


def world_size() -> int:
    """The number of processes training together: torchrun's ``WORLD_SIZE``, 1 without torchrun."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def rank() -> int:
    """This process's rank among all processes (0 without torchrun)."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank()
    return int(os.environ.get("RANK", "0") or 0)


def local_rank() -> int:
    """This process's rank on its machine, i.e. which of the machine's GPUs it uses (0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", "0") or 0)


def is_distributed() -> bool:
    """Whether this process is one of several training together (torchrun with more than one process)."""
    return world_size() > 1


def is_main_process() -> bool:
    """Rank 0: the process that prints, shows progress and writes checkpoints and results."""
    return rank() == 0


def init_distributed() -> bool:
    """Join torchrun's process group; return whether this process is one of several.

    Idempotent, and a no-op when ``WORLD_SIZE`` is unset or 1. On a machine with CUDA each rank takes the GPU of its
    ``LOCAL_RANK``; GPU tensors travel over NCCL and CPU tensors (small values, the RNG states) over gloo, which is
    also the only backend on a machine without CUDA."""
    if world_size() <= 1 or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="cpu:gloo,cuda:nccl")
    else:
        dist.init_process_group(backend="gloo")
    atexit.register(_leave)
    return True


def _leave() -> None:
    """Leave the process group at exit, so torch does not warn that it was never destroyed."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def rank_device() -> torch.device | None:
    """``cuda:LOCAL_RANK`` under torchrun on a machine with CUDA (where :func:`~itemchest_utils.pick_device`
    must put this rank's work); ``None`` otherwise."""
    if world_size() > 1 and torch.cuda.is_available():
        return torch.device("cuda", local_rank())
    return None


class BatchNotSplittable(ValueError):
    """A training batch cannot be divided among the processes of a ``torchrun`` launch."""


def shard_batch(batch, ranks: int | None = None, index: int | None = None):
    """This rank's contiguous slice of every tensor in ``batch`` (a tensor, or tuples/lists/dicts of them).

    Every tensor's first dimension must hold the examples and divide by the number of ranks: unequal slices would
    weigh the examples of the smaller slices more when the gradients are averaged. ``batches.batch(step)`` is a
    pure function of the step, so the slices are too: a resumed run sees the slices it would have seen."""
    ranks = world_size() if ranks is None else ranks
    index = rank() if index is None else index
    if ranks == 1:
        return batch
    if isinstance(batch, torch.Tensor):
        if batch.dim() == 0:
            raise BatchNotSplittable("a training batch holds a 0-dimensional tensor, which cannot be divided among "
                                     f"{ranks} processes; give every tensor of the batch the examples on its first "
                                     "dimension, or run the page in one process")
        size = len(batch)
        if size % ranks:
            below, above = size // ranks * ranks, (size // ranks + 1) * ranks
            suggestion = f"{below} or {above}" if below else f"{above}"
            raise BatchNotSplittable(f"a training batch of {size} examples does not divide among {ranks} processes: "
                                     f"use a batch size that is a multiple of {ranks} (e.g. {suggestion}), or launch "
                                     "a number of processes that divides the batch size")
        share = size // ranks
        return batch[index * share:(index + 1) * share]
    if isinstance(batch, (tuple, list)):
        return type(batch)(shard_batch(part, ranks, index) for part in batch)
    if isinstance(batch, Mapping):
        return {key: shard_batch(value, ranks, index) for key, value in batch.items()}
    raise BatchNotSplittable(f"batches.batch(step) returned a {type(batch).__name__}, which fit cannot divide among "
                             f"{ranks} processes: return a tensor, or tuples/lists/dicts of tensors with the examples "
                             "on the first dimension, or run the page in one process")


def average_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """The mean of ``values`` over the ranks (every rank gets it); ``values`` itself in one process."""
    if not is_distributed():
        return values
    total = values.clone()
    dist.all_reduce(total)   # gloo has no AVG: sum, then divide
    return total / world_size()


def same_on_every_rank(value, what: str):
    """``value``, after checking that every rank has the same one (e.g. whether a checkpoint exists: ranks on
    machines that do not share the checkpoint folder would otherwise resume from different steps and hang)."""
    if not is_distributed():
        return value
    values: list = [None] * world_size()
    dist.all_gather_object(values, value)
    if any(v != values[0] for v in values):
        raise RuntimeError(f"the processes disagree on {what} ({values}, by rank): under torchrun every machine must "
                           "see the same files; point ITEMCHEST_CHECKPOINTS at a folder all machines share")
    return value


def barrier() -> None:
    """Wait until every rank arrives (e.g. until rank 0 has written a checkpoint the others may read)."""
    if is_distributed():
        dist.barrier()


def gather_rng_states() -> list[dict] | None:
    """Every rank's torch RNG state (CPU, and this rank's GPU), gathered on every rank; ``None`` in one process.

    A checkpoint keeps them all, so that each rank of a resumed run draws the noise an uninterrupted run draws."""
    if not is_distributed():
        return None
    own = {"torch_rng": torch.get_rng_state()}
    if torch.cuda.is_available():
        own["cuda_rng"] = torch.cuda.get_rng_state()
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, own)
    return gathered


def restore_rng_state(saved: list[dict] | None) -> None:
    """Restore this rank's RNG state from a checkpoint's per-rank list.

    In one process the checkpoint's rank-0 state (restored by the caller) is the one to use. A checkpoint written
    by another number of processes has no state for some ranks: each rank then re-offsets its seed, so the ranks
    still draw different noise, and the run says its noise differs from an uninterrupted one."""
    if not is_distributed():
        return
    if saved is not None and len(saved) == world_size():
        own = saved[rank()]
        torch.set_rng_state(own["torch_rng"])
        if "cuda_rng" in own and torch.cuda.is_available():
            torch.cuda.set_rng_state(own["cuda_rng"])
        return
    offset_rng_per_rank()
    if is_main_process():
        written_by = f"{len(saved)} processes" if saved is not None else "one process"
        print(f"The checkpoint was written by {written_by}, this run has {world_size()}: the ranks' random numbers "
              "restart from new seeds, so the resumed run's noise differs from an uninterrupted run's.")


def offset_rng_per_rank() -> None:
    """Give each rank its own torch seed, derived from the RNG state every rank shares.

    The pages seed every rank alike (so models start equal); without this every rank would draw the same
    diffusion timesteps and GAN latents, and N ranks would repeat one rank's noise N times. The seed is drawn from
    the shared state, so it is deterministic, and a run from another seed gets other per-rank seeds."""
    if not is_distributed():
        return
    shared = int(torch.randint(0, 2**62, (1,)).item())
    torch.manual_seed(shared + RANK_SEED_STRIDE * rank())   # CPU and every CUDA device


def _modules(state: Mapping[str, object]) -> list[nn.Module]:
    return [obj for obj in state.values() if isinstance(obj, nn.Module)]


def _optimizers(state: Mapping[str, object]) -> list[torch.optim.Optimizer]:
    return [obj for obj in state.values() if isinstance(obj, torch.optim.Optimizer)]


class _GradientAverager:
    """Averages over the ranks, at the end of every backward pass, the gradients that pass accumulated into the
    parameters of ``optimizers``: the arithmetic of ``DistributedDataParallel``, for any number of optimizers and
    backward passes per step, double backward included.

    Averaging the whole ``.grad`` after each pass is exact however many passes accumulate into it: the part from
    earlier passes is already equal on every rank, and the mean of equal values is that value."""

    def __init__(self, optimizers: list[torch.optim.Optimizer]):
        seen: dict[int, nn.Parameter] = {}
        for optimizer in optimizers:
            for group in optimizer.param_groups:
                for parameter in group["params"]:
                    if parameter.requires_grad:
                        seen.setdefault(id(parameter), parameter)
        self.parameters = list(seen.values())   # the order of the optimizers' groups: the same on every rank
        self.position = {id(p): i for i, p in enumerate(self.parameters)}
        self.accumulated: set[int] = set()
        self.queued = False
        self.handles = [p.register_post_accumulate_grad_hook(self._accumulated) for p in self.parameters]
        self.handles += [o.register_step_pre_hook(self._check_averaged) for o in optimizers]

    def _accumulated(self, parameter: torch.Tensor) -> None:
        self.accumulated.add(self.position[id(parameter)])
        if not self.queued:   # one reduction per backward pass, once every gradient of the pass has arrived
            self.queued = True
            torch.autograd.Variable._execution_engine.queue_callback(self._average)

    def _average(self) -> None:
        parameters = [self.parameters[i] for i in sorted(self.accumulated)]
        self.accumulated.clear()
        self.queued = False
        groups: dict[tuple, list[torch.Tensor]] = {}
        for parameter in parameters:
            if parameter.grad.is_sparse:
                raise NotImplementedError("data-parallel training does not average sparse gradients")
            groups.setdefault((parameter.grad.device, parameter.grad.dtype), []).append(parameter.grad)
        for gradients in groups.values():
            flat = torch.cat([g.reshape(-1) for g in gradients])
            dist.all_reduce(flat)
            flat /= world_size()
            for gradient, part in zip(gradients, flat.split([g.numel() for g in gradients])):
                gradient.copy_(part.view_as(gradient))

    def _check_averaged(self, optimizer, args, kwargs) -> None:
        """A parameter frozen when training started has no hook; should it get a gradient, the ranks would drift
        apart silently, so stop instead."""
        for group in optimizer.param_groups:
            for parameter in group["params"]:
                if parameter.grad is not None and id(parameter) not in self.position:
                    raise RuntimeError("an optimizer stepped a parameter that did not require gradients when fit "
                                       "started, so its gradient is not averaged across processes; set "
                                       "requires_grad before calling fit, or run the page in one process")

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


class DataParallelTraining:
    """What :func:`~itemchest_utils.fit` switches on for the length of a run under torchrun; inactive (every
    method a no-op) in one process.

    ``start()`` joins the process group, offsets each rank's seed, converts BatchNorm to SyncBatchNorm on GPUs,
    copies rank 0's parameters and buffers to every rank and installs the gradient averaging; ``close()`` removes
    the hooks and puts the original BatchNorm layers back, so the page's code after ``fit`` sees its own modules."""

    def __init__(self, state: Mapping[str, object]):
        self.state = state
        self.active = init_distributed()
        self.averager: _GradientAverager | None = None
        self.swapped: list[tuple[nn.Module, str, nn.Module]] = []   # (parent, child name, original BatchNorm)
        self.notes: list[str] = []

    def start(self) -> "DataParallelTraining":
        if not self.active:
            return self
        offset_rng_per_rank()
        self._synchronise_batch_norm()
        with torch.no_grad():
            for module in _modules(self.state):
                for tensor in [*module.parameters(), *module.buffers()]:
                    dist.broadcast(tensor, src=0)
        self.averager = _GradientAverager(_optimizers(self.state))
        return self

    def _synchronise_batch_norm(self) -> None:
        """On GPUs, BatchNorm's statistics should cover the global batch, as in one process: replace each BatchNorm
        child by a SyncBatchNorm sharing its parameters and running buffers (``convert_sync_batchnorm`` returns a
        new module only for a BatchNorm itself; below that it edits in place, so we swap children ourselves and
        remember them). SyncBatchNorm refuses CPU tensors, so on CPU each rank normalises with the statistics of
        its own slice of the batch (as DistributedDataParallel without SyncBatchNorm does), and says so."""
        found = {(id(parent), name): (parent, name, child) for module in _modules(self.state)
                 for parent in module.modules() for name, child in parent.named_children()
                 if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, nn.SyncBatchNorm)}
        layers = list(found.values())
        layers += [(None, name, module) for name, module in self.state.items()
                   if isinstance(module, nn.modules.batchnorm._BatchNorm)]
        if not layers:
            return
        on_gpu = all(p.device.type == "cuda" for _, _, layer in layers for p in [*layer.parameters(),
                                                                                *layer.buffers()])
        if not on_gpu or any(parent is None for parent, _, _ in layers):
            self.notes.append(f"BatchNorm: each of the {world_size()} processes normalises with its own slice of the "
                              "batch (SyncBatchNorm needs GPUs); the global batch's statistics are not used.")
            return
        for parent, name, layer in layers:
            parent.add_module(name, nn.SyncBatchNorm.convert_sync_batchnorm(layer))
            self.swapped.append((parent, name, layer))
        self.notes.append(f"BatchNorm: {len(layers)} layers use SyncBatchNorm (statistics of the global batch).")

    def shard(self, batch):
        return shard_batch(batch) if self.active else batch

    def close(self) -> None:
        if self.averager is not None:
            self.averager.remove()
            self.averager = None
        for parent, name, layer in reversed(self.swapped):
            layer.train(getattr(parent, name).training)   # the mode the page last set
            parent.add_module(name, layer)   # it shares the parameters and buffers the SyncBatchNorm trained
        self.swapped.clear()
