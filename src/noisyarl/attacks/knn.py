"""k-nearest-neighbour leakage attacker on pooled obfuscated features.

The training split's z (one noisy pass, average-pooled as for the linear probe, standardised by
the training split's statistics) is the memory; a test sample takes the majority label of its k
nearest training samples in Euclidean distance (regression: their mean). k is chosen on the
validation split from :data:`NEIGHBOURS`; the best test score over k is also given, the analogue
of the paper's best-test-epoch figure. The features come from the attacker's view
(:mod:`noisyarl.attacks.view`), as for every other attacker.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from noisyarl.attacks.base import AttackSettings, LearningCurve, better
from noisyarl.attacks.features import collect_features, standardise
from noisyarl.attacks.leakage import LeakageResult, TestOutcomes, summarise
from noisyarl.attacks.view import AttackTarget
from noisyarl.data.tasks import Task

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


def run_knn_attack(target: AttackTarget, settings: AttackSettings, *,
                   neighbours: tuple[int, ...] = NEIGHBOURS) -> LeakageResult:
    """Fit the k-NN attacker for each k of ``neighbours``; scored like a trained attacker.

    In the result's curve an "epoch" is the 1-based index into ``neighbours`` (each record also
    names its ``neighbours``); the k with the best validation score is kept, and its test
    score is averaged over ``settings.noise_draws`` fresh test passes.
    """
    view, splits, task = target.view, target.splits, target.task
    train_features = collect_features(view, splits["train"], batch_size=settings.eval_batch_size)
    train_labels = splits["train"].labels[task.label]
    memory = standardise(train_features)[0]

    def per_image(features: torch.Tensor, split_name: str, count: int) -> torch.Tensor:
        queries = standardise(train_features, features)[1]
        outputs = knn_outputs(memory, train_labels, queries, task, count)
        return task.per_sample_scores(outputs, splits[split_name].labels[task.label])

    def score(features: torch.Tensor, split_name: str, count: int) -> float:
        total = per_image(features, split_name, count).sum()
        return task.finalize(float(total), len(splits[split_name]))

    def features_of(split_name: str) -> torch.Tensor:
        return collect_features(view, splits[split_name], batch_size=settings.eval_batch_size)

    valid, test = features_of("valid"), features_of("test")
    curve = LearningCurve(ceiling=len(neighbours))
    for index, count in enumerate(neighbours, start=1):
        record = {"epoch": index, "neighbours": count, "valid": score(valid, "valid", count),
                  "test": score(test, "test", count)}
        curve.records.append(record)
        if curve.best_epoch == 0 or better(record["valid"], curve.best()["valid"],
                                           task.higher_is_better):
            curve.best_epoch = index
    chosen = int(curve.best()["neighbours"])
    draws = 1 if view.deterministic else settings.noise_draws
    passes = torch.stack([per_image(test, "test", chosen)]
                         + [per_image(features_of("test"), "test", chosen)
                            for _ in range(draws - 1)])
    return summarise("knn", task, curve, TestOutcomes.of_passes(passes, task), splits["test"])


__all__ = ["NEIGHBOURS", "knn_outputs", "run_knn_attack"]
