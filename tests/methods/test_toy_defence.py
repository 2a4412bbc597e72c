"""A new defence is one class plus one line: a toy noisy defence, defined here and registered with
``monkeypatch.setitem(METHODS, Toy.name, Toy)``, gets every part of the toolkit with no other
edit: the defence contract, a whole run (training, paper attacks, the worst-case suite with
multi-query averaging and keyed noise), metrics.json with its client cost, report.md, export
and latency of the run.

Its client is no :class:`~noisyarl.models.Obfuscator` (a strided convolution, then a noise
module, in an ``nn.Sequential``): what the attacks need of a noisy client comes through
:meth:`Defence.noise_module`, not from the client's class.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch
from torch import nn

from noisyarl.attacks.suite import WorstCaseResult
from noisyarl.config import config_from_dict
from noisyarl.deploy.export import ExportedClient, export_client
from noisyarl.deploy.latency import latency_of_run
from noisyarl.evaluation.cost import count_parameters
from noisyarl.methods import METHODS, Defence, DefenceSpec, adversarial_update
from noisyarl.models import GaussianNoise
from noisyarl.runners.compare import table_row
from noisyarl.runners.experiment import run_experiment
from noisyarl.runners.runs import load_run
from noisyarl.runtime import StepContext

CHANNELS = 16
SIGMA = 0.5


@dataclass
class ToyParams:
    """lr: Adam learning rate of everything. weight: of the adversary's loss in the client's
    objective."""

    lr: float = 1e-2
    weight: float = 0.1


def _head(num_outputs: int) -> nn.Module:
    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(CHANNELS, num_outputs))


class Toy(Defence):
    """Client: conv 3 -> 16 (stride 2), BN, ReLU, then noise; linear heads on pooled z."""

    name = "toy"
    display_name = "Toy"
    Params = ToyParams
    has_split = False

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__(spec)
        self.client = nn.Sequential(nn.Conv2d(3, CHANNELS, 3, stride=2, padding=1),
                                    nn.BatchNorm2d(CHANNELS), nn.ReLU(),
                                    GaussianNoise(spec.sigma, enabled=spec.noise))
        self.utility_head = _head(spec.utility.num_outputs)
        self.adversary = _head(spec.private.num_outputs)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        main = [*self.client.parameters(), *self.utility_head.parameters()]
        return {"main": torch.optim.Adam(main, lr=self.spec.params.lr),
                "adversary": torch.optim.Adam(self.adversary.parameters(),
                                              lr=self.spec.params.lr)}

    def train_step(self, images, utility_target, private_target, optimizers,
                   context: StepContext) -> dict[str, torch.Tensor]:
        utility, private = self.spec.utility, self.spec.private
        with context.autocast():
            z = self.client(images)
            utility_out = self.utility_head(z)
            utility_loss = utility.loss(utility_out, utility_target)
            adversary_out = self.adversary(z)
            adversary_loss = private.loss(adversary_out, private_target)
            client_loss = utility_loss - self.spec.params.weight * adversary_loss
        adversarial_update(client_loss, {"adversary": adversary_loss}, optimizers, context)
        return {"utility_loss": utility_loss.detach(), "adversary_loss": adversary_loss.detach(),
                "utility_correct": utility.score_sum(utility_out, utility_target),
                "adversary_correct": private.score_sum(adversary_out, private_target)}

    def make_attacker(self, num_outputs: int) -> nn.Module:
        return _head(num_outputs)


@pytest.fixture
def toy(monkeypatch):
    """The toy defence, registered: the one line a new defence needs."""
    monkeypatch.setitem(METHODS, Toy.name, Toy)
    return Toy


def test_the_toy_meets_the_defence_contract(toy, defence_contract, tmp_path):
    defence_contract.check_all(toy.name, tmp_path)


def _toy_config(root, suite: str = "worst_case"):
    return config_from_dict({
        "name": "toy",
        "data": {"dataset": "celeba", "root": str(root), "image_size": 32, "cache_dir": None},
        "tasks": {"utility": {"label": "Smiling"}, "private": {"label": "Male"}},
        "method": {"name": "toy", "sigma": SIGMA, "params": {"lr": 0.02}},
        "train": {"epochs": 1, "batch_size": 32, "progress": False},
        "attacks": {"leakage": {"epochs": 1, "batch_size": 32},
                    "reconstruction": {"epochs": 1, "batch_size": 32},
                    "suite": suite,
                    "worst_case": {"attackers": ["proxy", "linear", "knn"], "queries": [1, 4],
                                   "identity_epochs": 1}},
    })


def test_a_whole_run_of_the_toy_with_the_worst_case_suite_export_and_latency(
        toy, tiny_celeba_root, tmp_path):
    """About 6 s on 2 CPU cores: the toy client is one convolution and every attack one epoch."""
    run_dir = tmp_path / "run"
    metrics = run_experiment(_toy_config(tiny_celeba_root), run_dir)

    saved = json.loads((run_dir / "metrics.json").read_text())
    assert saved["utility"] == metrics["utility"]
    assert (saved["method"], saved["display_name"], saved["obfuscates"]) == ("toy", "Toy", True)
    assert (saved["split"], saved["sigma"], saved["noise"]) == (None, SIGMA, True)
    assert saved["params"] == {"lr": 0.02, "weight": 0.1}
    assert saved["run"] == "toy-toy-s0.5-seed0"
    client = Toy(load_run(run_dir).defence.spec).client
    assert saved["client_cost"]["params"] == count_parameters(client) > 0
    assert saved["client_gflops"] > 0
    assert 0 <= saved["privacy"] <= 100 and saved["psnr"] > 0
    assert [set(epoch) >= {"train/utility_loss", "train/adversary_score"}
            for epoch in saved["history"]] == [True]

    # The worst-case suite: multi-query averaging of the fresh noise, and keyed noise, with no
    # Obfuscator in sight.
    suite = WorstCaseResult.from_dict(saved["worst_case"])
    assert [row.queries for row in suite.fresh] == [1, 4]
    assert suite.fresh[1].identical_queries is False
    assert suite.keyed is not None, suite.keyed_skipped
    assert [row.queries for row in suite.keyed.rows] == [1, 4]
    assert suite.keyed.rows[1].identical_queries is True
    assert 0 <= suite.keyed.key_leaked <= 100
    assert suite.keyed.share_with_new_noise == 1.0
    assert saved["privacy_worst_case"] is not None

    report = (run_dir / "report.md").read_text()
    assert "toy" in report and "Multi-query averaging" in report
    assert table_row("Toy", saved)["privacy"] == saved["privacy"]

    exported = export_client(run_dir, "onnx")
    assert exported.check is not None and exported.check.passed, exported.check
    assert exported.metadata["client_kind"] == "noise" and exported.metadata["method"] == "toy"
    z = ExportedClient(exported.path)(torch.rand(2, 3, 32, 32))
    assert z.shape == (2, CHANNELS, 16, 16)

    latency = latency_of_run(run_dir, batch_sizes=(1,), runs=2, warmup=1, progress=False)
    assert {row.client for row in latency.rows} == {"toy"}
    assert all(row.median_ms > 0 for row in latency.rows)
