"""k-nearest-neighbour leakage attacker on pooled obfuscated features.

The training split's z (one noisy pass, average-pooled as for the linear probe, standardised by
the training split's statistics) is the memory; a test sample takes the majority label of its k
nearest training samples in Euclidean distance (regression: their mean). k is chosen on the
validation split from :data:`NEIGHBOURS`; the best test score over k is also given, the analogue
of the paper's best-test-epoch figure.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from noisyarl.attacks.common import freeze
from noisyarl.attacks.features import collect_features, standardise
from noisyarl.attacks.leakage import LeakageResult
from noisyarl.data.base import SPLITS, ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.runtime import StepContext

#: Candidate neighbour counts (odd, so that binary votes never tie).
NEIGHBOURS = (1, 5, 15, 45)
#: Queries per distance computation (bounds memory at chunk x N_train distances).
QUERY_CHUNK = 512


def knn_outputs(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    queries: torch.Tensor,
    task: Task,
    neighbours: int,
) -> torch.Tensor:
    """Predictions of the k-NN rule shaped like a model's outputs, so ``task.score_sum`` scores
    them: binary [Q, 1] (share of positive votes − 0.5: > 0 means 1), multi-class [Q, C] vote
    counts, regression [Q, D] neighbour means.

    train_features [N, D], train_labels [N] or [N, D], queries [Q, D] (all float on one device).
    """
    neighbours = min(neighbours, train_features.shape[0])
    outputs = []
    for start in range(0, queries.shape[0], QUERY_CHUNK):
        distances = torch.cdist(queries[start:start + QUERY_CHUNK], train_features)
        nearest = distances.topk(neighbours, dim=1, largest=False).indices  # [q, k]
        labels = train_labels[nearest]
        if task.kind == "binary":
            outputs.append(labels.float().mean(dim=1, keepdim=True) - 0.5)
        elif task.kind == "multiclass":
            outputs.append(F.one_hot(labels.long(), task.num_outputs).sum(dim=1).float())
        else:
            outputs.append(labels.float().mean(dim=1))
    return torch.cat(outputs)


def run_knn_attack(
    client: nn.Module,
    splits: dict[str, ImageSplit],
    task: Task,
    context: StepContext,
    *,
    neighbours: tuple[int, ...] = NEIGHBOURS,
    batch_size: int = 256,
) -> LeakageResult:
    """Fit the k-NN attacker for each k of ``neighbours``; scores as for a trained attacker.

    In the returned :class:`LeakageResult` an "epoch" is the 1-based index into ``neighbours``;
    each history record also names its ``neighbours``.
    """
    client = freeze(client)
    features = {name: collect_features(client, splits[name], context, batch_size=batch_size)
                for name in SPLITS}
    train, valid, test = standardise(features["train"], features["valid"], features["test"])
    train_labels = splits["train"].labels[task.label]
    history = []
    for index, count in enumerate(neighbours, start=1):
        record = {"epoch": index, "neighbours": count}
        for name, queries in (("valid", valid), ("test", test)):
            outputs = knn_outputs(train, train_labels, queries, task, count)
            total = task.score_sum(outputs, splits[name].labels[task.label])
            record[name] = task.finalize(float(total), len(splits[name]))
        history.append(record)
    return _select(history, task)


def _select(history: list[dict], task: Task) -> LeakageResult:
    def key(name):
        sign = 1.0 if task.higher_is_better else -1.0
        return lambda record: sign * record[name]

    best_test = max(history, key=key("test"))
    best_valid = max(history, key=key("valid"))
    return LeakageResult(
        test_best=best_test["test"], test_last=history[-1]["test"],
        test_at_best_valid=best_valid["test"], valid_best=best_valid["valid"],
        best_test_epoch=best_test["epoch"], best_valid_epoch=best_valid["epoch"],
        history=history,
    )


__all__ = ["NEIGHBOURS", "knn_outputs", "run_knn_attack"]
