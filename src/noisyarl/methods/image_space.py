"""Image-space baselines: a fixed image transform on the device, a whole ResNet18 on the server.

The sanity check of every learned defence: does a simple, parameter-free transform of the image
give the same privacy/utility trade-off? The client is the transform (images [B, 3, S, S] in
[0, 1] -> transformed images [B, 3, S, S]), the transformed image is what is sent (so the
reconstruction attack applies: ``obfuscates``), the utility head is a whole ResNet18 trained on
the transformed images for the utility task only (as the upper bound's, on raw images), and the
leakage attacker is another whole ResNet18 on the transformed images.

Three transforms, one knob each (in pixels of the run's ``data.image_size``, or on the [0, 1]
intensity scale):

- ``blur``: Gaussian blur of standard deviation ``params.blur_sigma`` px, a fixed depthwise
  convolution (separable, radius ``ceil(3σ)``, reflect padding);
- ``pixelate``: the mean of each ``params.block_size`` x ``params.block_size`` block, repeated
  over the block (blocks that overhang the image edge average the pixels inside it);
- ``pixel_noise``: ``z = x + σ·ε``, ``ε ~ N(0, I)`` drawn afresh on every call, with σ =
  ``method.sigma`` (the client's :class:`~noisyarl.models.GaussianNoise`, so the attacks average
  queries and cache ``x`` as for noisy ARL's noise module). No clipping: ``z`` leaves [0, 1].

None is a ResNet prefix (``has_split`` false, ``fixed_split`` None); only ``pixel_noise`` has a
noise module (``has_noise``). Every client exports to ONNX with the transform and the noise inside
the graph (convolution, average pooling, ``RandomNormalLike``).

Defaults and grids (project's choices, for faces at 48-178 px): blur σ 2 px, grid 1, 2, 4, 8 px
(σ = 8 px leaves only the coarse layout of a 48 px face); block 4 px, grid 2, 4, 8, 16 px (16 px
leaves 3 x 3 blocks of a 48 px face); pixel noise σ grid 0.1, 0.25, 0.5, 1 (``method.sigma``
defaults to 0 like every σ: set it). Adam 1e-3 for the utility head, as the upper bound's.
"""

from __future__ import annotations

import math
from abc import abstractmethod
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from noisyarl.methods.base import Defence, DefenceSpec, Knob, utility_step
from noisyarl.models import GaussianNoise, Obfuscator, resnet18_suffix
from noisyarl.runtime import StepContext

#: Channels of an RGB image (each blurred on its own).
IMAGE_CHANNELS = 3
#: The Gaussian kernel is cut off at this many standard deviations.
KERNEL_SIGMAS = 3.0


def _check_lr(lr: float) -> None:
    if lr <= 0:
        raise ValueError(f"lr must be > 0, got {lr}")


def gaussian_kernel_1d(sigma: float, radius: int) -> torch.Tensor:
    """Normalised Gaussian weights [2 * radius + 1] of standard deviation ``sigma`` (px).

    ``sigma = 0`` (or ``radius = 0``) gives the one-tap kernel [1.]: no blur.

    >>> gaussian_kernel_1d(1.0, 1)
    tensor([0.2741, 0.4519, 0.2741])
    """
    if sigma == 0 or radius == 0:
        return torch.ones(1)
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64)
    weights = torch.exp(-offsets.pow(2) / (2 * sigma**2))
    return (weights / weights.sum()).float()


class GaussianBlur(nn.Module):
    """Images [B, 3, H, W] -> blurred images [B, 3, H, W], standard deviation ``sigma`` px.

    A separable depthwise convolution (one Gaussian kernel for every channel) after reflect
    padding by the radius ``ceil(3 σ)``, capped at ``image_size - 1`` (reflect padding needs a
    radius below the side). The weights sum to 1, so a constant image stays constant. The kernel
    is a fixed, non-persistent buffer: it follows from ``sigma`` and is no weight.
    """

    def __init__(self, sigma: float, image_size: int) -> None:
        super().__init__()
        if sigma < 0:
            raise ValueError(f"blur sigma must be >= 0, got {sigma}")
        self.sigma = float(sigma)
        self.radius = min(math.ceil(KERNEL_SIGMAS * sigma), image_size - 1) if sigma > 0 else 0
        kernel = gaussian_kernel_1d(self.sigma, self.radius)
        self.register_buffer("kernel", kernel.expand(IMAGE_CHANNELS, 1, -1).clone(),
                             persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if self.radius == 0:
            return images
        r = self.radius
        padded = F.pad(images, (r, r, r, r), mode="reflect")
        kernel = self.kernel.to(images.dtype)
        rows = F.conv2d(padded, kernel[:, :, :, None], groups=IMAGE_CHANNELS)
        return F.conv2d(rows, kernel[:, :, None, :], groups=IMAGE_CHANNELS)

    def extra_repr(self) -> str:
        return f"sigma={self.sigma:g}px, radius={self.radius}"


class Pixelate(nn.Module):
    """Images [B, 3, H, W] -> images [B, 3, H, W] constant on each ``block`` x ``block`` block.

    Each block (from the top-left corner) takes the mean of its pixels; a block that overhangs
    the bottom or right edge takes the mean of the pixels inside the image (zero padding, divided
    by the count of real pixels). ``block = 1`` returns the image unchanged.
    """

    def __init__(self, block: int) -> None:
        super().__init__()
        if block < 1:
            raise ValueError(f"block size must be >= 1, got {block}")
        self.block = int(block)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        b = self.block
        height, width = images.shape[-2:]
        rows, cols = math.ceil(height / b), math.ceil(width / b)
        overhang = (0, cols * b - width, 0, rows * b - height)
        sums = F.avg_pool2d(F.pad(images, overhang), b)
        counts = F.avg_pool2d(F.pad(images.new_ones((1, 1, height, width)), overhang), b)
        means = sums / counts  # [B, 3, rows, cols]
        # Repeat every block mean b x b times: [B, 3, rows, b, cols, b] -> [B, 3, rows*b, cols*b].
        blocks = means[:, :, :, None, :, None].expand(-1, -1, -1, b, -1, b)
        return blocks.flatten(4, 5).flatten(2, 3)[:, :, :height, :width]

    def extra_repr(self) -> str:
        return f"block={self.block}px"


class ImageSpaceDefence(Defence):
    """Shared part of the image-space baselines and of the upper bound (whose transform is the
    identity): ``client`` is :meth:`make_transform`'s fixed transform, ``utility_head`` a whole
    ResNet18 on the transformed images [B, 3, S, S] trained for utility only, and the leakage
    attacker another whole ResNet18 on them."""

    has_split = False
    has_noise = False

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__(spec)
        self.client = self.make_transform(spec)
        self.utility_head = resnet18_suffix(0, spec.utility.num_outputs, spec.cifar_stem)

    @abstractmethod
    def make_transform(self, spec: DefenceSpec) -> nn.Module:
        """The client: images [B, 3, S, S] in [0, 1] -> transformed images [B, 3, S, S]."""

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"main": torch.optim.Adam(self.utility_head.parameters(), lr=self.spec.params.lr)}

    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        return utility_step(self, images, utility_target, optimizers["main"], context)

    def make_attacker(self, num_outputs: int) -> nn.Module:
        return resnet18_suffix(0, num_outputs, self.spec.cifar_stem)


@dataclass
class BlurParams:
    """blur_sigma: standard deviation of the Gaussian blur in px of the run's images, >= 0
    (2; 0 sends the image unchanged). lr: Adam learning rate of the utility ResNet18 (1e-3)."""

    blur_sigma: float = 2.0
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.blur_sigma < 0:
            raise ValueError(f"blur_sigma must be >= 0, got {self.blur_sigma}")
        _check_lr(self.lr)


class Blur(ImageSpaceDefence):
    """Gaussian blur on the device (:class:`GaussianBlur`), a ResNet18 on the blurred image."""

    name = "blur"
    display_name = "Gaussian blur"
    Params = BlurParams
    knobs = (Knob("params.blur_sigma", (1.0, 2.0, 4.0, 8.0), "blur σ"),)

    def make_transform(self, spec: DefenceSpec) -> nn.Module:
        return GaussianBlur(spec.params.blur_sigma, spec.image_size)


@dataclass
class PixelateParams:
    """block_size: side of the constant blocks in px of the run's images, >= 1 (4; 1 sends the
    image unchanged). lr: Adam learning rate of the utility ResNet18 (1e-3)."""

    block_size: int = 4
    lr: float = 1e-3

    def __post_init__(self) -> None:
        if self.block_size < 1:
            raise ValueError(f"block_size must be >= 1, got {self.block_size}")
        _check_lr(self.lr)


class Pixelation(ImageSpaceDefence):
    """Pixelation on the device (:class:`Pixelate`), a ResNet18 on the pixelated image."""

    name = "pixelate"
    display_name = "Pixelation"
    Params = PixelateParams
    knobs = (Knob("params.block_size", (2, 4, 8, 16), "block"),)

    def make_transform(self, spec: DefenceSpec) -> nn.Module:
        return Pixelate(spec.params.block_size)


@dataclass
class PixelNoiseParams:
    """lr: Adam learning rate of the utility ResNet18 (1e-3). The noise's standard deviation is
    ``method.sigma`` (on the [0, 1] intensity scale), the client's noise module."""

    lr: float = 1e-3

    def __post_init__(self) -> None:
        _check_lr(self.lr)


class PixelNoise(ImageSpaceDefence):
    """Additive Gaussian pixel noise ``z = x + σ·ε`` on the device, a ResNet18 on ``z``.

    The client is an :class:`~noisyarl.models.Obfuscator` whose extractor is the identity, so its
    :class:`~noisyarl.models.GaussianNoise` (σ = ``method.sigma``, switched by
    ``method.noise``) is the noise module of :meth:`Defence.noise_module`.
    """

    name = "pixel_noise"
    display_name = "Pixel noise"
    Params = PixelNoiseParams
    has_noise = True
    knobs = (Knob("sigma", (0.1, 0.25, 0.5, 1.0)),)

    def make_transform(self, spec: DefenceSpec) -> nn.Module:
        return Obfuscator(nn.Identity(), GaussianNoise(spec.sigma, enabled=spec.noise))
