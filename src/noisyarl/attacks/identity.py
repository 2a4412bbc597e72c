"""Identity leakage: re-identifying people from their obfuscated features.

The splits are identity-disjoint (CelebA's partition, the face generator's too), so matching
happens within the test split: every test image is a probe, every *other* test image is the
gallery. Two attacks, both on pooled z (average-pooled to at most 8 x 8 per channel):

- ``nearest_neighbour``: cosine similarity of z standardised by the training split's statistics.
- ``metric_head``: a small MLP embedding (pooled z -> 256 -> 64, L2-normalised) trained on the
  *training* identities with a cosine-softmax classifier (scale 16), fresh noise in every pass;
  the epoch is chosen by the validation split's top-1 rate (also identity-disjoint). The best
  test epoch is given too, labelled as such.

Figures: the top-1 identification rate (the nearest other image shows the same person; probes
whose identity has one test image are left out) with its chance level, and the ROC AUC of
same-versus-different pairs scored by similarity (all pairs of the first ``max_images`` test
images).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn import functional as F
from tqdm.auto import tqdm

from noisyarl.attacks.common import freeze, obfuscated_batches
from noisyarl.attacks.features import FeaturePool, collect_features, pooled_dim, standardise
from noisyarl.data.base import SPLITS, ImageSplit
from noisyarl.evaluation.metrics import roc_auc, top1_identification_rate
from noisyarl.runtime import StepContext
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


def run_identity_attack(
    client: nn.Module,
    splits: dict[str, ImageSplit],
    context: StepContext,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    eval_batch_size: int = 256,
    seed: int = 0,
    max_images: int = MAX_IMAGES,
    progress: bool = False,
) -> dict[str, Any]:
    """Both re-identification attacks on ``client``'s z; a JSON-able dict.

    Raises ``ValueError`` when the splits have no ``identity`` label.
    """
    for name in SPLITS:
        if IDENTITY_LABEL not in splits[name].labels:
            raise ValueError(f"the {name} split has no {IDENTITY_LABEL!r} label")
    client = freeze(client)
    valid, test = (_first(splits[name], max_images) for name in ("valid", "test"))
    train_features = collect_features(client, splits["train"], context,
                                      batch_size=eval_batch_size, pool_side=IDENTITY_POOL_SIDE)
    test_features = collect_features(client, test, context, batch_size=eval_batch_size,
                                     pool_side=IDENTITY_POOL_SIDE)
    _, test_standard = standardise(train_features, test_features)
    nearest = identity_metrics(test_standard, test.labels[IDENTITY_LABEL])
    head = train_metric_head(client, splits["train"], valid, test, context, epochs=epochs,
                             lr=lr, batch_size=batch_size, eval_batch_size=eval_batch_size,
                             seed=seed, progress=progress)
    return {"nearest_neighbour": nearest, "metric_head": head,
            "test_images": len(test),
            "test_identities": int(test.labels[IDENTITY_LABEL].unique().numel())}


def train_metric_head(client, train, valid, test, context, *, epochs, lr, batch_size,
                      eval_batch_size, seed, progress) -> dict[str, Any]:
    """Train :class:`MetricHead` on ``train``'s identities; score valid and test every epoch.

    Returns test figures at the best-validation-top-1 epoch, and at the best test epoch
    (``*_best_test_epoch``, the paper-style optimistic figure), plus the history.
    """
    torch.manual_seed(seed)
    identities = train.labels[IDENTITY_LABEL]
    classes, targets = identities.unique(return_inverse=True)
    z_shape = tuple(int(s) for s in next(obfuscated_batches(
        client, train.subset(torch.arange(1)), 1, context))[1].shape[1:])
    head = context.prepare_module(MetricHead(z_shape))
    centres = nn.Parameter(torch.randn(len(classes), EMBEDDING_DIM, device=context.device))
    optimizer = torch.optim.Adam([*head.parameters(), centres], lr=lr)
    indexed = train.subset(torch.arange(len(train)))
    indexed.labels = {"target": targets}
    history = []
    for epoch in tqdm(range(1, epochs + 1), desc="identity attack", disable=not progress,
                      leave=False):
        head.train()
        generator = epoch_generator(seed, epoch, "leakage")
        for _, z, labels in obfuscated_batches(client, indexed, batch_size, context,
                                               shuffle=True, generator=generator):
            logits = COSINE_SCALE * head(z) @ F.normalize(centres, dim=1).T
            context.step(F.cross_entropy(logits, labels["target"]), optimizer)
        record = {"epoch": epoch}
        for name, split in (("valid", valid), ("test", test)):
            figures = identity_metrics(_embed(client, head, split, context, eval_batch_size),
                                       split.labels[IDENTITY_LABEL])
            record.update({f"{name}_{key}": value for key, value in figures.items()})
        history.append(record)
    chosen = max(history, key=lambda record: record["valid_top1"])
    best_test = max(history, key=lambda record: record["test_top1"])
    return {
        "top1": chosen["test_top1"], "auc": chosen["test_auc"],
        "top1_chance": chosen["test_top1_chance"], "epoch": chosen["epoch"],
        "top1_best_test_epoch": best_test["test_top1"],
        "auc_best_test_epoch": best_test["test_auc"],
        "history": history,
    }


@torch.no_grad()
def _embed(client, head, split, context, batch_size) -> torch.Tensor:
    head.eval()
    return torch.cat([head(z).cpu() for _, z, _ in
                      obfuscated_batches(client, split, batch_size, context)])


def _first(split: ImageSplit, count: int) -> ImageSplit:
    return split if len(split) <= count else split.subset(torch.arange(count))


__all__ = ["IDENTITY_LABEL", "MetricHead", "identity_metrics", "run_identity_attack"]
