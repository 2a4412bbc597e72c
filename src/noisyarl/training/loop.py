"""The shared adversarial training loop: ``train_one_epoch``, ``evaluate`` and ``fit``.

The loop owns data, devices, precision, logging, checkpoints and model selection; the defence
(:class:`noisyarl.methods.Defence`) owns its models, losses and update rule. After every epoch the
whole state (models, optimisers, RNG, history, best epoch) is written atomically to
``checkpoints/last.pt``, so ``fit(..., resume=True)`` continues from the last completed epoch and
ends exactly where an uninterrupted run would (on CPU, same seeds). When training completes,
``checkpoints/trained.pt`` records its outcome (best epoch, history); once ``last.pt`` is no
longer needed (:func:`prune_checkpoints`), ``fit(..., resume=True)`` takes the finished training
back from ``trained.pt`` and ``best.pt`` without training again.

Under ``torchrun`` (``context.distributed`` with several ranks) every rank trains on its shard of
each global batch (:func:`noisyarl.data.augment.iterate_batches`), the logged scalars and the
validation score are reduced over ranks, and rank 0 alone writes checkpoints and TensorBoard
scalars; every rank reads them back (so the run directory must be on a file system that every
node sees). Each rank's RNG state is checkpointed, so a resumed run continues every rank's
random stream.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from noisyarl.data.augment import iterate_batches
from noisyarl.data.base import ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.errors import ConfigError
from noisyarl.methods.base import Defence
from noisyarl.models.noise import measure_signal
from noisyarl.runtime import StepContext
from noisyarl.runtime.distributed import (
    DistributedEnv,
    all_gather_states,
    all_reduce_sum,
    barrier,
    rank_seed,
)
from noisyarl.training.checkpoint import DamagedCheckpointError, load_checkpoint, save_checkpoint
from noisyarl.utils.progress import progress
from noisyarl.utils.seeding import epoch_generator

#: Files of a checkpoint directory: the whole state after the last completed epoch (for
#: resume), the best-validation weights, and the outcome of a completed training.
LAST_FILE, BEST_FILE, TRAINED_FILE = "last.pt", "best.pt", "trained.pt"
#: Validation images (the first ones) whose noise-free features give each epoch's
#: ``h_rms``, ``h_sd`` and ``sigma_eff`` (:func:`signal_record`).
SIGNAL_IMAGES = 512


@dataclass
class LoopSettings:
    """What ``fit`` needs from the config (kept small so that tests can build one by hand)."""

    epochs: int
    batch_size: int = 64
    eval_batch_size: int = 256
    augment: bool = True
    seed: int = 0
    log_every: int = 20
    progress: bool = True


@dataclass
class FitResult:
    """best_epoch: 1-based epoch with the best validation utility; history: one dict per epoch."""

    best_epoch: int
    best_valid_utility: float
    history: list[dict[str, float]] = field(default_factory=list)
    train_seconds: float = 0.0


class ScalarLog:
    """Sums per-step scalars on the device; read (one host sync) only when asked.

    distributed: with several ranks, :meth:`means` sums over ranks first (every rank must call
    it at the same point); losses are then averaged over ranks and steps, ``*_correct`` sums
    divided by the samples of all ranks.
    """

    def __init__(self, distributed: DistributedEnv | None = None) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.steps = 0
        self.samples = 0
        self.distributed = distributed or DistributedEnv()

    def add(self, values: dict[str, torch.Tensor], batch_size: int) -> None:
        for key, value in values.items():
            self.sums[key] = self.sums[key] + value if key in self.sums else value.clone()
        self.steps += 1
        self.samples += batch_size

    def means(self) -> dict[str, float]:
        """Losses averaged over steps; ``*_correct`` sums turned into per-sample rates."""
        if not self.sums:
            return {}
        keys = list(self.sums)
        samples = torch.tensor(float(self.samples), device=self.sums[keys[0]].device)
        stacked = torch.stack([*(self.sums[k].float() for k in keys), samples])
        *values, total_samples = all_reduce_sum(stacked, self.distributed).tolist()
        total_steps = self.steps * self.distributed.world_size
        out = {}
        for key, value in zip(keys, values, strict=True):
            if key.endswith("_correct"):
                out[key.removesuffix("_correct") + "_score"] = value / max(total_samples, 1)
            else:
                out[key] = value / max(total_steps, 1)
        return out


def train_one_epoch(
    defence: Defence,
    split: ImageSplit,
    utility: Task,
    private: Task,
    optimizers: dict[str, torch.optim.Optimizer],
    context: StepContext,
    settings: LoopSettings,
    epoch: int,
    writer: Any | None = None,
) -> dict[str, float]:
    """One pass over ``split`` (shuffled, augmented); returns the epoch's mean train scalars.

    ``settings.batch_size`` is the global batch: under torchrun each rank steps on its
    ``batch_size / world_size`` rows of it. Per step nothing is read back to the host; the
    scalars are summed on the device and read every ``log_every`` steps.
    """
    defence.train()
    env = context.distributed
    generator = epoch_generator(settings.seed, epoch)
    batches = iterate_batches(
        split, settings.batch_size, shuffle=True, augment=settings.augment, generator=generator,
        drop_last=len(split) > settings.batch_size, device=context.device,
        channels_last=context.channels_last, rank=env.rank, world_size=env.world_size,
    )
    total = len(split) // settings.batch_size if len(split) > settings.batch_size else 1
    epoch_log, window = ScalarLog(env), ScalarLog(env)
    bar = progress(batches, total=total, desc=f"epoch {epoch}",
                   enabled=settings.progress and env.is_main, leave=False)
    for step, (images, labels) in enumerate(bar, start=1):
        values = defence.train_step(
            images, labels[utility.label].to(context.device),
            labels[private.label].to(context.device), optimizers, context,
        )
        epoch_log.add(values, images.shape[0])
        window.add(values, images.shape[0])
        if step % settings.log_every == 0:
            means = window.means()
            bar.set_postfix({k: f"{v:.3g}" for k, v in means.items()}, refresh=False)
            if writer is not None:
                global_step = (epoch - 1) * total + step
                for key, value in means.items():
                    writer.add_scalar(f"train/{key}", value, global_step)
            window = ScalarLog(env)
    return epoch_log.means()


@torch.no_grad()
def evaluate(
    defence: Defence, split: ImageSplit, utility: Task, context: StepContext, batch_size: int
) -> float:
    """Utility metric of ``defence`` on ``split`` (never augmented; noise on as deployed).

    Returns accuracy in percent, or MSE for a regression utility. Under torchrun every rank
    scores its shard of each batch and the sums are added over ranks.
    """
    defence.eval()
    env = context.distributed
    score = torch.zeros((), device=context.device)
    for images, labels in iterate_batches(split, batch_size, shuffle=False, augment=False,
                                          device=context.device,
                                          channels_last=context.channels_last,
                                          rank=env.rank, world_size=env.world_size):
        with context.autocast():
            outputs = defence.predict_utility(images)
        score += utility.score_sum(outputs, labels[utility.label].to(context.device))
    return utility.finalize(float(all_reduce_sum(score, env)), len(split))


def signal_record(defence: Defence, split: ImageSplit, context: StepContext,
                  batch_size: int) -> dict[str, float]:
    """``h_rms``, ``h_sd`` and ``sigma_eff`` of the defence's client on ``split``'s first
    :data:`SIGNAL_IMAGES` images (:func:`noisyarl.models.noise.measure_signal`: one eval-mode
    pass, noise off, no gradients), in the units of the noise-free features ``h``.

    Every rank measures the same images with the same weights, so no reduction is needed.
    """
    images = context.prepare_images(split.images[:SIGNAL_IMAGES]).float() / 255
    with context.autocast():
        stats = measure_signal(defence.client, defence.noise_module(), images, batch_size)
    return stats.to_dict()


def _is_better(task: Task, value: float, best: float) -> bool:
    if math.isnan(best):
        return True
    return value > best if task.higher_is_better else value < best


def fit(
    defence: Defence,
    splits: dict[str, ImageSplit],
    utility: Task,
    private: Task,
    context: StepContext,
    settings: LoopSettings,
    checkpoint_dir: str | Path,
    resume: bool = False,
    writer: Any | None = None,
    extra_state: dict[str, Any] | None = None,
) -> FitResult:
    """Train for ``settings.epochs`` epochs, keep the best-validation-utility weights.

    On return ``defence`` holds the best epoch's weights (``checkpoints/best.pt``).
    ``extra_state`` (e.g. the resolved config) is stored in every checkpoint. Under torchrun
    only rank 0 writes checkpoints (and should be the only one given a ``writer``).
    """
    env = context.distributed
    checkpoint_dir = Path(checkpoint_dir)
    last_path, best_path = checkpoint_dir / LAST_FILE, checkpoint_dir / BEST_FILE
    optimizers = defence.configure_optimizers()
    schedulers = defence.configure_schedulers(optimizers, settings.epochs)
    result = FitResult(best_epoch=0, best_valid_utility=float("nan"))
    trained_path = checkpoint_dir / TRAINED_FILE
    start_epoch = 1
    if last_path.exists() or trained_path.exists():
        if not resume:
            raise FileExistsError(f"{checkpoint_dir} holds a training: pass --resume to "
                                  "continue that run, or choose a new --out")
        start_epoch = _resume_epoch(checkpoint_dir, defence, optimizers, schedulers, result,
                                    env, settings)

    for epoch in range(start_epoch, settings.epochs + 1):
        started = time.perf_counter()
        train_scalars = train_one_epoch(defence, splits["train"], utility, private, optimizers,
                                        context, settings, epoch, writer)
        for scheduler in schedulers.values():
            scheduler.step()
        valid_utility = evaluate(defence, splits["valid"], utility, context,
                                 settings.eval_batch_size)
        seconds = time.perf_counter() - started
        result.train_seconds += seconds
        signal = signal_record(defence, splits["valid"], context, settings.eval_batch_size)
        record = {"epoch": epoch, **{f"train/{k}": v for k, v in train_scalars.items()},
                  f"valid/utility_{utility.metric_name}": valid_utility, **signal,
                  "seconds": seconds}
        result.history.append(record)
        if writer is not None:
            writer.add_scalar(f"valid/utility_{utility.metric_name}", valid_utility, epoch)
            for key, value in signal.items():
                writer.add_scalar(f"signal/{key}", value, epoch)
        if _is_better(utility, valid_utility, result.best_valid_utility):
            result.best_epoch, result.best_valid_utility = epoch, valid_utility
            if env.is_main:
                save_checkpoint(best_path, {"epoch": epoch, "model": defence.state_dict()})
        state = _state(defence, optimizers, schedulers, result, epoch, extra_state, env)
        if env.is_main:
            save_checkpoint(last_path, state)

    if env.is_main and (start_epoch <= settings.epochs or not trained_path.exists()):
        save_checkpoint(trained_path, _trained_summary(result, settings.epochs))
    barrier(env)  # rank 0 has written best.pt
    best = load_checkpoint(best_path, map_location=context.device)
    defence.load_state_dict(best["model"])
    return result


def prune_checkpoints(checkpoint_dir: str | Path) -> list[Path]:
    """Delete what only an unfinished training needs (``last.pt``: weights, optimiser and
    scheduler states, RNG) once training has completed; returns the deleted files.

    ``best.pt`` (the trained weights) and ``trained.pt`` (best epoch, history) stay, so that
    :func:`fit` with ``resume=True`` still returns the finished training without training again.
    Does nothing before training has completed (no ``trained.pt``).
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not (checkpoint_dir / TRAINED_FILE).is_file():
        return []
    last = checkpoint_dir / LAST_FILE
    if not last.exists():
        return []
    last.unlink()
    return [last]


def _resume_epoch(checkpoint_dir: Path, defence, optimizers, schedulers, result: FitResult,
                  env: DistributedEnv, settings: LoopSettings) -> int:
    """The first epoch still to train: after ``last.pt``'s epoch, or past the end when only
    ``trained.pt`` is left (a finished training whose ``last.pt`` was pruned)."""
    last_path = checkpoint_dir / LAST_FILE
    if last_path.exists():
        return _restore(last_path, defence, optimizers, schedulers, result, env,
                        settings.seed) + 1
    return _restore_trained(checkpoint_dir / TRAINED_FILE, result, settings.epochs) + 1


def _trained_summary(result: FitResult, epochs: int) -> dict[str, Any]:
    return {"epochs": epochs, "best_epoch": result.best_epoch,
            "best_valid_utility": result.best_valid_utility, "history": result.history,
            "train_seconds": result.train_seconds}


def _restore_trained(path: Path, result: FitResult, epochs: int) -> int:
    """Fill ``result`` from ``trained.pt`` of a completed training; returns its epochs."""
    if not (path.parent / BEST_FILE).is_file():
        raise ConfigError(f"{path.parent}: its training finished but {BEST_FILE} (the trained "
                          "weights) is missing; use a new --out")
    try:
        summary = load_checkpoint(path)
    except DamagedCheckpointError as error:
        raise ConfigError(f"{error}; this finished training cannot be reopened from it: move "
                          f"{path.parent} away to train again, or use a new --out") from error
    if int(summary["epochs"]) != epochs:
        raise ConfigError(
            f"{path.parent}: its training finished after {summary['epochs']} epochs and its "
            f"{LAST_FILE} was deleted (train.keep_checkpoints: minimal), so it cannot continue "
            f"to {epochs} epochs; use a new --out"
        )
    result.best_epoch = int(summary["best_epoch"])
    result.best_valid_utility = float(summary["best_valid_utility"])
    result.history = list(summary["history"])
    result.train_seconds = float(summary["train_seconds"])
    return epochs


def _state(defence, optimizers, schedulers, result: FitResult, epoch: int,
           extra, env: DistributedEnv) -> dict[str, Any]:
    """The whole training state after ``epoch``; a collective under torchrun (RNG states of
    every rank are gathered), so every rank calls it."""
    state = {
        "epoch": epoch,
        "model": defence.state_dict(),
        "optimizers": {name: opt.state_dict() for name, opt in optimizers.items()},
        "schedulers": {name: sched.state_dict() for name, sched in schedulers.items()},
        "best_epoch": result.best_epoch,
        "best_valid_utility": result.best_valid_utility,
        "history": result.history,
        "train_seconds": result.train_seconds,
        "rng_cpu": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["rng_cuda"] = torch.cuda.get_rng_state_all()
    if env.enabled:
        state["rng_cpu_ranks"] = all_gather_states(torch.get_rng_state(), env)
        if torch.cuda.is_available():
            state["rng_cuda_ranks"] = all_gather_states(torch.cuda.get_rng_state(), env)
    if extra:
        state["extra"] = extra
    return state


def _restore(path: Path, defence, optimizers, schedulers, result: FitResult,
             env: DistributedEnv, seed: int) -> int:
    """Load ``last.pt`` into the defence, optimisers, schedulers and ``result``; returns its
    epoch.

    Each rank takes back its own RNG state when the checkpoint holds one per rank for this
    world size; otherwise (another number of processes) ranks other than 0 start a fresh
    stream from their rank seed, so the resumed run is valid but not bit-identical.
    """
    try:
        state = load_checkpoint(path)
    except DamagedCheckpointError as error:
        raise ConfigError(
            f"--resume: {error}; the last good epoch cannot be recovered from it: move it away "
            "to restart training from epoch 1 in this directory, or use a new --out"
        ) from error
    defence.load_state_dict(state["model"])
    for name, optimizer in optimizers.items():
        optimizer.load_state_dict(state["optimizers"][name])
    for name, scheduler in schedulers.items():
        scheduler.load_state_dict(state["schedulers"][name])
    result.best_epoch = state["best_epoch"]
    result.best_valid_utility = state["best_valid_utility"]
    result.history = list(state["history"])
    result.train_seconds = state["train_seconds"]
    torch.set_rng_state(state["rng_cpu"])
    if "rng_cuda" in state and torch.cuda.is_available() and not env.enabled:
        torch.cuda.set_rng_state_all(state["rng_cuda"])
    if env.enabled:
        per_rank = state.get("rng_cpu_ranks", [])
        if len(per_rank) == env.world_size:
            torch.set_rng_state(per_rank[env.rank])
            cuda_per_rank = state.get("rng_cuda_ranks", [])
            if len(cuda_per_rank) == env.world_size and torch.cuda.is_available():
                torch.cuda.set_rng_state(cuda_per_rank[env.rank])
        elif env.rank > 0:
            torch.manual_seed(rank_seed(seed + int(state["epoch"]), env.rank))
    return int(state["epoch"])
