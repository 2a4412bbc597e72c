"""Tasks: a label column plus its kind, loss and metric.

An experiment has one utility task (what the server must still predict) and one private task
(what an attacker must not recover). Either may be binary, multi-class or regression
(docs/method.md §4).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from noisyarl.data.base import LabelInfo


@dataclass(frozen=True)
class Task:
    """One prediction task on a label column.

    label: the column name (e.g. ``"Smiling"``, ``"race"``, ``"landmarks"``).
    info: what the column holds (kind, number of classes or dimension).

    >>> task = Task("Smiling", LabelInfo(kind="binary"))
    >>> logits = torch.tensor([[2.0], [-1.0]])
    >>> float(task.loss(logits, torch.tensor([1, 0]))) < 0.25
    True
    >>> task.score_sum(logits, torch.tensor([1, 1]))
    tensor(1.)
    """

    label: str
    info: LabelInfo

    @property
    def kind(self) -> str:
        return self.info.kind

    @property
    def num_outputs(self) -> int:
        return self.info.num_outputs

    @property
    def metric_name(self) -> str:
        """``accuracy`` (percent, higher is better) or ``mse`` (lower is better)."""
        return "mse" if self.kind == "regression" else "accuracy"

    @property
    def higher_is_better(self) -> bool:
        return self.kind != "regression"

    def loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Mean loss of a batch; ``outputs`` are raw logits [B, num_outputs], never probabilities.

        Binary: BCE-with-logits on one logit. Multi-class: cross-entropy on k logits.
        Regression: MSE on the coordinates [B, D].
        """
        outputs = outputs.float()
        if self.kind == "binary":
            return F.binary_cross_entropy_with_logits(outputs.reshape(-1), target.float())
        if self.kind == "multiclass":
            return F.cross_entropy(outputs, target.long())
        return F.mse_loss(outputs, target.float())

    def per_sample_scores(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The metric of each sample [B] as float32, on the device: 1.0 where correct and 0.0
        where wrong (binary: logit > 0, i.e. sigmoid > 0.5; multi-class: top-1), or the
        sample's mean squared error (regression)."""
        outputs = outputs.detach().float()
        if self.kind == "binary":
            predicted = (outputs.reshape(-1) > 0).long()
            return (predicted == target.long()).float()
        if self.kind == "multiclass":
            return (outputs.argmax(dim=1) == target.long()).float()
        return ((outputs - target.float()) ** 2).mean(dim=1)

    def score_sum(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Sum over the batch of :meth:`per_sample_scores`, kept on the device (no host sync).
        Divide by the sample count to get the metric (then x100 for accuracy, see
        :meth:`finalize`)."""
        return self.per_sample_scores(outputs, target).sum()

    def finalize(self, score_sum: float, count: int) -> float:
        """Metric from a score sum: accuracy in percent, or MSE."""
        mean = score_sum / max(count, 1)
        return 100.0 * mean if self.higher_is_better else mean

    def chance_level(self, target: torch.Tensor) -> float:
        """Majority-class accuracy in percent (or the MSE of predicting the mean)."""
        if self.kind == "regression":
            target = target.float()
            return float(((target - target.mean(dim=0)) ** 2).mean())
        counts = torch.bincount(target.long().reshape(-1))
        return 100.0 * float(counts.max()) / max(int(counts.sum()), 1)
