"""The attacker's view of a client: ``z`` batches of a split, exactly as the server receives them.

A noisy client sends ``z = h(x) + s·ε`` with fresh ``ε ~ N(0, I)`` per query (``s = σ``; the
mean of k queries has ``s = σ/√k``). In eval mode ``h`` is deterministic, so :class:`ZView`
computes it once per split and draws only the noise on every pass: the same random variable
as calling the client, at a fraction of the cost, which is what lets attackers train to
convergence on a CPU. A client whose randomness the view does not know (no declared noise
module, yet two queries differ) is called on every pass instead.

:class:`AttackTarget` bundles what every attack receives: the view, the splits, the private
task, the defence (for its proxy attacker) and the image size.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import nn

from noisyarl.attacks.common import freeze
from noisyarl.data.augment import iterate_batches
from noisyarl.data.base import ImageSplit
from noisyarl.data.tasks import Task
from noisyarl.models.noise import GaussianNoise, NoiseFree
from noisyarl.runtime import StepContext

#: Largest cache of noise-free features, over all splits of a view (bytes); above it the
#: client runs on every pass.
MAX_CACHE_BYTES = 3 * 2**30
#: The label that carries each sample's row index through the batch iterator.
ROW = "__row__"


class AveragedClient(nn.Module):
    """z̄ = mean of ``queries`` calls of ``client`` on the same images (a client whose noise
    the view does not know; :class:`ZView` averages known noise without calling it k times)."""

    def __init__(self, client: nn.Module, queries: int) -> None:
        super().__init__()
        if queries < 1:
            raise ValueError(f"queries must be >= 1, got {queries}")
        self.client = client
        self.queries = int(queries)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = self.client(x)
        for _ in range(self.queries - 1):
            total = total + self.client(x)
        return total / self.queries


class ZView:
    """``z`` of a frozen client as an attacker sees it.

    features: a deterministic module images -> ``h`` (the client with its noise module off),
    or None when the client's randomness is unknown (then ``client`` runs on every pass);
    noise_std: standard deviation of the fresh Gaussian noise on every element of each ``z``
    (σ, or σ/√k for k averaged queries); train_noise_std: extra fresh noise the attacker adds
    to its own *training* batches only (the keyed-noise attacker: σ is public, and noise of
    its own keeps it from memorising one fixed draw per image).
    """

    def __init__(self, client: nn.Module, context: StepContext, *,
                 features: nn.Module | None, noise_std: float = 0.0,
                 train_noise_std: float = 0.0, cache: bool = True) -> None:
        self.client = freeze(client)
        self.context = context
        self.features = freeze(features) if features is not None else None
        self.noise_std = float(noise_std)
        self.train_noise_std = float(train_noise_std)
        self.cache = cache
        self._cached: dict[int, tuple[ImageSplit, torch.Tensor]] = {}

    @classmethod
    def of(cls, client: nn.Module, noise: GaussianNoise | None, context: StepContext,
           probe: ImageSplit) -> ZView:
        """The view of ``client`` whose noise module is ``noise`` (None: none declared).

        ``probe``: a split whose first images check that a client without declared noise is
        deterministic (else it is called on every pass).
        """
        freeze(client)
        if noise is not None:
            return cls(client, context, features=NoiseFree(client, noise),
                       noise_std=noise.sigma if noise.active else 0.0)
        if queries_differ(client, probe, context):
            return cls(client, context, features=None)
        return cls(client, context, features=client)

    @property
    def deterministic(self) -> bool:
        """Whether every test pass gives the same ``z`` (one test draw is enough)."""
        return self.features is not None and self.noise_std == 0.0

    def averaged(self, queries: int) -> ZView:
        """The view of an attacker who averages ``queries`` obfuscations of each image."""
        if queries < 1:
            raise ValueError(f"queries must be >= 1, got {queries}")
        if self.features is None:
            return ZView(AveragedClient(self.client, queries), self.context, features=None,
                         train_noise_std=self.train_noise_std)
        view = self._copy()
        view.noise_std = self.noise_std / math.sqrt(queries)
        return view

    def with_train_noise(self, std: float) -> ZView:
        """This view, with the attacker adding its own N(0, std²) to its training batches."""
        view = self._copy()
        view.train_noise_std = float(std)
        return view

    def _copy(self) -> ZView:
        view = ZView(self.client, self.context, features=self.features, noise_std=self.noise_std,
                     train_noise_std=self.train_noise_std, cache=self.cache)
        view._cached = self._cached  # same h: only the noise differs
        return view

    def batches(self, split: ImageSplit, batch_size: int, *, shuffle: bool = False,
                generator: torch.Generator | None = None, training: bool = False,
                shard: bool = True) -> Iterator[tuple[torch.Tensor, torch.Tensor, dict]]:
        """Yield ``(images [B,3,S,S], z [B,...] float32, labels)``, fresh noise every call.

        Attack data is never augmented. A shuffled pass drops its final partial batch (a batch
        of one sample would break an MLP attacker's batch norm). training: add the attacker's
        own ``train_noise_std``. shard: under torchrun, only this rank's shard of each batch.
        """
        context = self.context
        env = context.distributed
        rank, world_size = (env.rank, env.world_size) if shard else (0, 1)
        cached = self._features_of(split)
        source = _with_rows(split) if cached is not None else split
        drop_last = shuffle and len(split) > batch_size
        for images, labels in iterate_batches(
                source, batch_size, shuffle=shuffle, augment=False, generator=generator,
                drop_last=drop_last, device=context.device, channels_last=context.channels_last,
                rank=rank, world_size=world_size):
            if cached is not None:
                h = cached[labels.pop(ROW).to(cached.device)].to(context.device)
            else:
                h = self._run(images)
            yield images, self._noisy(h, training), labels

    @torch.no_grad()
    def _run(self, images: torch.Tensor) -> torch.Tensor:
        module = self.features if self.features is not None else self.client
        with self.context.autocast():
            return module(images).float()

    def _noisy(self, h: torch.Tensor, training: bool) -> torch.Tensor:
        std = self.noise_std
        if training and self.train_noise_std > 0:
            std = math.sqrt(std**2 + self.train_noise_std**2)
        if std == 0:
            return h
        return h + std * torch.randn_like(h, memory_format=torch.contiguous_format)

    def _features_of(self, split: ImageSplit) -> torch.Tensor | None:
        """The cached ``h`` [N, ...] of ``split`` (computed on first use), or None."""
        if self.features is None or not self.cache:
            return None
        key = id(split)
        if key in self._cached and self._cached[key][0] is split:
            return self._cached[key][1]
        used = sum(h.numel() * 4 for _, h in self._cached.values())
        shape = self.z_shape(split)
        if used + len(split) * math.prod(shape) * 4 > MAX_CACHE_BYTES:
            return None
        chunks = []
        for images, _ in iterate_batches(split, 256, shuffle=False, augment=False,
                                         device=self.context.device,
                                         channels_last=self.context.channels_last):
            chunks.append(self._run(images))
        h = torch.cat(chunks)
        self._cached[key] = (split, h)
        return h

    @torch.no_grad()
    def z_shape(self, split: ImageSplit) -> tuple[int, ...]:
        """Shape of one sample of ``z``: (C, h, w) for a feature map or (D,) for a vector."""
        image = split.images[:1].float().div(255.0).to(self.context.device)
        if self.context.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return tuple(int(size) for size in self._run(image).shape[1:])


def _with_rows(split: ImageSplit) -> ImageSplit:
    """``split`` with each sample's row index as an extra label (shares the images)."""
    labels = {**split.labels, ROW: torch.arange(len(split))}
    return ImageSplit(images=split.images, labels=labels, label_info=split.label_info)


@torch.no_grad()
def queries_differ(client: nn.Module, split: ImageSplit, context: StepContext,
                   count: int = 8) -> bool:
    """Whether two queries of the same ``count`` images give different ``z`` (fresh noise)."""
    client = freeze(client)
    images = split.images[:count].float().div(255.0).to(context.device)
    return not torch.equal(client(images), client(images))


@dataclass(frozen=True)
class AttackTarget:
    """What an attack receives.

    view: the attacker's view of the client; splits: train / valid / test; task: the private
    task (None for attacks that need none); proxy: builds a fresh copy of the defence's proxy
    adversary for ``num_outputs`` (None: no proxy); image_size: side of the input images.
    """

    view: ZView
    splits: dict[str, ImageSplit]
    task: Task | None
    image_size: int
    proxy: object | None = None

    @property
    def context(self) -> StepContext:
        return self.view.context

    def with_view(self, view: ZView) -> AttackTarget:
        return replace(self, view=view)

    def z_shape(self) -> tuple[int, ...]:
        return self.view.z_shape(self.splits["train"])


__all__ = ["MAX_CACHE_BYTES", "AttackTarget", "AveragedClient", "ZView", "queries_differ"]
