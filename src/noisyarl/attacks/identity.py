"""Identity leakage: re-identifying people from their obfuscated features.

The splits are identity-disjoint (CelebA's partition, the face generator's too), so matching
happens within the test split: every test image is a probe, every *other* test image is the
gallery. Two attacks, both on pooled z (average-pooled to at most 8 x 8 per channel):

- ``nearest_neighbour``: cosine similarity of z standardised by the training split's statistics.
- ``metric_head``: a small MLP embedding (pooled z -> 256 -> 64, L2-normalised) trained on the
  *training* identities with a cosine-softmax classifier (scale 16), fresh noise in every pass,
  until the validation split's top-1 rate (also identity-disjoint) stops improving
  (:func:`~noisyarl.attacks.base.fit_until_plateau`); the best-validation epoch is kept. The
  best test epoch is given too, labelled as such.

Figures: the top-1 identification rate (the nearest other image shows the same person; probes
whose identity has one test image are left out) with its chance level, and the ROC AUC of
same-versus-different pairs scored by similarity (all pairs of the first ``max_images`` test
images).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from noisyarl.attacks.base import (
    Attack,
    AttackResult,
    AttackSettings,
    LearningCurve,
    fit_until_plateau,
)
from noisyarl.attacks.features import FeaturePool, collect_features, pooled_dim, standardise
from noisyarl.attacks.view import AttackTarget, ZView
from noisyarl.data.base import SPLITS, ImageSplit
from noisyarl.evaluation.metrics import roc_auc, top1_identification_rate
from noisyarl.utils.seeding import epoch_generator

IDENTITY_LABEL = "identity"
#: Pooled grid side of the identity attacks (finer than the attribute probes: identity lives in
#: details such as face shape and colours).
IDENTITY_POOL_SIDE = 8
EMBEDDING_DIM = 64
HIDDEN_WIDTH = 256
#: Scale of the cosine-softmax logits (NormFace-style training of the metric head).
COSINE_SCALE = 16.0
#: Test images used for matching (all pairs among them are scored).
MAX_IMAGES = 2000


def identity_metrics(embeddings: torch.Tensor, identities: torch.Tensor) -> dict[str, float]:
    """Top-1 rate, its chance level and pair ROC AUC of embeddings [N, D] (cosine similarity)."""
    unit = F.normalize(embeddings.double(), dim=1)
    similarity = unit @ unit.T
    same = identities[:, None] == identities[None, :]
    upper = torch.triu(torch.ones_like(same), diagonal=1)
    return {
        "top1": top1_identification_rate(similarity, identities),
        "top1_chance": _top1_chance(identities),
        "auc": roc_auc(similarity[upper], same[upper]),
    }


def _top1_chance(identities: torch.Tensor) -> float:
    """Expected top-1 rate of a random match: mean over matchable probes of (n_same−1)/(N−1)."""
    same_counts = (identities[:, None] == identities[None, :]).sum(dim=1)
    matchable = same_counts > 1
    return float(((same_counts[matchable] - 1) / (identities.shape[0] - 1)).double().mean())


class MetricHead(nn.Module):
    """Pooled z -> standardised -> Linear-BN-ReLU -> Linear -> L2-normalised embedding [B, 64]."""

    def __init__(self, z_shape: tuple[int, ...]) -> None:
        super().__init__()
        dim = pooled_dim(z_shape, IDENTITY_POOL_SIDE)
        self.body = nn.Sequential(
            FeaturePool(IDENTITY_POOL_SIDE), nn.BatchNorm1d(dim, affine=False),
            nn.Linear(dim, HIDDEN_WIDTH), nn.BatchNorm1d(HIDDEN_WIDTH), nn.ReLU(inplace=True),
            nn.Linear(HIDDEN_WIDTH, EMBEDDING_DIM),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.body(z), dim=1)


@dataclass
class IdentityResult(AttackResult):
    """Both re-identification attacks on the test split (identity-disjoint from training).

    nearest_neighbour / metric_head: ``top1``, ``top1_chance`` and ``auc``; the metric head's
    figures are at its best validation epoch, with its best test epoch's beside them
    (``top1_best_test_epoch``, ``auc_best_test_epoch``: the paper-style optimistic figure).
    """

    nearest_neighbour: dict[str, float]
    metric_head: dict[str, float]
    test_images: int
    test_identities: int

    def cells(self) -> dict[str, Any]:
        attacks = (self.nearest_neighbour, self.metric_head)
        return {"identity_top1": max(attack["top1"] for attack in attacks),
                "identity_auc": max(attack["auc"] for attack in attacks),
                "identity_top1_chance": self.metric_head["top1_chance"],
                "epochs": self.curve.epochs_run}


def run_identity_attack(target: AttackTarget, settings: AttackSettings, *,
                        max_images: int = MAX_IMAGES) -> IdentityResult:
    """Both re-identification attacks on ``target``'s z.

    Raises ``ValueError`` when the splits have no ``identity`` label.
    """
    splits, view = target.splits, target.view
    for name in SPLITS:
        if IDENTITY_LABEL not in splits[name].labels:
            raise ValueError(f"the {name} split has no {IDENTITY_LABEL!r} label")
    valid, test = (_first(splits[name], max_images) for name in ("valid", "test"))
    batch = settings.eval_batch_size
    train_features = collect_features(view, splits["train"], batch_size=batch,
                                      pool_side=IDENTITY_POOL_SIDE)
    test_features = collect_features(view, test, batch_size=batch, pool_side=IDENTITY_POOL_SIDE)
    _, test_standard = standardise(train_features, test_features)
    nearest = identity_metrics(test_standard, test.labels[IDENTITY_LABEL])
    curve, head = train_metric_head(view, splits["train"], valid, test, settings)
    return IdentityResult(attack="identity", curve=curve, nearest_neighbour=nearest,
                          metric_head=head, test_images=len(test),
                          test_identities=int(test.labels[IDENTITY_LABEL].unique().numel()))


def train_metric_head(view: ZView, train: ImageSplit, valid: ImageSplit, test: ImageSplit,
                      settings: AttackSettings) -> tuple[LearningCurve, dict[str, float]]:
    """Train :class:`MetricHead` on ``train``'s identities until the validation top-1 rate
    stops improving; the test figures at the best validation epoch and at the best test epoch.
    """
    context = view.context
    torch.manual_seed(settings.seed)
    classes, targets = train.labels[IDENTITY_LABEL].unique(return_inverse=True)
    head = context.prepare_module(MetricHead(view.z_shape(train)))
    centres = nn.Parameter(torch.randn(len(classes), EMBEDDING_DIM, device=context.device))
    optimizer = torch.optim.Adam([*head.parameters(), centres], lr=settings.lr, foreach=True)
    indexed = ImageSplit(images=train.images, labels={"target": targets},
                         label_info=train.label_info)

    def train_epoch(epoch: int) -> float:
        head.train()
        total, count = 0.0, 0
        generator = epoch_generator(settings.seed, epoch, "leakage")
        for _, z, labels in view.batches(indexed, settings.batch_size, shuffle=True,
                                         generator=generator, training=True):
            logits = COSINE_SCALE * head(z) @ F.normalize(centres, dim=1).T
            loss = F.cross_entropy(logits, labels["target"])
            context.step(loss, optimizer)
            total, count = total + float(loss.detach()) * z.shape[0], count + z.shape[0]
        return total / max(count, 1)

    def validate(epoch: int) -> dict[str, float]:
        record = {}
        for name, split in (("valid", valid), ("test", test)):
            figures = identity_metrics(_embed(view, head, split, settings.eval_batch_size),
                                       split.labels[IDENTITY_LABEL])
            record.update({f"{name}_{key}": value for key, value in figures.items()})
        # Validation identities are not training classes: no validation cross-entropy, the
        # (negated) top-1 rate stands in for the loss of the plateau rule.
        return {"valid": record["valid_top1"], "valid_loss": -record["valid_top1"],
                "test": record["test_top1"], **record}

    curve = fit_until_plateau(head, optimizer, train_epoch, validate, settings,
                              steps_per_epoch=max(len(train) // settings.batch_size, 1),
                              higher_is_better=True, desc="identity attack")
    chosen = curve.best()
    best_test = max(curve.records, key=lambda record: record["test_top1"])
    return curve, {
        "top1": chosen["test_top1"], "auc": chosen["test_auc"],
        "top1_chance": chosen["test_top1_chance"], "epoch": chosen["epoch"],
        "top1_best_test_epoch": best_test["test_top1"],
        "auc_best_test_epoch": best_test["test_auc"],
    }


class IdentityAttack(Attack):
    """Re-identification of test people from their z (datasets with identities)."""

    name = "identity"
    result_type = IdentityResult
    needs_task = False

    def run(self, target: AttackTarget, settings: AttackSettings) -> IdentityResult:
        return run_identity_attack(target, settings)


@torch.no_grad()
def _embed(view: ZView, head: nn.Module, split: ImageSplit, batch_size: int) -> torch.Tensor:
    head.eval()
    return torch.cat([head(z).cpu() for _, z, _ in view.batches(split, batch_size, shard=False)])


def _first(split: ImageSplit, count: int) -> ImageSplit:
    return split if len(split) <= count else split.subset(torch.arange(count))


__all__ = ["IDENTITY_LABEL", "IdentityAttack", "IdentityResult", "MetricHead", "identity_metrics",
           "run_identity_attack"]
