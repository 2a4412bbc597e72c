"""MaxEnt-ARL (Roy & Boddeti, CVPR 2019) as a defence (docs/method.md §5).

Maximum-entropy adversarial representation learning is a non-zero-sum game: the client does not
try to make the proxy adversary wrong (maximise its cross-entropy, as noisy ARL's client does)
but uncertain. It maximises the entropy of the adversary's predictive distribution, whose optimum
is the uniform distribution over the private classes.

Client ``E`` (the authors call it the *encoder*, docs/method.md §9): ResNet18 (all four stages;
the CIFAR stem at 32 px) with dropout inside every basic block, between the block's first conv +
BN + ReLU and its second conv; global average pooling; a linear embedding 512 -> 128 without
bias. ``z = E(x)`` is a vector [B, 128]. There is no split and no noise module
(``has_split`` and ``has_noise`` false), so :meth:`Defence.describe` records ``split: None,
sigma: 0.0, noise: False``.

Server (utility head ``T``), proxy adversary ``A`` and the leakage attack's attacker: an MLP
128 -> 256 -> 128 -> n (Linear, BN, PReLU, Dropout, Linear, BN, PReLU, Linear), raw logits out.

Per batch, one step each from one forward pass:

1. ``E`` and ``T`` descend ``(1 - alpha) * L_util - alpha * H(A(z))``, where ``H`` is the mean
   predictive entropy of the adversary in nats (:func:`predictive_entropy`). ``L_util`` is
   :meth:`Task.loss` on raw outputs (BCE-with-logits, cross-entropy, or MSE for a regression
   utility task).
2. ``A`` descends its own :meth:`Task.loss` for the private label; both from one forward pass
   (:func:`~noisyarl.methods.adversary.adversarial_update`).

The entropy term is always on when ``alpha > 0``; there is no switch that turns it off (the
authors' example script trains with its privacy flag off, a pitfall named in docs/method.md).

Private task: binary or multi-class only. A regression private task (e.g. landmarks) has no
predictive distribution whose entropy could be maximised; :class:`MaxEntARL` raises ``ValueError``
for one.

Sources of the defaults (:class:`MaxEntParams`): architecture, embedding size 128, Adam and
cosine schedules are the authors' code for CIFAR (docs/method.md §5). Their optimiser settings
(client lr 1e-4 with weight decay 1e-2, heads lr 1e-2 with weight decay 1e-3, dropout 0.5 in every
block and head) are meant for 150 epochs and do not leave the majority rate in a few (RESULTS.md,
"MaxEnt-ARL settings that learn within a short budget"); this project's defaults are every
network at Adam lr 1e-3 with no dropout and no weight decay, and :meth:`MaxEntParams.authors`
gives the authors' settings. Where the code leaves the utility head unscheduled, this project
schedules it with the client (one optimiser, two parameter groups). ``alpha`` is explained on its
field. The client's optimiser
settings were called ``encoder_lr`` / ``encoder_weight_decay`` before the rename of
docs/method.md §9; :func:`noisyarl.methods.method_params` still reads those keys, with a warning.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F
from torchvision.models.resnet import BasicBlock

from noisyarl.methods.adversary import adversarial_update
from noisyarl.methods.base import Defence, DefenceSpec, Knob
from noisyarl.models import resnet18_prefix
from noisyarl.runtime import StepContext

#: Channels of ResNet18's last stage, the input of the embedding layer.
RESNET18_FEATURES = 512
#: Hidden widths of the MLP heads (authors' code).
HEAD_WIDTHS = (256, 128)
#: Floors of the cosine schedules (authors' code: 1e-7 for the client, 1e-6 for the adversary).
CLIENT_MIN_LR = 1e-7
ADVERSARY_MIN_LR = 1e-6
#: The authors' CIFAR optimiser and dropout settings (:meth:`MaxEntParams.authors`).
AUTHORS_SETTINGS: dict[str, float] = {
    "client_lr": 1e-4, "client_weight_decay": 1e-2, "head_lr": 1e-2, "head_weight_decay": 1e-3,
    "dropout": 0.5, "head_dropout": 0.5,
}


@dataclass
class MaxEntParams:
    """Trade-off, architecture and optimiser settings of MaxEnt-ARL.

    alpha: weight of the adversary's entropy in the client's objective
        ``(1 - alpha) * L_util - alpha * H``; in [0, 1). Default 0.1, the default of the
        authors' trainer; their CIFAR-100 script sweeps 0.1 to 0.6 to trace the utility/privacy
        front, so sweep it likewise.
    embedding_dim: size D of the transmitted vector z [B, D] (authors: 128).
    dropout: dropout probability inside the client's residual blocks (project 0, authors 0.5).
    head_dropout: dropout probability in the MLP heads (project 0, authors 0.5).
    client_lr, client_weight_decay: Adam settings of the client, the authors' encoder (project
        1e-3 and 0, authors 1e-4 and 1e-2); formerly ``encoder_lr`` and ``encoder_weight_decay``
        (:attr:`RENAMED`).
    head_lr, head_weight_decay: Adam settings of the utility head and the adversary (project
        1e-3 and 0, authors 1e-2 and 1e-3).

    The project's defaults learn the utility task within a few epochs; the authors' settings
    (:meth:`authors`) are tuned for their 150-epoch CIFAR runs and, in 3 epochs on generated
    faces, leave utility at the majority rate (RESULTS.md).
    """

    alpha: float = 0.1
    embedding_dim: int = 128
    dropout: float = 0.0
    head_dropout: float = 0.0
    client_lr: float = 1e-3
    client_weight_decay: float = 0.0
    head_lr: float = 1e-3
    head_weight_decay: float = 0.0

    #: Old key -> new key; :func:`noisyarl.methods.method_params` reads the old keys with a
    #: warning that names the new one, so configs written before the rename keep working.
    RENAMED: ClassVar[dict[str, str]] = {"encoder_lr": "client_lr",
                                         "encoder_weight_decay": "client_weight_decay"}

    @classmethod
    def authors(cls, **overrides: Any) -> MaxEntParams:
        """The optimiser and dropout settings of the authors' CIFAR code (docs/method.md §5),
        for long runs or for reproducing their protocol; ``overrides`` set other fields.

        In config: ``method.params: {client_lr: 1e-4, client_weight_decay: 1e-2, head_lr: 1e-2,
        head_weight_decay: 1e-3, dropout: 0.5, head_dropout: 0.5}``."""
        settings: dict[str, Any] = dict(AUTHORS_SETTINGS)
        settings.update(overrides)
        return cls(**settings)

    def __post_init__(self) -> None:
        _check_number("alpha", self.alpha, "in [0, 1)", lambda value: 0 <= value < 1)
        dim = self.embedding_dim
        if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
            raise ValueError(f"embedding_dim must be an integer >= 1, got {dim!r}")
        for name in ("dropout", "head_dropout"):
            _check_number(name, getattr(self, name), "in [0, 1)", lambda value: 0 <= value < 1)
        for name in ("client_lr", "head_lr"):
            _check_number(name, getattr(self, name), "> 0", lambda value: value > 0)
        for name in ("client_weight_decay", "head_weight_decay"):
            _check_number(name, getattr(self, name), ">= 0", lambda value: value >= 0)


def _check_number(name: str, value: Any, rule: str, holds: Callable[[float], bool]) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number and
    ``holds(value)``."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not (is_number and math.isfinite(value) and holds(value)):
        raise ValueError(f"{name} must be a finite number {rule}, got {value!r}")


def predictive_entropy(logits: torch.Tensor, kind: str) -> torch.Tensor:
    """Entropy in nats of the distribution that raw ``logits`` predict, per sample: [B].

    ``kind`` is the private task's kind. Multi-class: logits [B, k], entropy of their softmax
    (at most log k). Binary: one logit [B, 1] or [B], Bernoulli entropy of its sigmoid (at most
    log 2). Both are computed from log-probabilities (log-softmax, log-sigmoid), so they stay
    finite, with finite gradients, for arbitrarily confident logits.
    """
    logits = logits.float()
    if kind == "multiclass":
        log_p = F.log_softmax(logits, dim=1)
        return -(log_p.exp() * log_p).sum(dim=1)
    if kind == "binary":
        logits = logits.reshape(-1)
        log_p, log_q = F.logsigmoid(logits), F.logsigmoid(-logits)
        return -(log_p.exp() * log_p + log_q.exp() * log_q)
    raise ValueError(f"predictive entropy needs a binary or multiclass task, not {kind!r}")


def maxent_client(embedding_dim: int, dropout: float, cifar_stem: bool) -> nn.Sequential:
    """The client (the authors' encoder): ResNet18 with dropout in its blocks, average pooling
    and a linear embedding.

    Images [B, 3, S, S] -> z [B, embedding_dim]. In every basic block the dropout acts on the
    output of the first conv + BN + ReLU, before the second conv (authors' code).
    """
    backbone = resnet18_prefix(4, cifar_stem)
    blocks = [module for module in backbone.modules() if isinstance(module, BasicBlock)]
    for block in blocks:
        block.conv2 = nn.Sequential(nn.Dropout(dropout), block.conv2)
    return nn.Sequential(
        backbone,
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(1),
        nn.Linear(RESNET18_FEATURES, embedding_dim, bias=False),
    )


def mlp_head(in_features: int, num_outputs: int, dropout: float) -> nn.Sequential:
    """MLP in_features -> 256 -> 128 -> num_outputs with BN, PReLU and one dropout (authors'
    code): z [B, in_features] -> raw logits or regression values [B, num_outputs]."""
    wide, narrow = HEAD_WIDTHS
    return nn.Sequential(
        nn.Linear(in_features, wide),
        nn.BatchNorm1d(wide),
        nn.PReLU(),
        nn.Dropout(dropout),
        nn.Linear(wide, narrow),
        nn.BatchNorm1d(narrow),
        nn.PReLU(),
        nn.Linear(narrow, num_outputs),
    )


class MaxEntARL(Defence):
    """MaxEnt-ARL: a ResNet18 embedding trained to maximise the adversary's uncertainty."""

    name = "maxent_arl"
    display_name = "MaxEnt-ARL"
    Params = MaxEntParams
    #: α, over the span the authors' CIFAR-100 script sweeps (0.1 to 0.6).
    knobs = (Knob("params.alpha", (0.1, 0.25, 0.4, 0.6), "α"),)
    has_split = False
    has_noise = False

    def __init__(self, spec: DefenceSpec) -> None:
        if spec.private.kind not in ("binary", "multiclass"):
            raise ValueError(
                f"maxent_arl needs a binary or multiclass private task, got {spec.private.kind} "
                f"task {spec.private.label!r}: a regression label has no predictive distribution "
                "whose entropy the client could maximise"
            )
        super().__init__(spec)
        params: MaxEntParams = spec.params
        dim = params.embedding_dim
        self.client = maxent_client(dim, params.dropout, spec.cifar_stem)
        self.utility_head = mlp_head(dim, spec.utility.num_outputs, params.head_dropout)
        self.adversary = mlp_head(dim, spec.private.num_outputs, params.head_dropout)

    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """``main``: client and utility head (two parameter groups); ``adversary``."""
        params: MaxEntParams = self.spec.params
        head = {"lr": params.head_lr, "weight_decay": params.head_weight_decay}
        main = torch.optim.Adam([
            {"params": self.client.parameters(), "lr": params.client_lr,
             "weight_decay": params.client_weight_decay},
            {"params": self.utility_head.parameters(), **head},
        ])
        return {"main": main, "adversary": torch.optim.Adam(self.adversary.parameters(), **head)}

    def configure_schedulers(
        self, optimizers: dict[str, torch.optim.Optimizer], epochs: int
    ) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Cosine annealing of every learning rate over the run's ``epochs``."""
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR
        return {
            "main": cosine(optimizers["main"], T_max=epochs, eta_min=CLIENT_MIN_LR),
            "adversary": cosine(optimizers["adversary"], T_max=epochs, eta_min=ADVERSARY_MIN_LR),
        }

    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        utility, private = self.spec.utility, self.spec.private
        alpha = self.spec.params.alpha
        with context.autocast():
            z = self.client(images)
            utility_out = self.utility_head(z)
            utility_loss = utility.loss(utility_out, utility_target)
            adversary_out = self.adversary(z)
            entropy = predictive_entropy(adversary_out, private.kind).mean()
            # Maximising the adversary's entropy pushes its prediction towards uniform.
            client_loss = (1 - alpha) * utility_loss - alpha * entropy
            adversary_loss = private.loss(adversary_out, private_target)
        adversarial_update(client_loss, {"adversary": adversary_loss}, optimizers, context)
        return {
            "utility_loss": utility_loss.detach(),
            "adversary_entropy": entropy.detach(),
            "adversary_loss": adversary_loss.detach(),
            "utility_correct": utility.score_sum(utility_out, utility_target),
            "adversary_correct": private.score_sum(adversary_out, private_target),
        }

    def make_attacker(self, num_outputs: int) -> nn.Module:
        """A fresh MLP head, the proxy adversary's architecture: z [B, D] -> [B, num_outputs]."""
        params: MaxEntParams = self.spec.params
        return mlp_head(params.embedding_dim, num_outputs, params.head_dropout)
