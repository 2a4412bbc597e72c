"""VGG16 with batch normalisation, split after block 2 for DeepObfuscator (docs/method.md §5).

VGG16-BN (Simonyan & Zisserman 2015; torchvision's ``vgg16_bn`` layout) is five blocks of
3x3 convolution (padding 1, with bias) + BN + ReLU, each block ending in a 2x2 max-pool:

    block 1: 64, 64        block 2: 128, 128        block 3: 256, 256, 256
    block 4: 512, 512, 512 block 5: 512, 512, 512

DeepObfuscator's obfuscator is blocks 1-2 (:func:`vgg16_obfuscator`); its utility classifier and
attribute adversary are blocks 3-5 followed by fully connected layers (:func:`vgg16_tail`).

Shapes: an input [B, 3, S, S] leaves block 2 as [B, 128, S // 4, S // 4] (32 -> 8, 178 -> 44).
Block 5 ends at [B, 512, S // 32, S // 32] (1x1 at 32 px, 5x5 at 178 px); the tail pools it
adaptively to 1x1, so any S >= 32 works.

The FC head is narrower than VGG's 4096-wide one (project's choice: 512 -> 256 -> n, which keeps
the tail's parameters in its convolutions, like the ResNet18 heads of the other methods); it
keeps VGG's ReLU + dropout(0.5) between the linear layers. Weights use PyTorch's default
initialisation; everything is trained from scratch.
"""

from __future__ import annotations

from torch import nn

#: Output widths of the convolutions of each block; every block ends with a 2x2 max-pool.
VGG16_BLOCKS: tuple[tuple[int, ...], ...] = (
    (64, 64),
    (128, 128),
    (256, 256, 256),
    (512, 512, 512),
    (512, 512, 512),
)
#: Blocks 1-2 run on the client (DeepObfuscator's obfuscator).
OBFUSCATOR_BLOCKS = 2
OBFUSCATOR_CHANNELS = VGG16_BLOCKS[OBFUSCATOR_BLOCKS - 1][-1]


def _block(in_channels: int, widths: tuple[int, ...]) -> list[nn.Module]:
    """Layers of one VGG block: (conv3x3 + BN + ReLU) per width, then a 2x2 max-pool."""
    layers: list[nn.Module] = []
    channels = in_channels
    for width in widths:
        layers += [
            nn.Conv2d(channels, width, kernel_size=3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels = width
    layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    return layers


def _blocks(in_channels: int, blocks: tuple[tuple[int, ...], ...]) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for widths in blocks:
        layers += _block(channels, widths)
        channels = widths[-1]
    return nn.Sequential(*layers)


def vgg16_obfuscator() -> nn.Sequential:
    """Client part, VGG16-BN blocks 1-2: images [B, 3, S, S] -> z [B, 128, S // 4, S // 4]."""
    return _blocks(3, VGG16_BLOCKS[:OBFUSCATOR_BLOCKS])


def vgg16_tail(num_outputs: int, hidden: int = 256, dropout: float = 0.5) -> nn.Sequential:
    """Server part, VGG16-BN blocks 3-5 + FC head: z [B, 128, h, w] -> [B, num_outputs].

    The head is adaptive average pooling to 1x1, then Linear(512, hidden), ReLU,
    Dropout(dropout), Linear(hidden, num_outputs). Outputs are raw logits (or regression values).
    Needs h, w >= 8 (three 2x2 pools), i.e. an input image of at least 32x32.
    """
    convolutions = _blocks(OBFUSCATOR_CHANNELS, VGG16_BLOCKS[OBFUSCATOR_BLOCKS:])
    features = VGG16_BLOCKS[-1][-1]
    return nn.Sequential(
        *convolutions,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(features, hidden),
        nn.ReLU(inplace=True),
        nn.Dropout(dropout),
        nn.Linear(hidden, num_outputs),
    )
