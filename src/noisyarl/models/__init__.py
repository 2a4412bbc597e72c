"""Models: the split ResNet18, the noise module and the reconstruction decoder."""

from noisyarl.models.decoder import ReconstructionDecoder
from noisyarl.models.noise import GaussianNoise, Obfuscator
from noisyarl.models.resnet import feature_shape, resnet18_prefix, resnet18_suffix
from noisyarl.models.vgg import vgg16_obfuscator, vgg16_tail

__all__ = [
    "GaussianNoise",
    "Obfuscator",
    "ReconstructionDecoder",
    "feature_shape",
    "resnet18_prefix",
    "resnet18_suffix",
    "vgg16_obfuscator",
    "vgg16_tail",
]
