"""Reconstruction attack: a decoder trained with MSE to invert the frozen client
(docs/method.md §3). Scored by PSNR and SSIM with data_range 1 on the test split.

The decoder takes the layout of ``z`` from the client itself: a feature map [B, C, h, w], or a
vector [B, D] (e.g. MaxEnt-ARL's embedding) that it first lifts to a map with a linear layer.

The result carries the trained decoder; :func:`save_decoder` keeps it with its run as
safetensors (no code runs on load), its shape in the file's metadata, written atomically.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from noisyarl.attacks.common import freeze, obfuscated_batches, reduced_sum, reseed_rank
from noisyarl.data.base import ImageSplit
from noisyarl.evaluation.metrics import psnr, ssim
from noisyarl.models import ReconstructionDecoder
from noisyarl.runtime import StepContext
from noisyarl.runtime.distributed import all_reduce_sum
from noisyarl.utils.io import atomic_write_bytes
from noisyarl.utils.seeding import PHASE_OFFSETS, epoch_generator


@dataclass
class ReconstructionResult:
    """Test-split figures of the decoder: mean per-batch PSNR (dB), SSIM and MSE on [0, 1] images.

    examples: the first ``num_examples`` test images [n, 3, S, S] and their reconstructions.
    """

    psnr: float
    ssim: float
    mse: float
    history: list[dict[str, float]] = field(default_factory=list)
    originals: torch.Tensor | None = None
    reconstructions: torch.Tensor | None = None
    #: The trained decoder, for saving with the run (:func:`save_decoder`); not in ``to_dict``.
    decoder: ReconstructionDecoder | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """The scores and history as JSON values (without the examples and the decoder)."""
        return {"psnr": self.psnr, "ssim": self.ssim, "mse": self.mse,
                "history": [dict(entry) for entry in self.history]}


def run_reconstruction_attack(
    client: nn.Module,
    splits: dict[str, ImageSplit],
    context: StepContext,
    *,
    image_size: int,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    eval_batch_size: int = 256,
    seed: int = 0,
    num_examples: int = 8,
    progress: bool = True,
) -> ReconstructionResult:
    """Train a fresh :class:`ReconstructionDecoder` on ``z = client(x)`` of the training split.

    Starts from ``seed`` whatever ran before it (a resumed run repeats it exactly). Under
    torchrun ``batch_size`` is the global batch, sharded over ranks; the scores are summed over
    ranks and the examples are rank 0's first test images (the split's first rows).
    """
    torch.manual_seed(seed + PHASE_OFFSETS["reconstruction"])
    client = freeze(client)
    z_shape = _z_shape(client, splits["train"], context)
    decoder = context.prepare_module(ReconstructionDecoder(z_shape, image_size))
    reseed_rank(seed + PHASE_OFFSETS["reconstruction"], context)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    history = []
    for epoch in tqdm(range(1, epochs + 1), desc="reconstruction attack", disable=not progress,
                      leave=False):
        decoder.train()
        generator = epoch_generator(seed, epoch, "reconstruction")
        total, count = torch.zeros((), device=context.device), 0
        for images, z, _ in obfuscated_batches(client, splits["train"], batch_size, context,
                                               shuffle=True, generator=generator):
            with context.autocast():
                loss = F.mse_loss(decoder(z).float(), images.float())
            context.step(loss, optimizer)
            total += loss.detach() * images.shape[0]
            count += images.shape[0]
        count = int(reduced_sum(torch.tensor(float(count)), context))
        history.append({"epoch": epoch, "train_mse": reduced_sum(total, context) / max(count, 1)})
    result = _score(client, decoder, splits["test"], context, eval_batch_size, num_examples,
                    history)
    result.decoder = decoder
    return result


def _z_shape(client: nn.Module, split: ImageSplit, context: StepContext) -> tuple[int, ...]:
    """Shape of one sample of ``z``: (C, h, w) for a feature map or (D,) for a vector."""
    _, z, _ = next(obfuscated_batches(client, split.subset(torch.arange(1)), 1, context,
                                      shard=False))
    if z.dim() not in (2, 4):
        raise ValueError(
            f"the reconstruction decoder needs z of shape [B, C, H, W] or [B, D], got {z.shape}"
        )
    return tuple(int(size) for size in z.shape[1:])


@torch.no_grad()
def _score(client, decoder, split, context, batch_size, num_examples, history):
    decoder.eval()
    sums = torch.zeros(3, dtype=torch.float64)  # psnr, ssim, mse, each times the batch size
    originals = reconstructions = None
    for images, z, _ in obfuscated_batches(client, split, batch_size, context):
        if images.shape[0] == 0:  # an empty shard of a small final batch (torchrun)
            continue
        with context.autocast():
            output = decoder(z).float()
        images = images.float()
        weight = images.shape[0]
        sums += torch.tensor([psnr(output, images), ssim(output, images),
                              float(F.mse_loss(output, images))], dtype=torch.float64) * weight
        if originals is None:
            originals = images[:num_examples].cpu()
            reconstructions = output[:num_examples].clamp(0, 1).cpu()
    n = len(split)
    psnr_sum, ssim_sum, mse_sum = all_reduce_sum(sums, context.distributed).tolist()
    return ReconstructionResult(
        psnr=psnr_sum / n, ssim=ssim_sum / n, mse=mse_sum / n, history=history,
        originals=originals, reconstructions=reconstructions,
    )


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
    decoder.load_state_dict(state)
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
