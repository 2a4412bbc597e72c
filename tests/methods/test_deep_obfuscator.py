"""DeepObfuscator: sign conventions of its two adversarial terms, shapes and parameters."""

import copy

import pytest
import torch

from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.methods.base import DefenceSpec
from noisyarl.methods.deep_obfuscator import (
    DeepObfuscator,
    DeepObfuscatorParams,
    reconstruction_error,
)
from noisyarl.runtime import StepContext

SMILING = Task("Smiling", LabelInfo(kind="binary"))
MALE = Task("Male", LabelInfo(kind="binary"))
AGE = Task("age", LabelInfo(kind="multiclass", num_classes=9))
RACE = Task("race", LabelInfo(kind="multiclass", num_classes=7))
LANDMARKS = Task("landmarks", LabelInfo(kind="regression", dim=10))
BATCH, SIZE = 8, 32
CPU = StepContext(torch.device("cpu"))


def _defence(utility: Task = SMILING, private: Task = MALE, **params) -> DeepObfuscator:
    torch.manual_seed(0)
    spec = DefenceSpec(utility=utility, private=private, split=0, sigma=0.0, noise=False,
                       params=DeepObfuscatorParams(**params), image_size=SIZE, cifar_stem=True)
    return DeepObfuscator(spec)


def _targets(task: Task, generator: torch.Generator) -> torch.Tensor:
    if task.kind == "regression":
        return torch.rand(BATCH, task.num_outputs, generator=generator)
    classes = 2 if task.kind == "binary" else task.num_outputs
    return torch.randint(0, classes, (BATCH,), generator=generator)


def _batch(utility: Task = SMILING, private: Task = MALE):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(BATCH, 3, SIZE, SIZE, generator=generator)
    return images, _targets(utility, generator), _targets(private, generator)


def _deterministic_training_mode(defence: DeepObfuscator) -> None:
    """BN on batch statistics (a function of the weights alone), dropout off."""
    defence.train()
    for module in defence.modules():
        if isinstance(module, torch.nn.Dropout):
            module.eval()


def _reconstruction_error(defence: DeepObfuscator, images: torch.Tensor) -> float:
    _deterministic_training_mode(defence)
    with torch.no_grad():
        return float(reconstruction_error(defence.reconstructor(defence.client(images)), images))


def _adversary_loss(defence: DeepObfuscator, images: torch.Tensor, private: torch.Tensor) -> float:
    _deterministic_training_mode(defence)
    with torch.no_grad():
        return float(defence.spec.private.loss(defence.adversary(defence.client(images)), private))


def _snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def _moved(before: list[torch.Tensor], module: torch.nn.Module) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, module.parameters(), strict=True))


def _error_change_after_one_step(lambda2: float) -> float:
    """Change of the reconstruction adversary's MSE (adversary held at its pre-step weights)
    caused by one train_step of the obfuscator."""
    defence = _defence(lambda2=lambda2)
    images, utility, private = _batch()
    reconstructor_before = copy.deepcopy(defence.reconstructor.state_dict())
    before = _reconstruction_error(defence, images)
    defence.train_step(images, utility, private, defence.configure_optimizers(), CPU)
    defence.reconstructor.load_state_dict(reconstructor_before)
    return _reconstruction_error(defence, images) - before


def test_obfuscator_step_with_large_lambda2_raises_the_fixed_reconstructors_error():
    # The defining mechanism: E maximises the reconstruction adversary's error. With the
    # reconstruction term dominating, one step must make the same adversary reconstruct worse,
    # and clearly more so than a step that ignores reconstruction (lambda2 = 0).
    raised = _error_change_after_one_step(lambda2=1000.0)
    ignored = _error_change_after_one_step(lambda2=0.0)
    assert raised > 0
    assert raised > ignored


@pytest.mark.parametrize(
    ("utility", "private"),
    # Binary utility and private tasks go through train_step in the sign-convention test above.
    [(AGE, LANDMARKS), (LANDMARKS, RACE)],
    ids=["multiclass-regression", "regression-multiclass"],
)
def test_train_step_updates_all_four_networks_for_every_task_kind(utility, private):
    defence = _defence(utility, private)
    images, utility_target, private_target = _batch(utility, private)
    networks = ("client", "utility_head", "adversary", "reconstructor")
    before = {name: _snapshot(getattr(defence, name)) for name in networks}
    defence.train()
    values = defence.train_step(images, utility_target, private_target,
                                defence.configure_optimizers(), CPU)
    assert set(values) == {"utility_loss", "adversary_loss", "reconstruction_loss",
                           "utility_correct", "adversary_correct"}
    assert all(not v.requires_grad and torch.isfinite(v) for v in values.values())
    assert 0 < float(values["reconstruction_loss"]) < 1  # per-pixel MSE of [0, 1] images
    for name in networks:
        assert _moved(before[name], getattr(defence, name)), name


def test_shapes_of_client_heads_attacker_and_reconstruction():
    defence = _defence(AGE, RACE).eval()
    images, _, _ = _batch()
    with torch.no_grad():
        z = defence.client(images)
        assert z.shape == (BATCH, 128, SIZE // 4, SIZE // 4)
        assert defence.predict_utility(images).shape == (BATCH, AGE.num_outputs)
        assert defence.adversary(z).shape == (BATCH, RACE.num_outputs)
        assert defence.reconstructor(z).shape == images.shape
        attacker = defence.make_attacker(5).eval()
        assert attacker(z).shape == (BATCH, 5)
    # A fresh attacker shares no weights with the proxy adversary.
    adversary_storage = {p.data_ptr() for p in defence.adversary.parameters()}
    assert not adversary_storage & {p.data_ptr() for p in attacker.parameters()}


def test_describe_reports_no_split_and_no_noise():
    defence = _defence()
    assert defence.describe() == {
        "method": "deep_obfuscator", "display_name": "DeepObfuscator", "obfuscates": True,
        "split": None, "sigma": 0.0, "noise": False,
        "params": {"lambda1": 0.01, "lambda2": 1.0, "lr": 1e-4, "beta1": 0.9, "beta2": 0.999}}
    assert not DeepObfuscator.has_split and not DeepObfuscator.has_noise
    assert DeepObfuscator.obfuscates


@pytest.mark.parametrize(
    ("field", "value"),
    [("lambda1", -0.1), ("lambda2", -1.0), ("lambda2", float("nan")), ("lr", 0.0),
     ("beta1", 1.0), ("beta2", -0.5)],
)
def test_bad_params_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        DeepObfuscatorParams(**{field: value})


def test_default_params_are_the_documented_ones():
    params = DeepObfuscatorParams()
    assert (params.lambda1, params.lambda2, params.lr) == (0.01, 1.0, 1e-4)
