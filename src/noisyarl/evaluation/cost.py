"""Client cost: what running the obfuscator on the device costs for one image.

The "client" is any ``nn.Module`` mapping images [B, 3, H, W] to the transmitted ``z``. All
figures are for **one image** (batch 1), the module in eval mode under ``torch.no_grad()``.

* **FLOPs** come from :class:`torch.utils.flop_counter.FlopCounterMode`, which counts matrix
  products and convolutions only, at **2 FLOPs per multiply-add** (its conv formula is
  ``2 · N · C_out · C_in/groups · k_h · k_w · H_out · W_out``, its matmul formula ``2·m·k·n``).
  Bias additions, batch norm, activations, pooling, residual additions and the noise are not
  counted; for ResNet-style clients they are well under 1% of the total.
  ``gflops = flops / 1e9``; halve it for GMACs (the unit of docs/method.md's 0.37 ... 1.25 figures).
* **Parameters**: elements of the module's distinct parameters (buffers such as batch-norm
  running statistics are not counted).
* **Peak activation memory**: see :func:`peak_activation_bytes`.
* **z**: per-sample shape, and bytes on the wire as float32 (4 bytes per element), whatever dtype
  the module computes in. With noisy ARL's large σ, z does not fit float16 (docs/method.md §2).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves
from torch.utils.flop_counter import FlopCounterMode

#: Bytes per element of z on the wire (float32).
WIRE_BYTES_PER_ELEMENT = 4


@dataclass(frozen=True)
class ClientCost:
    """Cost of one client forward pass for a single image.

    Attributes:
        flops: conv + matmul FLOPs, 1 multiply-add = 2 FLOPs.
        gflops: ``flops / 1e9``.
        params: number of parameter elements.
        peak_activation_bytes: see :func:`peak_activation_bytes` (parameters excluded).
        z_shape: shape of the transmitted tensor for one sample (no batch dimension).
        z_bytes: bytes of z for one sample at 4 bytes per element (float32).
    """

    flops: int
    gflops: float
    params: int
    peak_activation_bytes: int
    z_shape: tuple[int, ...]
    z_bytes: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready values (``z_shape`` as a list)."""
        values = asdict(self)
        values["z_shape"] = list(self.z_shape)
        return values


def measure_client_cost(client: nn.Module, input_shape: tuple[int, int, int]) -> ClientCost:
    """Measure FLOPs, parameters, peak activation memory and z size of ``client`` for one image.

    Args:
        client: module mapping [B, *input_shape] float images to a tensor z [B, ...].
        input_shape: (C, H, W) of one image, e.g. ``(3, 178, 178)``.

    The module runs in eval mode under ``torch.no_grad()`` on the device of its parameters
    (CPU if it has none); each submodule's training flag and the global random state (a noise
    module draws random numbers) are restored afterwards.

    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
    >>> cost = measure_client_cost(net, (3, 4, 4))
    >>> cost.flops, cost.params, cost.z_shape, cost.z_bytes  # 2*3*8*3*3*4*4 FLOPs
    (6912, 224, (8, 4, 4), 512)
    """
    image = _example_input(client, input_shape)
    rng_devices = [image.device] if image.device.type == "cuda" else []
    with _eval_mode(client), torch.no_grad(), torch.random.fork_rng(devices=rng_devices):
        flops, z = _count_flops(client, image)
        peak_bytes = peak_activation_bytes(client, image)
    z_shape = tuple(int(size) for size in z.shape[1:])
    return ClientCost(
        flops=flops,
        gflops=flops / 1e9,
        params=count_parameters(client),
        peak_activation_bytes=peak_bytes,
        z_shape=z_shape,
        z_bytes=z[0].numel() * WIRE_BYTES_PER_ELEMENT,
    )


def count_parameters(module: nn.Module) -> int:
    """Number of parameter elements (shared parameters counted once, buffers excluded).

    >>> count_parameters(nn.Linear(10, 3))
    33
    """
    return sum(parameter.numel() for parameter in module.parameters())


def peak_activation_bytes(module: nn.Module, inputs: torch.Tensor) -> int:
    """Peak bytes of live activation tensors during ``module(inputs)``.

    Definition: the maximum, over the operator calls of one forward pass, of the total size of
    the tensor storages that are alive right after the call, counting the input and every
    storage created by an operator, and excluding the module's parameters and buffers (and views
    of them). A storage counts from the operator call that creates it until Python frees it
    (observed with a weakref finalizer; CPython frees it as soon as its last reference goes), so
    views and in-place results add nothing. Scratch space an operator allocates and releases
    internally (e.g. im2col buffers) is not visible at this level and is not counted. The result
    is deterministic and device-independent.

    Call under ``torch.no_grad()`` in eval mode for the inference figure: with autograd on,
    tensors saved for the backward pass stay alive and are counted too.

    >>> net = nn.Sequential(nn.Conv2d(1, 2, 1), nn.Conv2d(2, 1, 1)).eval()
    >>> x = torch.zeros(1, 1, 4, 4)  # 64 bytes; conv outputs: 128, then 64 bytes
    >>> with torch.no_grad():
    ...     peak_activation_bytes(net, x)  # input + first output + second output
    256
    """
    excluded = [tensor.untyped_storage() for tensor in _state_tensors(module)]
    with _LiveStorageTracker(excluded) as tracker:
        tracker.track(inputs)
        module(inputs)
    return tracker.peak_bytes


class _LiveStorageTracker(TorchDispatchMode):
    """Dispatch mode that sums the bytes of live storages created by operators."""

    def __init__(self, excluded_storages: list[torch.UntypedStorage]) -> None:
        super().__init__()
        self._excluded_ids = {id(storage) for storage in excluded_storages}
        self._excluded = excluded_storages  # keeps the ids valid while tracking
        self._live: dict[int, tuple[int, weakref.finalize]] = {}
        self.current_bytes = 0
        self.peak_bytes = 0

    def __exit__(self, *exc_info):
        for _, finalizer in self._live.values():
            finalizer.detach()  # storages that outlive the forward no longer report here
        self._live.clear()
        return super().__exit__(*exc_info)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        outputs = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(outputs):
            if isinstance(leaf, torch.Tensor):
                self.track(leaf)
        return outputs

    def track(self, tensor: torch.Tensor) -> None:
        """Count ``tensor``'s storage from now until it is freed (once per storage)."""
        storage = tensor.untyped_storage()
        key = id(storage)
        if key in self._excluded_ids or key in self._live:
            return
        size = storage.nbytes()
        self._live[key] = (size, weakref.finalize(storage, self._release, key))
        self.current_bytes += size
        self.peak_bytes = max(self.peak_bytes, self.current_bytes)

    def _release(self, key: int) -> None:
        size, _ = self._live.pop(key)
        self.current_bytes -= size


def _count_flops(client: nn.Module, image: torch.Tensor) -> tuple[int, torch.Tensor]:
    counter = FlopCounterMode(display=False)
    with counter:
        z = client(image)
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"the client must return one tensor z, got {type(z).__name__}")
    return int(counter.get_total_flops()), z


def _example_input(client: nn.Module, input_shape: tuple[int, int, int]) -> torch.Tensor:
    """A fixed random image [1, *input_shape] in [0, 1] on the client's device."""
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape}")
    first = next(iter(_state_tensors(client)), None)
    device = first.device if first is not None else torch.device("cpu")
    generator = torch.Generator().manual_seed(0)
    return torch.rand((1, *input_shape), generator=generator).to(device)


def _state_tensors(module: nn.Module) -> Iterator[torch.Tensor]:
    yield from module.parameters()
    yield from module.buffers()


@contextmanager
def _eval_mode(module: nn.Module) -> Iterator[None]:
    """Put every submodule in eval mode; restore each one's own training flag afterwards."""
    flags = [(submodule, submodule.training) for submodule in module.modules()]
    module.eval()
    try:
        yield
    finally:
        for submodule, training in flags:
            submodule.training = training


__all__ = [
    "WIRE_BYTES_PER_ELEMENT",
    "ClientCost",
    "count_parameters",
    "measure_client_cost",
    "peak_activation_bytes",
]
