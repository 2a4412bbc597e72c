"""Privacy-leakage attack: a fresh attacker trained on frozen obfuscated features
(docs/method.md §3).

The attacker (by default shaped like the defence's proxy adversary) learns the private label from
``z`` of the training split; its accuracy on the test split is the defence's *privacy* figure
(lower is better). The paper reports the best test epoch; we report that, the last epoch, and the
test accuracy at the epoch with the best validation accuracy (honest model selection).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from tqdm.auto import tqdm

from noisyarl.attacks.common import freeze, obfuscated_batches, reduced_sum, reseed_rank
from noisyarl.data.base import ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.runtime import StepContext
from noisyarl.utils.seeding import PHASE_OFFSETS, epoch_generator


@dataclass
class LeakageResult:
    """Attacker scores on the private task (accuracy in percent, or MSE for regression).

    test_best: best test epoch (the paper's protocol). test_last: last epoch.
    test_at_best_valid: test score at the epoch with the best validation score.
    valid_best: that best validation score (used to choose sigma without touching test).
    """

    test_best: float
    test_last: float
    test_at_best_valid: float
    valid_best: float
    best_test_epoch: int
    best_valid_epoch: int
    history: list[dict[str, float]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _score(client, attacker, split, task, context, batch_size) -> float:
    attacker.eval()
    total = torch.zeros((), device=context.device)
    with torch.no_grad():
        for _, z, labels in obfuscated_batches(client, split, batch_size, context):
            with context.autocast():
                outputs = attacker(z)
            total += task.score_sum(outputs, labels[task.label].to(context.device))
    return task.finalize(reduced_sum(total, context), len(split))


def _better(task: Task, a: float, b: float) -> bool:
    return a > b if task.higher_is_better else a < b


def run_leakage_attack(
    client: nn.Module,
    attacker: nn.Module,
    splits: dict[str, ImageSplit],
    task: Task,
    context: StepContext,
    *,
    epochs: int,
    lr: float = 1e-3,
    batch_size: int = 64,
    eval_batch_size: int = 256,
    seed: int = 0,
    progress: bool = True,
) -> LeakageResult:
    """Train ``attacker`` (fresh) on ``client(x)`` of ``splits['train']`` for ``task``.

    The client is frozen; its noise stays on. Adam(lr), no schedule. The attack starts from
    ``seed`` whatever ran before it, so a resumed run repeats it exactly. Under torchrun
    ``batch_size`` is the global batch, sharded over ranks (see :mod:`.common`).
    """
    torch.manual_seed(seed + PHASE_OFFSETS["leakage"])
    client = freeze(client)
    attacker = context.prepare_module(attacker)
    reseed_rank(seed + PHASE_OFFSETS["leakage"], context)
    optimizer = torch.optim.Adam(attacker.parameters(), lr=lr)
    history: list[dict[str, float]] = []
    for epoch in tqdm(range(1, epochs + 1), desc="leakage attack", disable=not progress,
                      leave=False):
        attacker.train()
        generator = epoch_generator(seed, epoch, "leakage")
        for _, z, labels in obfuscated_batches(client, splits["train"], batch_size, context,
                                               shuffle=True, generator=generator):
            with context.autocast():
                loss = task.loss(attacker(z), labels[task.label].to(context.device))
            context.step(loss, optimizer)
        history.append({
            "epoch": epoch,
            "valid": _score(client, attacker, splits["valid"], task, context, eval_batch_size),
            "test": _score(client, attacker, splits["test"], task, context, eval_batch_size),
        })
    return _summarise(history, task)


def _summarise(history: list[dict[str, float]], task: Task) -> LeakageResult:
    best_test = history[0]
    best_valid = history[0]
    for record in history[1:]:
        if _better(task, record["test"], best_test["test"]):
            best_test = record
        if _better(task, record["valid"], best_valid["valid"]):
            best_valid = record
    return LeakageResult(
        test_best=best_test["test"],
        test_last=history[-1]["test"],
        test_at_best_valid=best_valid["test"],
        valid_best=best_valid["valid"],
        best_test_epoch=int(best_test["epoch"]),
        best_valid_epoch=int(best_valid["epoch"]),
        history=history,
    )
