"""Reconstruction decoder of the attack (DeepObfuscator's architecture, docs/method.md §3).

The transmitted ``z`` is either a feature map [B, C, h, w] (noisy ARL, DISCO, DeepObfuscator) or a
vector [B, D] (MaxEnt-ARL's 128-d embedding). A vector is first lifted by a learned linear layer
to a small map [B, 128, 4, 4]; from there both layouts take the same path, so an attacker on a
vector ``z`` learns to reconstruct from it rather than seeing nothing.

Layout, as in the authors' code (S = image side):

1. ``lift``: identity for a map, linear + BN + ReLU to [B, 128, 4, 4] for a vector;
2. bilinear resize to S/2 x S/2 (rounded down, at least 1);
3. ``blocks``: three 3x3 stride-1 transposed convolutions + BN + ReLU, widths 128, 128, 64;
4. bilinear resize to S x S (x2; for an odd S, from the rounded-down half);
5. ``full_size``: a 3x3 convolution to 64 channels + BN + ReLU at full size;
6. ``head``: a 3x3 convolution to 3 channels, then a sigmoid, so images lie in [0, 1].

Checkpoints of the earlier, narrower layout (widths 32..128, no ``full_size`` block) do not load
into this one.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

#: The map a vector ``z`` is lifted to before the convolutional path: [B, 128, 4, 4]
#: (project's choice: the width of the first decoder block on a small grid).
VECTOR_MAP_CHANNELS = 128
VECTOR_MAP_SIDE = 4

#: Widths of the three transposed-convolution blocks at S/2 (the authors' layout).
BLOCK_WIDTHS = (128, 128, 64)

#: Channels of the 3x3 convolution at full size, before the output convolution.
FULL_SIZE_CHANNELS = 64


def _vector_lift(dim: int) -> nn.Sequential:
    """Learned map z [B, dim] -> [B, 128, 4, 4] (linear, then BN + ReLU like the blocks)."""
    side = VECTOR_MAP_SIDE
    return nn.Sequential(
        nn.Linear(dim, VECTOR_MAP_CHANNELS * side * side),
        nn.Unflatten(1, (VECTOR_MAP_CHANNELS, side, side)),
        nn.BatchNorm2d(VECTOR_MAP_CHANNELS),
        nn.ReLU(inplace=True),
    )


class ReconstructionDecoder(nn.Module):
    """Maps ``z`` back to an image [B, 3, S, S] in [0, 1].

    ``z_shape`` is the shape of one sample of ``z`` (no batch dimension): ``(C, h, w)`` for a
    feature map or ``(D,)`` for a vector. A bare int ``C`` means a feature map of ``C`` channels.
    A vector is lifted to [B, 128, 4, 4] by a linear layer (+ BN + ReLU). Then: bilinear
    upsampling to S/2, three transposed-convolution + BN + ReLU blocks (stride 1, so the size
    stays S/2; ``widths``, by default 128, 128, 64), upsampling x2 to S, a 3x3 convolution to 64
    channels + BN + ReLU (``full_size``), a final 3x3 convolution to 3 channels (``head``) and a
    sigmoid.

    >>> decoder = ReconstructionDecoder((16,), image_size=8).eval()
    >>> decoder(torch.zeros(2, 16)).shape
    torch.Size([2, 3, 8, 8])
    >>> ReconstructionDecoder((64, 8, 8), image_size=33).eval()(torch.zeros(1, 64, 8, 8)).shape
    torch.Size([1, 3, 33, 33])
    """

    def __init__(
        self,
        z_shape: int | tuple[int, ...],
        image_size: int,
        widths: tuple[int, ...] = BLOCK_WIDTHS,
    ) -> None:
        super().__init__()
        self.image_size = image_size
        self.lift, channels = self._input_stage(z_shape)
        blocks: list[nn.Module] = []
        for width in widths:
            blocks += [
                nn.ConvTranspose2d(channels, width, kernel_size=3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.full_size = nn.Sequential(
            nn.Conv2d(channels, FULL_SIZE_CHANNELS, kernel_size=3, padding=1),
            nn.BatchNorm2d(FULL_SIZE_CHANNELS),
            nn.ReLU(inplace=True),
        )
        self.head = nn.Conv2d(FULL_SIZE_CHANNELS, 3, kernel_size=3, padding=1)

    def _input_stage(self, z_shape: int | tuple[int, ...]) -> tuple[nn.Module, int]:
        """The module that turns ``z`` into a feature map, and that map's channel count.

        Sets ``z_dims``, the number of dimensions of a batch of ``z`` (4 or 2).
        """
        if isinstance(z_shape, int):
            z_shape = (z_shape, 1, 1)
        if len(z_shape) == 3:
            self.z_dims = 4
            return nn.Identity(), int(z_shape[0])
        if len(z_shape) == 1:
            self.z_dims = 2
            return _vector_lift(int(z_shape[0])), VECTOR_MAP_CHANNELS
        raise ValueError(
            f"z_shape must be (C, h, w) for a feature map or (D,) for a vector, got {z_shape}"
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z [B, C, h, w] or [B, D] (as given to the constructor) -> images [B, 3, S, S] in
        [0, 1]."""
        if z.dim() != self.z_dims:
            raise ValueError(f"this decoder takes z with {self.z_dims} dimensions, got {z.shape}")
        half = max(self.image_size // 2, 1)
        x = F.interpolate(self.lift(z), size=(half, half), mode="bilinear", align_corners=False)
        x = self.blocks(x)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                          align_corners=False)
        return torch.sigmoid(self.head(self.full_size(x)))
