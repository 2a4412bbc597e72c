"""Reconstruction decoder of the attack (DeepObfuscator's architecture, method.md section 3)."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ReconstructionDecoder(nn.Module):
    """Maps ``z`` [B, C, h, w] back to an image [B, 3, S, S] in [0, 1].

    Bilinear upsampling to S/2, three transposed-convolution + BN + ReLU blocks (stride 1, so the
    size stays S/2), upsampling x2 to S, a final 3x3 convolution and a sigmoid.
    """

    def __init__(self, in_channels: int, image_size: int, widths: tuple[int, ...] = (128, 64, 32)):
        super().__init__()
        self.image_size = image_size
        blocks: list[nn.Module] = []
        channels = in_channels
        for width in widths:
            blocks += [
                nn.ConvTranspose2d(channels, width, kernel_size=3, padding=1),
                nn.BatchNorm2d(width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Conv2d(channels, 3, kernel_size=3, padding=1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        half = max(self.image_size // 2, 1)
        x = F.interpolate(z, size=(half, half), mode="bilinear", align_corners=False)
        x = self.blocks(x)
        x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear",
                          align_corners=False)
        return torch.sigmoid(self.head(x))
