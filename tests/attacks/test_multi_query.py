"""Multi-query averaging and the keyed-noise defence against it.

The attacker's view (:class:`noisyarl.attacks.view.ZView`) takes the client's noise module
explicitly (what ``Defence.noise_module()`` gives), so averaging works for any client whose
noise module adds σ·ε to its output, not only an ``Obfuscator``.
"""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn

from noisyarl.attacks.base import LearningCurve
from noisyarl.attacks.multi_query import QueryRow
from noisyarl.attacks.suite import near_duplicate_check
from noisyarl.attacks.view import AveragedClient, ZView, queries_differ
from noisyarl.data.base import ImageSplit
from noisyarl.models.keyed_noise import KeyedObfuscator, image_seed
from noisyarl.models.noise import GaussianNoise, NoiseFree, Obfuscator
from noisyarl.runtime import StepContext

SIGMA = 2.0
CPU = StepContext(torch.device("cpu"))


class _Doubling(nn.Module):
    """A client whose noise is not a GaussianNoise module: the view must call it every time."""

    def forward(self, x):
        return 2 * x + SIGMA * torch.randn_like(x)


def _obfuscator():
    client = Obfuscator(nn.Identity(), GaussianNoise(SIGMA))
    return client, client.noise


def _sequential():
    """A noisy client that is no Obfuscator: the noise module is the last of a Sequential."""
    client = nn.Sequential(nn.Identity(), GaussianNoise(SIGMA))
    return client, client[1]


def _k_calls():
    return _Doubling(), None


def _constant_split(count: int = 4, side: int = 25) -> ImageSplit:
    """Images whose every pixel is 0.3 (level 76.5 -> 77/255), 4 x 3 x 25 x 25 elements."""
    images = torch.full((count, 3, side, side), 77, dtype=torch.uint8)
    return ImageSplit(images=images, labels={"y": torch.zeros(count, dtype=torch.long)})


@pytest.mark.parametrize("make", [_obfuscator, _sequential, _k_calls],
                         ids=["obfuscator-noise-once", "sequential-noise-once", "k-calls"])
@pytest.mark.parametrize("k", [1, 4, 16, 64])
def test_averaging_k_queries_lowers_the_noise_std_by_sqrt_k(make, k):
    client, noise = make()
    split = _constant_split()
    view = ZView.of(client.eval(), noise, CPU, split).averaged(k)
    torch.manual_seed(k)
    images, z, _ = next(view.batches(split, 4))
    clean = 2 * images if isinstance(client, _Doubling) else images
    residual = z - clean
    assert float(residual.std()) == pytest.approx(SIGMA / math.sqrt(k), rel=0.05)
    assert abs(float(residual.mean())) < 0.05 * SIGMA / math.sqrt(k) * 3
    assert noise is None or noise.enabled  # switched back on after computing h


def test_the_features_are_computed_once_per_split_when_the_noise_module_is_known():
    calls = []
    extractor = nn.Conv2d(3, 4, 3)
    extractor.register_forward_hook(lambda *_: calls.append(1))
    client = nn.Sequential(extractor, GaussianNoise(SIGMA)).eval()
    split = _constant_split(count=8, side=8)
    view = ZView.of(client, client[1], CPU, split).averaged(16)
    calls.clear()
    first = [z for _, z, _ in view.batches(split, 4)]
    second = [z for _, z, _ in view.batches(split, 4)]
    assert len(calls) == 2, "h of the split once (one batch of 256) plus the z-shape probe"
    assert not torch.equal(first[0], second[0]), "fresh noise on every pass"


def test_a_client_with_unknown_randomness_is_called_on_every_pass():
    split = _constant_split(count=8, side=8)
    view = ZView.of(_Doubling(), None, CPU, split)
    assert view.features is None and not view.deterministic
    averaged = view.averaged(4)
    assert isinstance(averaged.client, AveragedClient) and averaged.client.queries == 4


def test_the_keyed_attacker_adds_its_own_noise_in_training_only():
    split = _constant_split(count=8, side=8)
    keyed = _keyed(b"key", sigma=1.0)
    view = ZView(keyed, CPU, features=keyed).with_train_noise(1.0)
    torch.manual_seed(0)
    _, test_z, _ = next(view.batches(split, 8))
    _, again, _ = next(view.batches(split, 8))
    assert torch.equal(test_z, again), "keyed z is the same on every test pass"
    _, train_z, _ = next(view.batches(split, 8, training=True))
    assert float((train_z - test_z).std()) == pytest.approx(1.0, rel=0.1)


def _images(count=4, side=12, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (count, 3, side, side), dtype=torch.uint8, generator=generator)


def _keyed(key: bytes, sigma: float = 1.0) -> KeyedObfuscator:
    torch.manual_seed(0)
    extractor = nn.Conv2d(3, 5, 3, stride=2).requires_grad_(False)
    return KeyedObfuscator(Obfuscator(extractor, GaussianNoise(sigma)), key).eval()


def test_keyed_noise_wraps_any_client_whose_noise_module_ends_it():
    torch.manual_seed(0)
    extractor = nn.Conv2d(3, 5, 3, stride=2).requires_grad_(False)
    sequential = nn.Sequential(extractor, GaussianNoise(1.0)).eval()
    images = _images().float() / 255
    keyed = KeyedObfuscator(sequential, b"key", sequential[1])
    reference = _keyed(b"key")  # the same extractor weights inside an Obfuscator
    assert torch.equal(keyed(images), reference(images))
    assert torch.equal(keyed.features(images), extractor(images))
    assert torch.equal(NoiseFree(sequential, sequential[1])(images), extractor(images))
    assert sequential[1].enabled
    with pytest.raises(ValueError, match="noise module"):
        KeyedObfuscator(extractor, b"key")


def test_keyed_noise_gives_the_same_z_for_the_same_image_and_key():
    images = _images().float() / 255
    client = _keyed(b"client-secret")
    first = client(images)
    assert torch.equal(first, client(images))
    assert torch.allclose(first[1:2], client(images[1:2]), atol=1e-6)  # batch-independent
    assert not torch.equal(first, client.features(images))  # the noise is there


def test_keyed_noise_differs_for_another_key_and_another_image():
    images = _images().float() / 255
    z_a, z_b = _keyed(b"key-a")(images), _keyed(b"key-b")(images)
    noise_a = z_a - _keyed(b"key-a").features(images)
    noise_b = z_b - _keyed(b"key-b").features(images)
    assert not torch.allclose(noise_a, noise_b)
    assert abs(float(torch.corrcoef(torch.stack([noise_a.flatten(), noise_b.flatten()]))[0, 1])) \
        < 0.2
    assert not torch.allclose(noise_a[0], noise_a[1])  # another image, other noise


def test_keyed_noise_is_standard_normal_scaled_by_sigma():
    images = _images(count=64, side=16, seed=1).float() / 255
    client = _keyed(b"k", sigma=3.0)
    noise = client(images) - client.features(images)
    assert float(noise.std()) == pytest.approx(3.0, rel=0.05)


def test_averaging_keyed_queries_changes_nothing_and_is_detected():
    split = ImageSplit(images=_images(count=8), labels={})
    keyed = _keyed(b"key")
    fresh = keyed.client
    context = StepContext(torch.device("cpu"))
    assert not queries_differ(keyed, split, context)
    assert queries_differ(fresh, split, context)
    images = split.images.float() / 255
    assert torch.allclose(AveragedClient(keyed, 16)(images), keyed(images), atol=1e-5)
    assert ZView.of(keyed, None, context, split).deterministic


def test_a_one_level_pixel_change_gets_new_keyed_noise():
    """The documented limit of keyed noise: near-duplicate frames are not covered."""
    image = _images(count=1)[0].float() / 255
    changed = image.clone()
    changed[0, 0, 0] = (changed[0, 0, 0] * 255 + (1 if changed[0, 0, 0] < 1 else -1)) / 255
    assert image_seed(b"key", image) != image_seed(b"key", changed)
    report = near_duplicate_check(_keyed(b"key"), ImageSplit(images=_images(count=6), labels={}))
    assert report["share_with_new_noise"] == 1.0


def test_a_query_row_round_trips_with_its_learning_curves():
    curve = LearningCurve(records=[{"epoch": 1, "valid": 60.0, "valid_loss": 0.7,
                                    "train_loss": 0.8, "lr": 1e-3}], best_epoch=1, ceiling=5)
    row = QueryRow(queries=4, privacy=61.0, privacy_paper=62.0, privacy_chance=55.0,
                   privacy_learned=True, leakage_epochs=1, leakage_curve=curve)
    again = QueryRow.from_dict(json.loads(json.dumps(row.to_dict())))
    assert again == row
    assert again.curves() == {"leakage": curve}
    older = {key: value for key, value in row.to_dict().items() if not key.endswith("_curve")}
    assert QueryRow.from_dict(older).curves() == {}  # a run written before curves were kept
