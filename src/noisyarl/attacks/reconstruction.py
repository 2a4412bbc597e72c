"""Reconstruction attack: a decoder trained with MSE to invert the frozen client
(docs/method.md §3), trained until its validation MSE stops improving. Scored by PSNR and
SSIM with data_range 1 on the test split, beside the mean-training-image baseline.

The decoder takes the layout of ``z`` from the client itself: a feature map [B, C, h, w], or a
vector [B, D] (e.g. MaxEnt-ARL's embedding) that it first lifts to a map with a linear layer.

The result carries the trained decoder; :func:`save_decoder` keeps it with its run as
safetensors (no code runs on load), its shape in the file's metadata, written atomically.
"""

from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.nn import functional as F

from noisyarl.attacks.base import (
    Attack,
    AttackSettings,
    ImageAttackResult,
    fit_until_plateau,
    not_in_json,
)
from noisyarl.attacks.common import psnr_gain, reduced_sum, reseed_rank
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.data.base import ImageSplit
from noisyarl.evaluation.metrics import (
    beats_mean_image,
    mean_image,
    mean_image_baseline,
    per_image_psnr,
    psnr,
    ssim,
)
from noisyarl.models import ReconstructionDecoder
from noisyarl.runtime.distributed import all_reduce_sum
from noisyarl.utils.io import atomic_write_bytes
from noisyarl.utils.seeding import PHASE_OFFSETS, epoch_generator


@dataclass
class ReconstructionResult(ImageAttackResult):
    """Test-split figures of the decoder on [0, 1] images, at its best validation epoch and
    averaged over ``noise_draws`` test passes: mean per-batch PSNR (dB, data_range 1), SSIM
    and MSE; ``psnr_sd``: their spread over the passes. ``baseline``: the same figures of the
    trivial attack that predicts the mean training image for every test image; ``psnr_gain``:
    the mean per-image PSNR gain over it with its interval over the test images; ``learned``:
    that interval lies above 0.

    originals / reconstructions: the first ``num_examples`` test images [n, 3, S, S] and their
    reconstructions; ``decoder``: the trained decoder (:func:`save_decoder`). None of the
    three is in :meth:`to_dict`.
    """

    originals: torch.Tensor | None = not_in_json()
    reconstructions: torch.Tensor | None = not_in_json()
    decoder: ReconstructionDecoder | None = not_in_json()

    def cells(self) -> dict[str, Any]:
        return {"psnr": self.psnr, "ssim": self.ssim, "psnr_sd": self.psnr_sd,
                "psnr_baseline": self.baseline.psnr, "ssim_baseline": self.baseline.ssim,
                "reconstruction_learned": self.learned, "epochs": self.curve.epochs_run}


def run_reconstruction_attack(
    view: ZView,
    splits: dict[str, ImageSplit],
    settings: AttackSettings,
    *,
    image_size: int,
    num_examples: int = 8,
) -> ReconstructionResult:
    """Train a fresh :class:`ReconstructionDecoder` on ``view``'s z of the training split until
    its validation MSE stops improving (:func:`~noisyarl.attacks.base.fit_until_plateau`).

    Starts from ``settings.seed`` whatever ran before it (a resumed run repeats it exactly).
    Under torchrun ``batch_size`` is the global batch, sharded over ranks; the scores are summed
    over ranks and the examples are rank 0's first test images (the split's first rows).
    """
    context = view.context
    phase_seed = settings.seed + PHASE_OFFSETS["reconstruction"]
    torch.manual_seed(phase_seed)
    z_shape = _checked_z_shape(view, splits["train"])
    decoder = context.prepare_module(ReconstructionDecoder(z_shape, image_size))
    reseed_rank(phase_seed, context)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=settings.lr, foreach=True)
    train = splits["train"]

    def train_epoch(epoch: int) -> float:
        decoder.train()
        generator = epoch_generator(settings.seed, epoch, "reconstruction")
        total, count = torch.zeros((), device=context.device), 0
        for images, z, _ in view.batches(train, settings.batch_size, shuffle=True,
                                         generator=generator, training=True):
            with context.autocast():
                loss = F.mse_loss(decoder(z).float(), images.float())
            context.step(loss, optimizer)
            total += loss.detach() * images.shape[0]
            count += images.shape[0]
        count = int(reduced_sum(torch.tensor(float(count)), context))
        return reduced_sum(total, context) / max(count, 1)

    def validate(epoch: int) -> dict[str, float]:
        mse = _score(view, decoder, splits["valid"], settings.eval_batch_size, 0).mse
        return {"valid": mse, "valid_loss": mse}

    curve = fit_until_plateau(decoder, optimizer, train_epoch, validate, settings,
                              steps_per_epoch=max(len(train) // settings.batch_size, 1),
                              higher_is_better=False, desc="reconstruction attack")
    train_mean = mean_image(train.images, settings.eval_batch_size).to(context.device)
    draws = [_score(view, decoder, splits["test"], settings.eval_batch_size, num_examples,
                    mean=train_mean)
             for _ in range(1 if view.deterministic else settings.noise_draws)]
    baseline = mean_image_baseline(train.images, splits["test"].images,
                                   batch_size=settings.eval_batch_size)
    psnrs = [draw.psnr for draw in draws]
    gain = psnr_gain([draw.gains for draw in draws], context)
    return ReconstructionResult(
        attack="reconstruction", curve=curve, psnr=statistics.fmean(psnrs),
        ssim=statistics.fmean(draw.ssim for draw in draws),
        mse=statistics.fmean(draw.mse for draw in draws),
        psnr_sd=statistics.stdev(psnrs) if len(psnrs) > 1 else 0.0, baseline=baseline,
        learned=beats_mean_image(gain), psnr_gain=gain, originals=draws[0].originals,
        reconstructions=draws[0].reconstructions, decoder=decoder,
    )


def _checked_z_shape(view: ZView, split: ImageSplit) -> tuple[int, ...]:
    """Shape of one sample of ``z``: (C, h, w) for a feature map or (D,) for a vector."""
    shape = view.z_shape(split)
    if len(shape) not in (1, 3):
        raise ValueError(
            f"the reconstruction decoder needs z of shape [B, C, H, W] or [B, D], got {shape}")
    return shape


@dataclass
class _Pass:
    """One pass's figures; gains: per-image PSNR over the mean image [n on this rank] (dB;
    empty when no mean image was given)."""

    psnr: float
    ssim: float
    mse: float
    gains: torch.Tensor
    originals: torch.Tensor | None
    reconstructions: torch.Tensor | None


@torch.no_grad()
def _score(view: ZView, decoder: nn.Module, split: ImageSplit, batch_size: int,
           num_examples: int, *, mean: torch.Tensor | None = None) -> _Pass:
    """One noisy pass of the decoder over ``split``: figures weighted by batch size; with the
    mean training image ``mean`` [3, S, S], also each image's PSNR gain over it."""
    context = view.context
    decoder.eval()
    sums = torch.zeros(3, dtype=torch.float64)  # psnr, ssim, mse, each times the batch size
    gains: list[torch.Tensor] = []
    originals = reconstructions = None
    for images, z, _ in view.batches(split, batch_size):
        if images.shape[0] == 0:  # an empty shard of a small final batch (torchrun)
            continue
        with context.autocast():
            output = decoder(z).float()
        images = images.float()
        weight = images.shape[0]
        sums += torch.tensor([psnr(output, images), ssim(output, images),
                              float(F.mse_loss(output, images))], dtype=torch.float64) * weight
        if mean is not None:
            gains.append((per_image_psnr(output, images)
                          - per_image_psnr(mean.expand_as(images), images)).cpu())
        if originals is None and num_examples:
            originals = images[:num_examples].cpu()
            reconstructions = output[:num_examples].clamp(0, 1).cpu()
    n = len(split)
    psnr_sum, ssim_sum, mse_sum = all_reduce_sum(sums, context.distributed).tolist()
    gain = torch.cat(gains) if gains else torch.zeros(0, dtype=torch.float64)
    return _Pass(psnr_sum / n, ssim_sum / n, mse_sum / n, gain, originals, reconstructions)


class ReconstructionAttack(Attack):
    """The learned decoder of docs/method.md §3, scored against the mean-image baseline."""

    name = "reconstruction"
    result_type = ReconstructionResult
    needs_task = False

    def run(self, target: AttackTarget, settings: AttackSettings) -> ReconstructionResult:
        return run_reconstruction_attack(target.view, target.splits, settings,
                                         image_size=target.image_size)


#: Where a run keeps its decoder, relative to the run directory: the user-study kit
#: reconstructs any test image with it later (appendix C), not only the saved examples.
DECODER_FILE = Path("attacks") / "reconstruction_decoder.safetensors"


def decoder_z_shape(decoder: ReconstructionDecoder) -> tuple[int, ...]:
    """The ``z_shape`` that rebuilds ``decoder``: (C, 1, 1) for a feature map, (D,) for a vector.

    A feature-map decoder does not depend on the map's height and width (it resizes), so 1 x 1
    stands for any.
    """
    if decoder.z_dims == 4:
        return (int(decoder.blocks[0].in_channels), 1, 1)
    return (int(decoder.lift[0].in_features),)


def save_decoder(decoder: ReconstructionDecoder, run_dir: str | Path) -> Path:
    """Write ``decoder``'s weights to ``run_dir/attacks/reconstruction_decoder.safetensors``."""
    tensors = {name: value.detach().cpu().contiguous()
               for name, value in decoder.state_dict().items()}
    metadata = {"z_shape": json.dumps(decoder_z_shape(decoder)),
                "image_size": str(decoder.image_size)}
    return atomic_write_bytes(Path(run_dir) / DECODER_FILE,
                              safetensors_bytes(tensors, metadata=metadata))


def load_decoder(run_dir: str | Path) -> ReconstructionDecoder | None:
    """The saved decoder of ``run_dir`` in eval mode on the CPU, or None when the run has none."""
    path = Path(run_dir) / DECODER_FILE
    if not path.is_file():
        return None
    with safe_open(str(path), framework="pt", device="cpu") as handle:
        metadata = handle.metadata()
        state = {name: handle.get_tensor(name) for name in handle.keys()}
    decoder = ReconstructionDecoder(tuple(json.loads(metadata["z_shape"])),
                                    int(metadata["image_size"]))
    try:
        decoder.load_state_dict(state)
    except RuntimeError:  # saved with an older decoder layout: callers retrain it
        return None
    return decoder.eval()


@torch.no_grad()
def reconstruct(client: nn.Module, decoder: nn.Module, images: torch.Tensor,
                batch_size: int = 64) -> torch.Tensor:
    """Decoder's reconstructions [N, 3, S, S] in [0, 1] of images [N, 3, S, S] in [0, 1].

    The client's noise stays on (as deployed and as in the attack); seed the global RNG first
    for a reproducible draw.
    """
    client.eval()
    decoder.eval()
    outputs = [decoder(client(images[start:start + batch_size])).clamp(0, 1)
               for start in range(0, images.shape[0], batch_size)]
    return torch.cat(outputs)
