"""Shared fixtures of the defence tests: tiny tasks, a spec/defence factory by keywords, a tiny
batch, and the contract every registered defence meets (:class:`DefenceContract`).

The contract is a fixture rather than a module so that ``test_contract.py`` (every name in
``METHODS``) and ``test_toy_defence.py`` (a defence registered inside the test) run the same
checks.
"""

from __future__ import annotations

import dataclasses
import json
import math
from types import SimpleNamespace

import pytest
import torch

from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.deploy.export import (
    client_for_export,
    noise_modules,
    noise_sources,
    onnx_bytes,
    verify_export,
)
from noisyarl.methods import METHODS, Defence, DefenceSpec, build_defence, method_params
from noisyarl.models.noise import GaussianNoise, NoiseFree
from noisyarl.runtime import StepContext

#: Side of the tiny images: the CIFAR stem keeps every ResNet18 and VGG client fast on a CPU.
SIDE = 32
#: Images per tiny batch.
BATCH = 4
#: σ of the noisy defences' specs: far from 0 and from 1, so a mix-up shows.
SIGMA = 0.7
#: K of the specs: not DISCO's fixed split (2), so ``describe`` shows which one it reports.
SPLIT = 1
CPU = StepContext(torch.device("cpu"))


@pytest.fixture(scope="session")
def tasks() -> SimpleNamespace:
    """Tiny tasks: ``utility`` and ``private`` binary, ``multiclass`` (3 classes),
    ``regression`` (4 values)."""
    return SimpleNamespace(
        utility=Task("Smiling", LabelInfo(kind="binary")),
        private=Task("Male", LabelInfo(kind="binary")),
        multiclass=Task("race", LabelInfo(kind="multiclass", num_classes=3)),
        regression=Task("landmarks", LabelInfo(kind="regression", dim=4)),
    )


@pytest.fixture(scope="session")
def make_spec(tasks):
    """``make_spec(method, *, utility=, private=, split=, sigma=, noise=, image_size=,
    cifar_stem=, **params)`` -> a :class:`DefenceSpec` built by keywords, ``params`` validated
    by :func:`method_params`; σ is 0 for a defence without a noise module (as configs require).
    """

    def make(method: str, *, utility: Task | None = None, private: Task | None = None,
             split: int = SPLIT, sigma: float = SIGMA, noise: bool = True,
             image_size: int = SIDE, cifar_stem: bool = True, **params) -> DefenceSpec:
        return DefenceSpec(
            utility=utility or tasks.utility, private=private or tasks.private, split=split,
            sigma=sigma if METHODS[method].has_noise else 0.0, noise=noise,
            params=method_params(method, params), image_size=image_size, cifar_stem=cifar_stem)

    return make


@pytest.fixture(scope="session")
def make_defence(make_spec):
    """``make_defence(method, *, seed=0, **spec_keywords)`` -> a fresh defence (see
    ``make_spec``), its weights drawn after ``torch.manual_seed(seed)``."""

    def make(method: str, *, seed: int = 0, **keywords) -> Defence:
        spec = make_spec(method, **keywords)
        torch.manual_seed(seed)
        return build_defence(method, spec)

    return make


def _targets(task: Task, size: int, generator: torch.Generator) -> torch.Tensor:
    if task.kind == "regression":
        return torch.rand(size, task.num_outputs, generator=generator)
    classes = 2 if task.kind == "binary" else task.num_outputs
    return torch.randint(0, classes, (size,), generator=generator)


@pytest.fixture(scope="session")
def tiny_batch(tasks):
    """``tiny_batch(utility=, private=, size=BATCH, side=SIDE, seed=1)`` -> (images in [0, 1]
    [size, 3, side, side], utility targets, private targets)."""

    def make(utility: Task | None = None, private: Task | None = None, size: int = BATCH,
             side: int = SIDE, seed: int = 1):
        generator = torch.Generator().manual_seed(seed)
        images = torch.rand(size, 3, side, side, generator=generator)
        return (images, _targets(utility or tasks.utility, size, generator),
                _targets(private or tasks.private, size, generator))

    return make


def _seeded(module, images: torch.Tensor, seed: int = 7) -> torch.Tensor:
    """``module(images)`` with the noise draws fixed by ``seed``."""
    torch.manual_seed(seed)
    with torch.no_grad():
        return module(images)


class DefenceContract:
    """What every registered defence must do for training, attacks, reports and export to take
    it unchanged. Each ``check_*`` takes the registry name; :meth:`check_all` runs them all."""

    def __init__(self, make_defence, make_spec, tiny_batch) -> None:
        self.make_defence, self.make_spec, self.tiny_batch = make_defence, make_spec, tiny_batch

    def check_all(self, name: str, tmp_path) -> None:
        for check in (self.check_class, self.check_train_step, self.check_predict_utility,
                      self.check_attacker, self.check_state_dict_round_trip, self.check_describe,
                      self.check_noise_hook):
            check(name)
        self.check_export(name, tmp_path)

    def check_class(self, name: str) -> None:
        """Registered under its name, a display name, defaults for every param, and
        ``describe`` inherited (its facts follow from the class flags alone)."""
        cls = METHODS[name]
        assert issubclass(cls, Defence) and cls.name == name
        assert isinstance(cls.display_name, str) and cls.display_name.strip()
        assert dataclasses.is_dataclass(cls.Params)
        method_params(name, {})  # every field has a default: untrained_defence builds it
        overriding = [k.__name__ for k in cls.__mro__ if k is not Defence and "describe" in vars(k)]
        assert not overriding, f"describe() is overridden in {overriding}"
        assert cls.fixed_split is None or not cls.has_split

    def check_train_step(self, name: str) -> None:
        """One step on a tiny batch: detached finite scalars, ``*_correct`` sums within the
        batch, at least one loss, and every optimiser moves some of its parameters."""
        defence = self.make_defence(name).train()
        optimizers = defence.configure_optimizers()
        assert optimizers and all(isinstance(o, torch.optim.Optimizer)
                                  for o in optimizers.values())
        before = {key: [p.detach().clone() for g in o.param_groups for p in g["params"]]
                  for key, o in optimizers.items()}
        images, utility_target, private_target = self.tiny_batch()
        values = defence.train_step(images, utility_target, private_target, optimizers, CPU)
        assert any(key.endswith("_loss") for key in values), values
        assert "utility_correct" in values
        for key, value in values.items():
            assert isinstance(value, torch.Tensor) and value.dim() == 0, key
            assert not value.requires_grad and math.isfinite(float(value)), key
            if key.endswith("_correct"):
                assert 0 <= float(value) <= len(images), key
        for key, optimizer in optimizers.items():
            after = [p for g in optimizer.param_groups for p in g["params"]]
            assert any(not torch.equal(a, b) for a, b in zip(before[key], after, strict=True)), \
                f"optimiser {key!r} moved none of its parameters"
        schedulers = defence.configure_schedulers(optimizers, epochs=2)
        assert set(schedulers) <= set(optimizers)

    def check_predict_utility(self, name: str) -> None:
        defence = self.make_defence(name).eval()
        images, _, _ = self.tiny_batch()
        with torch.no_grad():
            outputs = defence.predict_utility(images)
        assert outputs.shape == (len(images), defence.spec.utility.num_outputs)
        assert torch.isfinite(outputs).all()

    def check_attacker(self, name: str) -> None:
        """``make_attacker`` maps z to [B, n] and shares no weights with the defence."""
        defence = self.make_defence(name).eval()
        images, _, _ = self.tiny_batch()
        with torch.no_grad():
            z = defence.client(images)
            attacker = defence.make_attacker(5).eval()
            assert attacker(z).shape == (len(images), 5)
        own = {p.data_ptr() for p in defence.parameters()}
        assert not own & {p.data_ptr() for p in attacker.parameters()}
        assert any(p.requires_grad for p in attacker.parameters())

    def check_state_dict_round_trip(self, name: str) -> None:
        """Weights and buffers loaded into a fresh instance (other initial weights) give the
        same z and utility outputs in eval mode, noise draws seeded."""
        trained = self.make_defence(name, seed=0).train()
        images, utility_target, private_target = self.tiny_batch()
        trained.train_step(images, utility_target, private_target,
                           trained.configure_optimizers(), CPU)  # moves the BN statistics too
        fresh = self.make_defence(name, seed=1)
        fresh.load_state_dict(trained.state_dict())
        trained.eval(), fresh.eval()
        assert torch.equal(_seeded(trained.client, images), _seeded(fresh.client, images))
        assert torch.equal(_seeded(trained.predict_utility, images),
                           _seeded(fresh.predict_utility, images))

    def check_describe(self, name: str) -> None:
        """``describe()`` is JSON-ready and says what the class flags say."""
        cls = METHODS[name]
        defence = self.make_defence(name)
        spec = defence.spec
        facts = defence.describe()
        assert set(facts) == {"method", "display_name", "obfuscates", "split", "sigma", "noise",
                              "params"}
        assert (facts["method"], facts["display_name"]) == (name, cls.display_name)
        assert facts["obfuscates"] is cls.obfuscates
        assert facts["split"] == (spec.split if cls.has_split else cls.fixed_split)
        assert facts["sigma"] == (SIGMA if cls.has_noise else 0.0)
        assert facts["noise"] is cls.has_noise  # the spec's noise switch is on
        assert facts["params"] == dataclasses.asdict(spec.params)
        assert json.loads(json.dumps(facts)) == facts
        switched_off = self.make_defence(name, noise=False).describe()
        assert switched_off["noise"] is False

    def check_noise_hook(self, name: str) -> None:
        """``noise_module()`` is None without ``has_noise``; with it, the client's noise module,
        σ and switch from the spec, adding σ·ε to the client's output."""
        cls = METHODS[name]
        defence = self.make_defence(name).eval()
        noise = defence.noise_module()
        if not cls.has_noise:
            assert noise is None
            assert not noise_modules(defence.client)  # export finds nothing to switch off
            return
        assert isinstance(noise, GaussianNoise)
        assert any(module is noise for module in defence.client.modules())
        assert (noise.sigma, noise.enabled) == (SIGMA, True)
        images, _, _ = self.tiny_batch()
        with torch.no_grad():
            h = NoiseFree(defence.client, noise)(images)
            residual = defence.client(images) - h
        assert noise.enabled  # switched back on
        assert torch.equal(h, NoiseFree(defence.client, noise)(images))  # deterministic
        assert float(residual.std()) == pytest.approx(SIGMA, rel=0.1)
        assert abs(float(residual.mean())) < 0.1 * SIGMA
        assert self.make_defence(name, noise=False).noise_module().active is False

    def check_export(self, name: str, tmp_path) -> None:
        """The client exports to ONNX (noise inside) and matches PyTorch, as in
        ``noisyarl export``: a noise module of σ, and learned noise that is no noise module
        (Shredder's, ``has_noise`` false), stay inside the graph with their standard deviation."""
        client = self.make_defence(name).client
        shape = (3, SIDE, SIDE)
        path = tmp_path / f"{name}.onnx"
        metadata = {"noise": True, "input": {"shape": ["B", *shape]}, "output": {"shape": ["B"]}}
        path.write_bytes(onnx_bytes(client_for_export(client), shape, metadata))
        check = verify_export(path, client, shape)
        assert check.passed, check
        assert check.noise == bool(noise_sources(client))
        assert check.noise or not METHODS[name].has_noise
        if METHODS[name].has_noise:
            assert check.residual_std == pytest.approx(SIGMA, rel=0.03)


@pytest.fixture(scope="session")
def defence_contract(make_defence, make_spec, tiny_batch) -> DefenceContract:
    """The :class:`DefenceContract` checks."""
    return DefenceContract(make_defence, make_spec, tiny_batch)
