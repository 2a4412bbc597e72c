"""The reconstruction decoder reads both layouts of z: a feature map and a vector."""

import pytest
import torch
from torch.nn import functional as F

from noisyarl.models import ReconstructionDecoder


def test_a_feature_map_is_decoded_as_before():
    torch.manual_seed(0)
    by_channels = ReconstructionDecoder(64, image_size=32)
    by_shape = ReconstructionDecoder((64, 8, 8), image_size=32)
    # Same modules and parameter names whichever way the map is described, as before vectors
    # existed, so earlier checkpoints still load.
    assert by_channels.state_dict().keys() == by_shape.state_dict().keys()
    assert by_shape.eval()(torch.randn(2, 64, 8, 8)).shape == (2, 3, 32, 32)


def test_a_vector_decoder_learns_to_reconstruct_from_z():
    # Flat-colour images whose colour is coded linearly in z [B, 24]: an attacker that could
    # not read z would do no better than the mean image; this one must do much better.
    torch.manual_seed(0)
    colours = torch.rand(16, 3)
    images = colours[:, :, None, None].expand(16, 3, 8, 8)
    z = colours @ torch.randn(3, 24)
    decoder = ReconstructionDecoder((24,), image_size=8)
    optimizer = torch.optim.Adam(decoder.parameters(), lr=1e-2)
    for _ in range(60):
        optimizer.zero_grad()
        F.mse_loss(decoder(z), images).backward()
        optimizer.step()
    with torch.no_grad():
        error = float(F.mse_loss(decoder.eval()(z), images))
    mean_image_error = float(F.mse_loss(images.mean(dim=0, keepdim=True).expand_as(images),
                                        images))
    assert error < 0.25 * mean_image_error


def test_z_of_the_wrong_layout_is_rejected():
    with pytest.raises(ValueError, match="z_shape"):
        ReconstructionDecoder((4, 4), image_size=16)
    with pytest.raises(ValueError, match="2 dimensions"):
        ReconstructionDecoder((24,), image_size=16)(torch.zeros(2, 24, 1, 1))
