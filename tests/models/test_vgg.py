"""VGG16-BN split after block 2 (DeepObfuscator's obfuscator and tails)."""

import pytest
import torch
from torch import nn
from torchvision.models import vgg16_bn

from noisyarl.models import vgg16_obfuscator, vgg16_tail


def _parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _conv_bn_parameters(in_channels: int, out_channels: int) -> int:
    """3x3 convolution weights + bias, then BN scale + shift."""
    return 9 * in_channels * out_channels + out_channels + 2 * out_channels


def test_obfuscator_has_the_parameters_of_vgg16_bn_blocks_1_and_2():
    widths = [(3, 64), (64, 64), (64, 128), (128, 128)]
    expected = sum(_conv_bn_parameters(c_in, c_out) for c_in, c_out in widths)
    assert _parameter_count(vgg16_obfuscator()) == expected == 260_928


def test_obfuscator_and_tail_convolutions_are_torchvision_vgg16_bn_features():
    # The split must not lose or add a layer: client + tail convolutions = VGG16-BN's features.
    tail = vgg16_tail(num_outputs=1)
    tail_convolutions = nn.Sequential(*[m for m in tail if not isinstance(m, nn.Linear)])
    ours = _parameter_count(vgg16_obfuscator()) + _parameter_count(tail_convolutions)
    assert ours == _parameter_count(vgg16_bn(weights=None).features)
    convolutions = [m for m in [*vgg16_obfuscator(), *tail] if isinstance(m, nn.Conv2d)]
    assert len(convolutions) == 13


@pytest.mark.parametrize(("size", "side"), [(32, 8), (48, 12), (178, 44)])
def test_obfuscator_quarters_the_image(size, side):
    torch.manual_seed(0)
    z = vgg16_obfuscator()(torch.rand(2, 3, size, size))
    assert z.shape == (2, 128, side, side)


@pytest.mark.parametrize("size", [32, 178])
def test_tail_maps_obfuscator_output_to_raw_outputs(size):
    torch.manual_seed(0)
    tail = vgg16_tail(num_outputs=7, hidden=32).eval()
    out = tail(vgg16_obfuscator()(torch.rand(2, 3, size, size)))
    assert out.shape == (2, 7)
    # Raw logits: not squashed into probabilities (rows need not sum to 1, values may be < 0).
    assert not torch.allclose(out.sum(dim=1), torch.ones(2))
    assert tail[-1].out_features == 7 and tail[-4].out_features == 32
