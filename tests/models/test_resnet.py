import pytest
import torch

from noisyarl.models import feature_shape, resnet18_prefix, resnet18_suffix


@pytest.mark.parametrize(
    ("split", "shape"),
    [(1, (64, 45, 45)), (2, (128, 23, 23)), (3, (256, 12, 12)), (4, (512, 6, 6))],
)
def test_prefix_shapes_at_178_match_the_paper(split, shape):
    assert feature_shape(split, 178) == shape


def test_cifar_stem_keeps_resolution():
    assert feature_shape(3, 32, cifar_stem=True) == (256, 8, 8)


@pytest.mark.parametrize("split", [0, 1, 2, 3, 4])
def test_prefix_then_suffix_is_a_whole_resnet18(split):
    torch.manual_seed(0)
    x = torch.rand(2, 3, 64, 64)
    out = resnet18_suffix(split, 7)(resnet18_prefix(split)(x))
    assert out.shape == (2, 7)
    total = sum(p.numel() for p in resnet18_prefix(split).parameters()) + sum(
        p.numel() for p in resnet18_suffix(split, 1000).parameters()
    )
    assert total == 11_689_512  # torchvision resnet18 with 1000 classes


def test_prefix_parameter_counts_match_method_md():
    expected_millions = {1: 0.16, 2: 0.68, 3: 2.78, 4: 11.2}
    for split, millions in expected_millions.items():
        count = sum(p.numel() for p in resnet18_prefix(split).parameters())
        assert count / 1e6 == pytest.approx(millions, rel=0.03)


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="split K"):
        resnet18_prefix(5)
