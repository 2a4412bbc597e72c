"""Data-parallel training over processes started by ``torchrun`` (NCCL on CUDA, gloo on CPU).

How the adversarial update stays exact under data parallelism
------------------------------------------------------------
Every defence steps *several* optimisers per batch on *different* losses (the obfuscator's
``L_util - λ·L_adv``, then the adversary's own ``L_adv``; a reversed-gradient update). Instead of
wrapping sub-modules in :class:`torch.nn.parallel.DistributedDataParallel`, whose one-backward-
one-all-reduce hook model does not fit several backward passes over shared sub-graphs, the shared
:meth:`noisyarl.runtime.context.StepContext.step` averages the gradients of exactly the
parameters of the optimiser it is about to step (one flattened all-reduce per step, after
``backward`` and before ``optimizer.step``). With equal per-rank batches this is the gradient of
the loss of the combined batch, for every one of the defence's optimisers.

Batch normalisation is the other place where a data-parallel step can differ from one process on
the combined batch: each rank would normalise with its own half-batch statistics. Torch's
:class:`torch.nn.SyncBatchNorm` needs CUDA (its statistics kernels do not exist on CPU), so
:func:`convert_batchnorm` swaps every ``BatchNorm1d/2d`` for :class:`SyncedBatchNorm1d/2d`: a
subclass (``isinstance`` checks and state-dict keys unchanged) that computes the batch mean and
variance of the *global* batch with two differentiable all-reduces (sum, then the sum of squared
deviations, as a two-pass variance on one process), on every device and backend.

Together: N processes with batch ``B/N`` each follow the same parameters as one process with
batch ``B``, up to float rounding (``tests/test_distributed.py``). What still differs are random
draws made *inside* the models (the noise ``σ·ε``, dropout): each rank draws its own (per-rank
seeds), i.i.d. like one process's draws but not the same numbers.

Everything here is a no-op with one process, so single-process runs are unchanged.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

#: Distance between the global seeds of two ranks (a prime, far from the phase offsets).
RANK_SEED_STRIDE = 104_729


@dataclass(frozen=True)
class DistributedEnv:
    """Where this process sits: ``rank`` in [0, world_size), ``local_rank`` on its node."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Whether the environment carries torchrun's ``WORLD_SIZE`` with more than one process."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def current_env() -> DistributedEnv:
    """This process's rank and world size (``DistributedEnv()`` without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return DistributedEnv()
    return DistributedEnv(rank=dist.get_rank(),
                          local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())),
                          world_size=dist.get_world_size())


def init_distributed(device_type: str) -> DistributedEnv:
    """Join torchrun's process group once (idempotent); a single process stays alone.

    device_type: ``cuda`` (NCCL; this process uses GPU ``LOCAL_RANK``) or ``cpu`` (gloo).
    Reads ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT`` as torchrun
    sets them. The group is destroyed when the interpreter exits.
    """
    if not launched_by_torchrun() or (dist.is_available() and dist.is_initialized()):
        return current_env()
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device_type == "cuda":
        torch.cuda.set_device(local_rank)
        dist.init_process_group("nccl", device_id=torch.device("cuda", local_rank))
    else:
        dist.init_process_group("gloo")
    atexit.register(_destroy)
    return current_env()


def _destroy() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def rank_seed(seed: int, rank: int) -> int:
    """The global-RNG seed of ``rank`` (model-internal draws: noise, dropout)."""
    return seed + RANK_SEED_STRIDE * rank


def barrier(env: DistributedEnv) -> None:
    if env.enabled:
        dist.barrier()


def _collective_device(tensor: torch.Tensor) -> torch.device:
    """NCCL reduces CUDA tensors only; gloo takes CPU tensors."""
    if dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_reduce_sum(tensor: torch.Tensor, env: DistributedEnv) -> torch.Tensor:
    """Sum of ``tensor`` over all ranks (a new tensor on ``tensor``'s device); no-op alone."""
    if not env.enabled:
        return tensor
    return _all_reduced_copy(tensor)


def broadcast_flag(value: bool, env: DistributedEnv) -> bool:
    """Rank 0's ``value`` on every rank (so that all ranks take the same branch)."""
    if not env.enabled:
        return value
    flag = torch.tensor([int(value)], device=_collective_device(torch.empty(0)))
    dist.broadcast(flag, src=0)
    return bool(flag.item())


def all_gather_states(state: torch.Tensor, env: DistributedEnv) -> list[torch.Tensor]:
    """Every rank's copy of a same-shaped uint8/float ``state`` tensor, in rank order (CPU)."""
    if not env.enabled:
        return [state.cpu()]
    device = _collective_device(state)
    local = state.to(device)
    gathered = [torch.empty_like(local) for _ in range(env.world_size)]
    dist.all_gather(gathered, local)
    return [tensor.cpu() for tensor in gathered]


def average_gradients(parameters: list[nn.Parameter], env: DistributedEnv) -> None:
    """Replace the ``.grad`` of ``parameters`` by their mean over ranks (one flat all-reduce).

    Parameters whose gradient is ``None`` on this rank are skipped; every rank runs the same
    graph, so the set is the same on all ranks.
    """
    if not env.enabled:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    by_dtype: dict[torch.dtype, list[torch.Tensor]] = {}
    for grad in grads:
        by_dtype.setdefault(grad.dtype, []).append(grad)
    for group in by_dtype.values():
        flat = torch.cat([grad.reshape(-1) for grad in group])
        flat = all_reduce_sum(flat, env).div_(env.world_size)
        offset = 0
        for grad in group:
            count = grad.numel()
            grad.copy_(flat[offset:offset + count].view(grad.shape))
            offset += count


def broadcast_module(module: nn.Module, env: DistributedEnv) -> None:
    """Copy rank 0's parameters and buffers into ``module`` on every rank (in place)."""
    if not env.enabled:
        return
    with torch.no_grad():
        for tensor in [*module.parameters(), *module.buffers()]:
            staged = tensor.detach().to(_collective_device(tensor), copy=True)
            dist.broadcast(staged, src=0)
            tensor.copy_(staged.to(tensor.device))


class _SyncedStatistics:
    """Mixin for ``_BatchNorm`` subclasses: batch statistics over every rank's batch."""

    def forward(self, input: torch.Tensor) -> torch.Tensor:  # noqa: A002 (torch's name)
        env = current_env()
        if not (self.training and env.enabled):
            return super().forward(input)  # type: ignore[misc]
        return self._synced_forward(input, env)

    def _synced_forward(self, input: torch.Tensor, env: DistributedEnv) -> torch.Tensor:  # noqa: A002
        channels = input.shape[1]
        dims = [0, *range(2, input.dim())]
        shape = [1, channels] + [1] * (input.dim() - 2)
        # statistics in float32 at least (autocast hands bf16/fp16 activations over)
        x = input if input.dtype == torch.float64 else input.float()
        local_count = torch.full((1,), input.numel() // channels, dtype=x.dtype,
                                 device=input.device)
        totals = _differentiable_sum(torch.cat([x.sum(dims), local_count]))
        count = totals[-1]
        mean = totals[:-1] / count
        centred = x - mean.view(shape)
        variance = _differentiable_sum(centred.square().sum(dims)) / count
        output = centred * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        if self.track_running_stats:
            self._update_running_statistics(mean.detach(), variance.detach(), count.detach())
        return output.to(input.dtype)

    @torch.no_grad()
    def _update_running_statistics(self, mean, variance, count) -> None:
        """As ``F.batch_norm`` does: unbiased variance, momentum (or cumulative average)."""
        self.num_batches_tracked.add_(1)
        momentum = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                    else self.momentum)
        unbiased = variance * count / (count - 1).clamp_min(1)
        self.running_mean.mul_(1 - momentum).add_(mean * momentum)
        self.running_var.mul_(1 - momentum).add_(unbiased * momentum)


class _SumOverRanks(torch.autograd.Function):
    """All-reduce (sum) whose backward pass sums the incoming gradients over ranks too: with
    every rank's loss depending on the sum, d(sum of losses)/d(local input) = sum of grads."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return _all_reduced_copy(tensor)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return _all_reduced_copy(grad)


def _all_reduced_copy(tensor: torch.Tensor) -> torch.Tensor:
    staged = tensor.detach().to(_collective_device(tensor), copy=True).contiguous()
    dist.all_reduce(staged)
    return staged.to(tensor.device)


def _differentiable_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over ranks, differentiable (see :class:`_SumOverRanks`)."""
    return _SumOverRanks.apply(tensor)


class SyncedBatchNorm1d(_SyncedStatistics, nn.BatchNorm1d):
    """``BatchNorm1d`` whose training statistics cover the batches of all ranks."""


class SyncedBatchNorm2d(_SyncedStatistics, nn.BatchNorm2d):
    """``BatchNorm2d`` whose training statistics cover the batches of all ranks."""


_SYNCED = {nn.BatchNorm1d: SyncedBatchNorm1d, nn.BatchNorm2d: SyncedBatchNorm2d}


def convert_batchnorm(module: nn.Module) -> nn.Module:
    """Swap every plain ``BatchNorm1d/2d`` inside ``module`` for its synced subclass, in place.

    Parameters and buffers are moved over (same tensors), so optimisers built afterwards and
    state dicts are unaffected. Returns ``module`` (or its replacement if it is a BN itself).
    """
    synced = _SYNCED.get(type(module))
    if synced is not None:
        module.__class__ = synced
        return module
    for child in module.children():
        convert_batchnorm(child)
    return module


__all__ = [
    "DistributedEnv",
    "SyncedBatchNorm1d",
    "SyncedBatchNorm2d",
    "all_gather_states",
    "all_reduce_sum",
    "average_gradients",
    "barrier",
    "broadcast_flag",
    "broadcast_module",
    "convert_batchnorm",
    "current_env",
    "init_distributed",
    "launched_by_torchrun",
    "rank_seed",
]
