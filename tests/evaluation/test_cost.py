"""Tests of noisyarl.evaluation.cost against hand counts and the paper's ResNet18 figures."""

from __future__ import annotations

import json

import pytest
import torch
import torchvision
from torch import nn

from noisyarl.evaluation.cost import (
    ClientCost,
    count_parameters,
    measure_client_cost,
    peak_activation_bytes,
)

# --- FLOPs against an independent analytic count ---------------------------------------------


def analytic_flops(net: nn.Module, input_shape: tuple[int, int, int]) -> int:
    """2 FLOPs per multiply-add of every Conv2d and Linear, from output shapes seen by hooks."""
    total = 0

    def count(module, _inputs, output):
        nonlocal total
        if isinstance(module, nn.Conv2d):
            k_h, k_w = module.kernel_size
            c_in, c_out = module.in_channels, module.out_channels
            h_out, w_out = output.shape[-2:]
            total += 2 * c_in * c_out * k_h * k_w * h_out * w_out // module.groups
        elif isinstance(module, nn.Linear):
            total += 2 * module.in_features * module.out_features

    handles = [m.register_forward_hook(count) for m in net.modules()
               if isinstance(m, nn.Conv2d | nn.Linear)]
    with torch.no_grad():
        net.eval()(torch.zeros(1, *input_shape))
    for handle in handles:
        handle.remove()
    return total


SMALL_NETS = {
    "plain convs": lambda: nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 16, 3, stride=2)),
    "grouped, depthwise, dilated, non-square": lambda: nn.Sequential(
        nn.Conv2d(3, 12, (3, 5), stride=(1, 2), padding=(1, 2)), nn.BatchNorm2d(12), nn.ReLU(),
        nn.Conv2d(12, 12, 3, groups=12, padding=2, dilation=2),
        nn.Conv2d(12, 24, 1, groups=4), nn.MaxPool2d(2)),
    "conv then linear": lambda: nn.Sequential(
        nn.Conv2d(3, 4, 5, stride=2, bias=False), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
        nn.Linear(16, 10), nn.ReLU(), nn.Linear(10, 3)),
}


@pytest.mark.parametrize("name", sorted(SMALL_NETS))
def test_flops_match_an_analytic_count(name):
    net = SMALL_NETS[name]()
    cost = measure_client_cost(net, (3, 20, 18))
    assert cost.flops == analytic_flops(net, (3, 20, 18)) > 0
    assert cost.gflops == pytest.approx(cost.flops / 1e9)


def resnet18_prefix(k: int) -> nn.Sequential:
    """RN18_K: torchvision ResNet18's conv1, bn1, relu, maxpool, layer1..layerK."""
    resnet = torchvision.models.resnet18(weights=None)
    layers = [getattr(resnet, f"layer{i}") for i in range(1, k + 1)]
    return nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool, *layers)


# docs/method.md: at 178x178, RN18_1..4 = 0.37, 0.65, 0.95, 1.25 GMACs and 0.16, 0.68, 2.78, 11.2 M
# parameters; z = 256x12x12 for K = 3 and 512x6x6 for K = 4.
PAPER_RN18 = {1: (0.37, 0.16, None), 2: (0.65, 0.68, None),
              3: (0.95, 2.78, (256, 12, 12)), 4: (1.25, 11.2, (512, 6, 6))}


@pytest.mark.parametrize("k", sorted(PAPER_RN18))
def test_resnet18_prefixes_match_the_documented_figures(k):
    gmacs, million_params, z_shape = PAPER_RN18[k]
    net = resnet18_prefix(k)

    cost = measure_client_cost(net, (3, 178, 178))

    assert cost.gflops == pytest.approx(2 * gmacs, rel=0.05)  # 1 MAC = 2 FLOPs
    assert cost.flops == analytic_flops(net, (3, 178, 178))
    assert cost.params / 1e6 == pytest.approx(million_params, rel=0.03)
    if z_shape is not None:
        assert cost.z_shape == z_shape
        assert cost.z_bytes == 4 * z_shape[0] * z_shape[1] * z_shape[2]


def test_parameters_count_distinct_parameters_not_buffers():
    shared = nn.Linear(4, 4)
    net = nn.Sequential(shared, nn.BatchNorm1d(4), shared)
    assert count_parameters(net) == (16 + 4) + (4 + 4)


# --- peak activation memory ------------------------------------------------------------------

FLOAT = 4  # bytes


def test_peak_memory_of_a_sequential_net_counted_by_hand():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 2, 1))
    image, conv1, relu, conv2 = (c * 8 * 8 * FLOAT for c in (3, 4, 4, 2))
    # The input stays alive; during ReLU its input (conv1's output) and output are both alive;
    # conv1's output is freed before the last conv runs.
    expected = max(image + conv1, image + conv1 + relu, image + relu + conv2)

    assert measure_client_cost(net, (3, 8, 8)).peak_activation_bytes == expected == 2816


def test_in_place_ops_and_views_add_no_memory():
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(inplace=True), nn.Flatten(),
                        nn.Linear(256, 5))
    image, conv1, logits = 3 * 64 * FLOAT, 4 * 64 * FLOAT, 5 * FLOAT
    assert measure_client_cost(net, (3, 8, 8)).peak_activation_bytes == image + conv1 + logits


class Residual(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv(x)


def test_peak_memory_counts_a_residual_input_kept_alive():
    # x (the input), conv(x) and x + conv(x) are alive together.
    assert measure_client_cost(Residual(), (3, 8, 8)).peak_activation_bytes == 3 * 192 * FLOAT


def test_peak_memory_excludes_parameters():
    net = nn.Linear(1000, 1000)  # 4 MB of weights
    cost = measure_client_cost(net, (1, 1, 1000))
    assert cost.peak_activation_bytes == 1000 * FLOAT + 1000 * FLOAT


def test_peak_memory_with_autograd_on_counts_saved_tensors():
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.Conv2d(4, 4, 1), nn.Conv2d(4, 4, 1)).eval()
    x = torch.zeros(1, 3, 8, 8)
    image, hidden = 3 * 64 * FLOAT, 4 * 64 * FLOAT
    with torch.no_grad():  # at most two conv outputs alive at once
        assert peak_activation_bytes(net, x) == image + 2 * hidden
    # each conv saves its input for the backward pass: all three outputs stay alive
    assert peak_activation_bytes(net, x.requires_grad_()) == image + 3 * hidden


# --- mode, randomness, output ----------------------------------------------------------------


class NoisyClient(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x)
        return h + 100.0 * torch.randn_like(h)


def test_measurement_restores_each_training_flag_and_leaves_state_alone():
    client = NoisyClient().train()
    client.features[2].eval()  # mixed modes must survive
    flags = [m.training for m in client.modules()]
    running_mean = client.features[1].running_mean.clone()
    rng_state = torch.get_rng_state()

    cost = measure_client_cost(client, (3, 10, 10))

    assert [m.training for m in client.modules()] == flags
    assert torch.equal(client.features[1].running_mean, running_mean)  # ran in eval mode
    assert torch.equal(torch.get_rng_state(), rng_state)  # the noise drew from a forked RNG
    assert all(p.grad is None for p in client.parameters())
    # FLOPs of the conv only (batch norm, dropout and noise are not counted)
    assert cost.flops == 2 * 3 * 4 * 9 * 8 * 8
    assert cost.z_shape == (4, 8, 8) and cost.z_bytes == 4 * 64 * FLOAT


def test_cost_is_json_ready_and_frozen():
    cost = measure_client_cost(nn.Conv2d(3, 2, 1), (3, 4, 4))
    values = json.loads(json.dumps(cost.to_dict()))
    assert values["z_shape"] == [2, 4, 4] and values["flops"] == 2 * 3 * 2 * 16
    assert isinstance(cost, ClientCost)
    with pytest.raises(AttributeError):
        cost.flops = 0  # type: ignore[misc]


def test_client_must_return_one_tensor():
    class TwoOutputs(nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(TypeError):
        measure_client_cost(TwoOutputs(), (3, 4, 4))
    with pytest.raises(ValueError):
        measure_client_cost(nn.Identity(), (4, 4))


# --- every defence's client, and the paper's efficiency claim ---------------------------------

def _client(name: str, split: int, image_size: int) -> nn.Module:
    from noisyarl.data.base import LabelInfo
    from noisyarl.data.tasks import Task
    from noisyarl.methods import DefenceSpec, build_defence, method_params

    binary = Task("y", LabelInfo(kind="binary"))
    spec = DefenceSpec(utility=binary, private=binary, split=split, sigma=0.0, noise=True,
                       params=method_params(name, {}), image_size=image_size)
    return build_defence(name, spec).client


@pytest.mark.parametrize("name", ["noisy_arl", "maxent_arl", "deep_obfuscator", "disco"])
def test_every_defence_client_is_counted_like_the_analytic_count(name):
    client = _client(name, 3, 32)
    assert measure_client_cost(client, (3, 32, 32)).flops == analytic_flops(client, (3, 32, 32))


def test_rn18_3_client_is_cheaper_than_maxent_and_disco_clients_at_178px():
    # Appendix A.2: RN18_3 needs about 23% fewer client GFLOPs than MaxEnt's encoder; DISCO's
    # client (ResNet18 to layer2 plus a ResNet18-tail pruner) costs about a whole ResNet18.
    gflops = {name: measure_client_cost(_client(name, 3, 178), (3, 178, 178)).gflops
              for name in ("noisy_arl", "maxent_arl", "disco")}
    assert gflops["noisy_arl"] < 0.85 * gflops["maxent_arl"]
    assert gflops["noisy_arl"] < gflops["disco"]
