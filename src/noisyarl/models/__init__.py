"""Models: the split ResNet18, the noise module and the reconstruction decoder."""

from noisyarl.models.decoder import ReconstructionDecoder
from noisyarl.models.noise import GaussianNoise, Obfuscator
from noisyarl.models.resnet import feature_shape, resnet18_prefix, resnet18_suffix

__all__ = [
    "GaussianNoise",
    "Obfuscator",
    "ReconstructionDecoder",
    "feature_shape",
    "resnet18_prefix",
    "resnet18_suffix",
]
