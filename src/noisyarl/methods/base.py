"""The interface every defence implements, so that one training loop and one attack harness
serve them all.

A defence owns its client model (what runs on the device and produces the transmitted ``z``),
its utility head (the server), any adversaries it trains against, their optimisers and its
update rule. The shared loop in :mod:`noisyarl.training.loop` owns data, devices, precision,
logging, checkpoints and model selection.

What a defence is, as recorded in ``metrics.json``, follows from its class flags alone
(:meth:`Defence.describe`, never overridden); what the attacks need of a noisy client comes
through one hook (:meth:`Defence.noise_module`), never from the client's class.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import nn

from noisyarl.data.tasks import Task
from noisyarl.models.noise import GaussianNoise, find_noise_module
from noisyarl.runtime import StepContext


@dataclass(frozen=True)
class Knob:
    """A defence's privacy/utility trade-off knob and the grid a Pareto comparison trains.

    key: what it sets, ``sigma`` (``method.sigma``) or ``params.NAME`` (``method.params``);
    grid: its default values, from the most useful to the most private or the reverse;
    label: its symbol in row labels (``λ``, ``α``; default: σ for ``sigma``, else the name).
    """

    key: str
    grid: tuple[float, ...]
    label: str = ""

    @property
    def name(self) -> str:
        """The key without ``params.``: ``sigma``, ``alpha`` (run names, file names)."""
        return self.key.removeprefix("params.")

    @property
    def symbol(self) -> str:
        """Short name for row labels: :attr:`label`, else ``σ`` or :attr:`name`."""
        return self.label or ("σ" if self.key == "sigma" else self.name)


@dataclass(frozen=True, kw_only=True)
class DefenceSpec:
    """What a defence is built from (keywords only: a spec built by position silently swaps
    ``split`` and ``sigma`` or the two tasks; :func:`noisyarl.builders.untrained_defence` builds
    a fresh one with binary tasks and default params).

    split: K of RN18_K. sigma: noise standard deviation. noise: the ablation switch.
    params: the defence's own validated parameters (an instance of its ``Params``).
    image_size: side of the square input in px. cifar_stem: use the 32x32 ResNet stem.
    """

    utility: Task
    private: Task
    split: int
    sigma: float
    noise: bool
    params: Any
    image_size: int
    cifar_stem: bool = False


class Defence(nn.Module, ABC):
    """Base class of defences. Subclasses set ``name``, ``display_name``, ``Params``, the class
    flags that differ from the defaults and the abstract methods; registering the class in
    :data:`noisyarl.methods.METHODS` is all the rest of the toolkit needs.

    Attributes that subclasses must create: ``client`` (images [B, 3, S, S] in [0, 1] -> z; what
    runs on the device, docs/method.md §9) and ``utility_head`` (z -> utility outputs
    [B, n_utility], raw logits or regression values).
    """

    #: Registry key, also ``method`` in ``metrics.json`` and config files.
    name: ClassVar[str]
    #: Label of the defence in tables and plots (``MaxEnt-ARL``); defaults to ``name``.
    display_name: ClassVar[str]
    #: The dataclass of the defence's own settings (``method.params``).
    Params: ClassVar[type]
    #: False when the client sends the raw image (nothing to reconstruct).
    obfuscates: ClassVar[bool] = True
    #: Whether ``spec.split`` (K of RN18_K) and ``spec.sigma`` (the noise module) mean anything
    #: to this defence; the experiment rejects a σ > 0 for a defence without noise.
    has_split: ClassVar[bool] = True
    has_noise: ClassVar[bool] = True
    #: The split a defence without ``has_split`` always uses, when its client is a prefix of a
    #: ResNet18 all the same (DISCO: layer2); None when the client is no such prefix.
    fixed_split: ClassVar[int | None] = None
    #: The trade-off knobs a Pareto comparison may turn, the default one first; empty for a
    #: defence without one (the upper bound).
    knobs: ClassVar[tuple[Knob, ...]] = ()
    #: The toolkit's own method (noisy ARL): unless a comparison names its reference rows
    #: (``compare[i].reference``), its rows with noise on are the ones compared with every
    #: other row (:func:`noisyarl.runners.seeds.studied_rows`).
    studied: ClassVar[bool] = False

    client: nn.Module
    utility_head: nn.Module

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in vars(cls) and "display_name" not in vars(cls):
            cls.display_name = cls.name

    def __init__(self, spec: DefenceSpec) -> None:
        super().__init__()
        self.spec = spec

    @abstractmethod
    def configure_optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """Named optimisers; their states are checkpointed by the loop."""

    def proxy_adversaries(self) -> list[nn.Module]:
        """The children trained by an optimiser other than ``main``: the proxy adversaries
        that :func:`~noisyarl.methods.adversary.adversarial_update` backpropagates twice per
        step (once for the client's loss, once for their own)."""
        main = {id(parameter) for group in self.configure_optimizers()["main"].param_groups
                for parameter in group["params"]}
        return [child for child in self.children()
                if any(True for _ in child.parameters())
                and not any(id(parameter) in main for parameter in child.parameters())]

    def configure_schedulers(
        self, optimizers: dict[str, torch.optim.Optimizer], epochs: int
    ) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
        """Learning-rate schedules stepped once per epoch by the loop (default: none).

        ``epochs`` is the run's total number of epochs; states are checkpointed by the loop.
        """
        return {}

    @abstractmethod
    def train_step(
        self,
        images: torch.Tensor,
        utility_target: torch.Tensor,
        private_target: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        context: StepContext,
    ) -> dict[str, torch.Tensor]:
        """One update on a batch; returns detached per-batch scalars (losses, score sums).

        Keys ending in ``_correct`` are summed and divided by the number of samples (scores of
        :meth:`Task.score_sum`); every other key (the ``_loss`` keys, other per-batch means such
        as MaxEnt's ``adversary_entropy``) is averaged over steps by the loop. The client's and
        proxy adversaries' updates from one forward pass:
        :func:`noisyarl.methods.adversary.adversarial_update`.
        """

    @abstractmethod
    def make_attacker(self, num_outputs: int) -> nn.Module:
        """A fresh, untrained attacker for the leakage attack: z -> [B, num_outputs]."""

    def predict_utility(self, images: torch.Tensor) -> torch.Tensor:
        """Server-side utility outputs for images [B, 3, S, S]."""
        return self.utility_head(self.client(images))

    def noise_module(self) -> GaussianNoise | None:
        """The noise module of this defence's client (docs/method.md §2), or None.

        It adds ``σ·ε`` to the client's output, ``client(x) = noise(h(x))``: multi-query
        averaging draws its k noises on one ``h``, keyed noise replaces its ``ε``, and the
        "key leaked" attacker switches it off (:mod:`noisyarl.attacks.suite`). None for a
        defence without noise (``has_noise`` false). The default is the one
        :class:`~noisyarl.models.GaussianNoise` inside ``client``; a defence whose client holds
        several overrides this.
        """
        if not self.has_noise:
            return None
        return find_noise_module(self.client)

    def describe(self) -> dict[str, Any]:
        """Facts recorded in ``metrics.json``, derived from the class flags and the spec only
        (never overridden: a defence says what it is through ``name``, ``display_name``,
        ``obfuscates``, ``has_split``, ``fixed_split``, ``has_noise`` and its ``Params``).

        ``split`` is ``spec.split`` for a defence with a split, else ``fixed_split``; ``sigma``
        and ``noise`` are the spec's for a defence with a noise module, else 0.0 and False;
        ``params`` are the defence's own settings as a mapping.
        """
        spec = self.spec
        return {
            "method": self.name,
            "display_name": self.display_name,
            "obfuscates": self.obfuscates,
            "split": spec.split if self.has_split else self.fixed_split,
            "sigma": float(spec.sigma) if self.has_noise else 0.0,
            "noise": bool(spec.noise) if self.has_noise else False,
            "params": _params_dict(spec.params),
        }


def _params_dict(params: Any) -> dict[str, Any]:
    """A defence's params as a plain mapping (a ``Params`` dataclass, a mapping or None)."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        return dataclasses.asdict(params)
    if isinstance(params, Mapping):
        return dict(params)
    if params is None:
        return {}
    raise TypeError(f"spec.params must be a Params dataclass or a mapping, got {params!r}")


def utility_step(defence: Defence, images: torch.Tensor, utility_target: torch.Tensor,
                 optimizer: torch.optim.Optimizer, context: StepContext) -> dict[str, torch.Tensor]:
    """One update of a defence trained for utility alone (no adversary, no penalty): images
    [B, 3, S, S] -> client -> utility head, ``optimizer`` descends the utility loss.

    Returns the detached ``utility_loss`` and the batch's ``utility_correct`` score sum
    (the upper bound, noise only and the image-space baselines).
    """
    utility = defence.spec.utility
    with context.autocast():
        utility_out = defence.utility_head(defence.client(images))
        utility_loss = utility.loss(utility_out, utility_target)
    context.step(utility_loss, optimizer)
    return {"utility_loss": utility_loss.detach(),
            "utility_correct": utility.score_sum(utility_out, utility_target)}

