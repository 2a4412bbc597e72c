"""The reconstruction attack's decoder, kept with its run so that a user study can reconstruct
any test image later (appendix C), not only the few examples a run saves.

:func:`noisyarl.attacks.run_reconstruction_attack` builds its decoder inside and returns scores;
:class:`DecoderCapture` is a :class:`StepContext` that behaves exactly like the one it copies and
also remembers the :class:`ReconstructionDecoder` the attack prepares, so the caller can save it.
Weights are stored as safetensors (no code runs on load) with the decoder's shape in the file's
metadata, written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save as safetensors_bytes
from torch import nn

from noisyarl.models import ReconstructionDecoder
from noisyarl.training.precision import StepContext
from noisyarl.utils.io import atomic_write_bytes

#: Where a run keeps its decoder, relative to the run directory.
DECODER_FILE = Path("attacks") / "reconstruction_decoder.safetensors"


class DecoderCapture(StepContext):
    """A copy of ``context`` (device, precision, memory format) that records the decoder.

    >>> capture = DecoderCapture(StepContext(torch.device("cpu")))
    >>> _ = capture.prepare_module(ReconstructionDecoder((4,), image_size=8))
    >>> type(capture.decoder).__name__
    'ReconstructionDecoder'
    """

    def __init__(self, context: StepContext) -> None:
        # every setting of ``context`` (device, precision, memory format, ranks, scalers), so
        # that the attack runs exactly as it would with ``context`` itself
        vars(self).update(vars(context))
        self.decoder: ReconstructionDecoder | None = None

    def prepare_module(self, module: nn.Module) -> nn.Module:
        module = super().prepare_module(module)
        if isinstance(module, ReconstructionDecoder):
            self.decoder = module
        return module


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
