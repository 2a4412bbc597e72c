"""MaxEnt-ARL: the entropy objective, the adversary's own step, its settings and a vector z."""

import copy
import math
import warnings

import pytest
import torch
from torch import nn

from noisyarl.data.base import LabelInfo
from noisyarl.data.tasks import Task
from noisyarl.methods import method_params
from noisyarl.methods.base import DefenceSpec
from noisyarl.methods.maxent import MaxEntARL, MaxEntParams, predictive_entropy
from noisyarl.models import ReconstructionDecoder
from noisyarl.runtime import StepContext

SMILING = Task("Smiling", LabelInfo(kind="binary"))
MALE = Task("Male", LabelInfo(kind="binary"))
RACE = Task("race", LabelInfo(kind="multiclass", num_classes=4))
LANDMARKS = Task("landmarks", LabelInfo(kind="regression", dim=10))
CPU = StepContext(torch.device("cpu"))
#: Small images (CIFAR stem) keep the ResNet18 client fast on a CPU.
SIDE = 16


def _defence(private: Task = MALE, utility: Task = SMILING, **params) -> MaxEntARL:
    torch.manual_seed(0)
    spec = DefenceSpec(utility=utility, private=private, split=0, sigma=0.0, noise=False,
                       params=MaxEntParams(**params), image_size=SIDE, cifar_stem=True)
    return MaxEntARL(spec)


def _targets(task: Task, size: int, generator: torch.Generator) -> torch.Tensor:
    if task.kind == "regression":
        return torch.rand(size, task.num_outputs, generator=generator)
    classes = 2 if task.kind == "binary" else task.num_outputs
    return torch.randint(0, classes, (size,), generator=generator)


def _batch(private: Task = MALE, utility: Task = SMILING, size: int = 8):
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(size, 3, SIDE, SIDE, generator=generator)
    return images, _targets(utility, size, generator), _targets(private, size, generator)


def _max_entropy(task: Task) -> float:
    return math.log(2 if task.kind == "binary" else task.num_outputs)


@torch.no_grad()
def _adversary_entropy(defence: MaxEntARL, images: torch.Tensor) -> float:
    return float(predictive_entropy(defence.adversary(defence.client(images)),
                                    defence.spec.private.kind).mean())


def _entropy_against_a_frozen_adversary(private: Task, alpha: float) -> tuple[float, float]:
    """Adversary entropy before and after 10 train steps, the adversary reset after each step."""
    # Client lr 1e-4 (the authors'): against an adversary whose last layer is scaled x20, ten
    # Adam steps at 1e-3 overshoot the uniform point; the test is about the direction.
    defence = _defence(private, alpha=alpha, client_lr=1e-4)
    images, utility, target = _batch(private)
    with torch.no_grad():
        defence.adversary[-1].weight.mul_(20.0)  # a confident adversary: low entropy
    frozen = copy.deepcopy(defence.adversary.state_dict())
    defence.train()
    defence.adversary.eval()
    optimizers = defence.configure_optimizers()
    before = _adversary_entropy(defence, images)
    for _ in range(10):
        defence.train_step(images, utility, target, optimizers, CPU)
        defence.adversary.load_state_dict(frozen)
    return before, _adversary_entropy(defence, images)


@pytest.mark.parametrize("private", [RACE, MALE], ids=["multiclass", "binary"])
def test_client_steps_push_a_frozen_adversary_towards_uniform(private):
    # The characteristic mechanism: against a fixed, confident adversary, the client's steps
    # (alpha near 1) move z to where the adversary's prediction approaches uniform (log k).
    limit = _max_entropy(private)
    before, after = _entropy_against_a_frozen_adversary(private, alpha=0.99)
    assert limit - before > 0.1
    assert limit - after < 0.25 * (limit - before)
    # Without the entropy term the same steps leave the adversary about as confident.
    before, after = _entropy_against_a_frozen_adversary(private, alpha=0.0)
    assert limit - after > 0.75 * (limit - before)


def test_train_step_moves_all_three_models_with_a_regression_utility():
    defence = _defence(RACE, LANDMARKS)
    images, utility, target = _batch(RACE, LANDMARKS)
    optimizers = defence.configure_optimizers()
    snapshots = {name: [p.detach().clone() for p in getattr(defence, name).parameters()]
                 for name in ("client", "utility_head", "adversary")}
    defence.train()
    values = defence.train_step(images, utility, target, optimizers, CPU)
    assert set(values) == {"utility_loss", "adversary_entropy", "adversary_loss",
                           "utility_correct", "adversary_correct"}
    assert all(not value.requires_grad for value in values.values())
    assert 0 < float(values["adversary_entropy"]) <= math.log(4) + 1e-6
    for name, before in snapshots.items():
        after = list(getattr(defence, name).parameters())
        assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True)), name


def test_entropy_matches_its_definition_and_survives_huge_logits():
    logits = torch.tensor([[0.0, 0.0, 0.0, 0.0], [2.0, -1.0, 0.5, 0.0]])
    p = torch.softmax(logits, dim=1)
    expected = -(p * p.log()).sum(dim=1)
    assert torch.allclose(predictive_entropy(logits, "multiclass"), expected)
    assert float(predictive_entropy(logits, "multiclass")[0]) == pytest.approx(math.log(4))

    binary = torch.tensor([[0.0], [1.5], [-3.0]])
    q = torch.sigmoid(binary).reshape(-1)
    expected = -(q * q.log() + (1 - q) * (1 - q).log())
    assert torch.allclose(predictive_entropy(binary, "binary"), expected)
    assert float(predictive_entropy(binary, "binary")[0]) == pytest.approx(math.log(2))

    for kind, huge in (("multiclass", [[1e4, -1e4, 0.0, 0.0]]), ("binary", [[1e4], [-1e4]])):
        huge = torch.tensor(huge, requires_grad=True)
        entropy = predictive_entropy(huge, kind)
        entropy.sum().backward()
        entropy = entropy.detach()
        assert torch.isfinite(entropy).all() and float(entropy.max()) < 1e-6, kind
        assert torch.isfinite(huge.grad).all(), kind


def test_a_regression_private_task_is_rejected_with_the_reason():
    with pytest.raises(ValueError, match="regression label has no predictive distribution"):
        _defence(private=LANDMARKS)


@pytest.mark.parametrize(("field", "value"), [
    ("alpha", 1.0), ("alpha", -0.1), ("alpha", "0.5"), ("embedding_dim", 0),
    ("embedding_dim", 12.5), ("dropout", 1.0), ("head_dropout", -0.1), ("client_lr", 0.0),
    ("head_lr", float("nan")), ("client_weight_decay", -1.0),
])
def test_bad_params_are_rejected_naming_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        MaxEntParams(**{field: value})


def test_the_old_encoder_keys_still_work_with_a_warning_naming_the_new_key():
    with pytest.warns(FutureWarning, match=r"encoder_lr is deprecated; write method\.params\."
                                           r"client_lr"):
        params = method_params("maxent_arl", {"encoder_lr": 3e-4})
    assert params.client_lr == 3e-4
    with pytest.warns(FutureWarning, match=r"compare\[1\]\.method\.params\.client_weight_decay"):
        params = method_params("maxent_arl", {"encoder_weight_decay": 0.0}, "compare[1].method")
    assert params.client_weight_decay == 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the new keys read without a warning
        assert method_params("maxent_arl", {"client_lr": 2e-4}).client_lr == 2e-4
    with pytest.raises(ValueError, match="both encoder_lr and client_lr"):
        method_params("maxent_arl", {"encoder_lr": 1e-4, "client_lr": 2e-4})
    with pytest.raises(ValueError, match="client_lr must be"), pytest.warns(FutureWarning):
        method_params("maxent_arl", {"encoder_lr": -1.0})  # checked under the new name


def test_optimisers_follow_the_authors_code_and_anneal_over_the_run():
    defence = _defence(**vars(MaxEntParams.authors()))
    optimizers = defence.configure_optimizers()
    groups = optimizers["main"].param_groups
    assert [(g["lr"], g["weight_decay"]) for g in groups] == [(1e-4, 1e-2), (1e-2, 1e-3)]
    adversary_group = optimizers["adversary"].param_groups[0]
    assert (adversary_group["lr"], adversary_group["weight_decay"]) == (1e-2, 1e-3)
    schedulers = defence.configure_schedulers(optimizers, epochs=4)
    lrs = []
    for _ in range(4):
        for name, scheduler in schedulers.items():
            optimizers[name].step()  # no gradients: a no-op that keeps the call order valid
            scheduler.step()
        lrs.append([g["lr"] for name in ("main", "adversary")
                    for g in optimizers[name].param_groups])
    # Cosine annealing: halfway through the run each rate is halfway to its floor.
    assert lrs[1] == pytest.approx([(1e-4 + 1e-7) / 2, (1e-2 + 1e-7) / 2, (1e-2 + 1e-6) / 2])
    assert lrs[3] == pytest.approx([1e-7, 1e-7, 1e-6])


def test_client_sends_a_vector_with_dropout_in_its_blocks_and_is_labelled_noise_free():
    defence = _defence(RACE, embedding_dim=32).eval()
    images, _, _ = _batch(RACE, size=4)
    with torch.no_grad():
        z = defence.client(images)
        attacked = defence.make_attacker(RACE.num_outputs).eval()(z)
    assert z.shape == (4, 32)
    assert attacked.shape == (4, RACE.num_outputs)
    assert sum(isinstance(m, nn.Dropout) for m in defence.client.modules()) == 8  # 8 blocks
    facts = defence.describe()
    assert (facts["method"], facts["display_name"]) == ("maxent_arl", "MaxEnt-ARL")
    assert (facts["split"], facts["sigma"], facts["noise"]) == (None, 0.0, False)
    assert facts["params"]["embedding_dim"] == 32 and facts["params"]["client_lr"] == 1e-3


def test_defaults_are_the_short_budget_settings_and_the_authors_settings_stay_one_call_away():
    project, authors = MaxEntParams(), MaxEntParams.authors(alpha=0.4)
    assert (project.client_lr, project.head_lr, project.dropout, project.head_dropout) == (
        1e-3, 1e-3, 0.0, 0.0)
    assert project.client_weight_decay == project.head_weight_decay == 0.0
    assert (authors.client_lr, authors.client_weight_decay) == (1e-4, 1e-2)
    assert (authors.head_lr, authors.head_weight_decay) == (1e-2, 1e-3)
    assert (authors.dropout, authors.head_dropout, authors.alpha) == (0.5, 0.5, 0.4)
    dropouts = [m.p for m in _defence(**vars(authors)).client.modules()
                if isinstance(m, nn.Dropout)]
    assert dropouts == [0.5] * 8


def test_the_vector_z_can_be_decoded_to_an_image_that_depends_on_z():
    defence = _defence().eval()
    images, _, _ = _batch(size=4)
    with torch.no_grad():
        z = defence.client(images)
        decoder = ReconstructionDecoder(tuple(z.shape[1:]), image_size=SIDE).eval()
        reconstructions = decoder(z)
    assert reconstructions.shape == images.shape
    assert float(reconstructions.min()) >= 0 and float(reconstructions.max()) <= 1
    assert float((reconstructions[0] - reconstructions[1]).abs().max()) > 1e-4
