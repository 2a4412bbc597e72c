"""The reconstruction decoder: the authors' layout, both layouts of z, and it can learn."""

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from noisyarl.models import ReconstructionDecoder


@pytest.fixture(autouse=True)
def one_thread():
    # Intra-op threads fighting over busy shared cores make the training tests ~10x slower.
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def test_a_feature_map_is_decoded_as_before():
    torch.manual_seed(0)
    by_channels = ReconstructionDecoder(64, image_size=32)
    by_shape = ReconstructionDecoder((64, 8, 8), image_size=32)
    # Same modules and parameter names whichever way the map is described, so a decoder saved
    # with z_shape (C, 1, 1) loads into one built from (C, h, w).
    assert by_channels.state_dict().keys() == by_shape.state_dict().keys()
    assert by_shape.eval()(torch.randn(2, 64, 8, 8)).shape == (2, 3, 32, 32)


@pytest.mark.parametrize(("z_shape", "image_size"), [((16, 5, 5), 12), ((16, 5, 5), 13),
                                                     ((24,), 9), ((24,), 16), ((8, 1, 1), 7)])
def test_output_is_an_image_in_0_1_of_the_requested_size(z_shape, image_size):
    torch.manual_seed(0)
    decoder = ReconstructionDecoder(z_shape, image_size=image_size)
    with torch.no_grad():
        images = decoder(10 * torch.randn(3, *z_shape))
    assert images.shape == (3, 3, image_size, image_size)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0


def test_the_layout_is_the_authors():
    decoder = ReconstructionDecoder((32, 4, 4), image_size=16)
    transposed = [m for m in decoder.blocks if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in transposed] == [128, 128, 64]
    assert all(m.stride == (1, 1) and m.kernel_size == (3, 3) for m in transposed)
    assert decoder.blocks[0] is transposed[0] and decoder.blocks[0].in_channels == 32
    conv, norm, relu = decoder.full_size
    assert (conv.in_channels, conv.out_channels, conv.kernel_size) == (64, 64, (3, 3))
    assert isinstance(norm, nn.BatchNorm2d) and isinstance(relu, nn.ReLU)
    assert (decoder.head.in_channels, decoder.head.out_channels) == (64, 3)
    assert (decoder.image_size, decoder.z_dims) == (16, 4)


def test_it_overfits_eight_images_well_below_the_mean_image():
    # Smooth images and a random code per image: the decoder must memorise z -> image.
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    coarse = torch.rand(8, 3, 4, 4, generator=generator)
    images = F.interpolate(coarse, size=(12, 12), mode="bilinear", align_corners=False)
    z = torch.randn(8, 16, 3, 3, generator=generator)
    decoder = ReconstructionDecoder((16, 3, 3), image_size=12)
    error, mean_image_error = _fit(decoder, z, images, lr=3e-3, steps=150)
    assert error < 0.1 * mean_image_error


def _fit(decoder, z, images, *, lr: float, steps: int) -> tuple[float, float]:
    """Train ``decoder`` on (z, images) with Adam; its MSE and the mean image's MSE."""
    optimizer = torch.optim.Adam(decoder.parameters(), lr=lr)
    for _ in range(steps):
        optimizer.zero_grad()
        F.mse_loss(decoder(z), images).backward()
        optimizer.step()
    with torch.no_grad():
        error = float(F.mse_loss(decoder.eval()(z), images))
    mean_image = images.mean(dim=0, keepdim=True).expand_as(images)
    return error, float(F.mse_loss(mean_image, images))


def test_a_vector_decoder_learns_to_reconstruct_from_z():
    # Flat-colour images whose colour is coded linearly in z [B, 24]: an attacker that could
    # not read z would do no better than the mean image; this one must do much better.
    torch.manual_seed(0)
    colours = torch.rand(16, 3)
    images = colours[:, :, None, None].expand(16, 3, 8, 8)
    z = colours @ torch.randn(3, 24)
    decoder = ReconstructionDecoder((24,), image_size=8)
    error, mean_image_error = _fit(decoder, z, images, lr=1e-2, steps=60)
    assert error < 0.25 * mean_image_error


def test_z_of_the_wrong_layout_is_rejected():
    with pytest.raises(ValueError, match="z_shape"):
        ReconstructionDecoder((4, 4), image_size=16)
    with pytest.raises(ValueError, match="2 dimensions"):
        ReconstructionDecoder((24,), image_size=16)(torch.zeros(2, 24, 1, 1))
