"""The split-inference wire format: one tensor ``z`` as safetensors bytes, never pickle.

A request body is a safetensors file holding exactly one tensor named ``z`` of shape
``[B, *z_shape]`` and dtype float32, bfloat16 or float16 (safetensors' fixed layout: an 8-byte
little-endian header length, a JSON header with dtype, shape and byte offsets, then the raw
little-endian data). Nothing in it can run code when parsed.

float32 is exact and the default. bfloat16 halves the bytes and keeps float32's range; float16
also halves them but overflows beyond 65504, which noisy ARL's large σ reaches
(docs/method.md §2), so :func:`encode_z` refuses to send a float16 z that would not be finite.

>>> z = torch.randn(2, 4, 3, 3)
>>> body = encode_z(z)
>>> torch.equal(decode_z(body, (4, 3, 3), max_batch=8), z)
True
>>> decode_z(body, (4, 2, 2), max_batch=8)
Traceback (most recent call last):
...
noisyarl.deploy.wire.RequestRejected: z has shape [2, 4, 3, 3]; this model expects [B, 4, 2, 2]
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_save

from noisyarl.utils.text import excerpt

#: Content type of request bodies.
MEDIA_TYPE = "application/vnd.noisyarl.z+safetensors"
#: Name of the one tensor in a body.
TENSOR_NAME = "z"
#: Wire dtypes by name.
WIRE_DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}
#: Upper bound of the safetensors header of a one-tensor body, in bytes.
HEADER_ALLOWANCE = 1024
#: Longest error message sent back; parser errors can quote the body, so they are cut.
MAX_MESSAGE_CHARS = 300


class RequestRejected(ValueError):
    """A request that the server must reject; ``status`` is the HTTP status to answer.

    400: not a readable safetensors body (truncated, garbage). 401: missing or wrong token.
    413: body or batch larger than allowed.
    422: readable but wrong (tensor name, dtype, shape, non-finite values).
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(excerpt(message, MAX_MESSAGE_CHARS))
        self.status = status


def encode_z(z: torch.Tensor, dtype: str = "float32") -> bytes:
    """Serialise ``z`` [B, ...] as a safetensors body in the wire dtype ``dtype``."""
    if dtype not in WIRE_DTYPES:
        raise ValueError(f"wire dtype must be one of {', '.join(WIRE_DTYPES)}, got {dtype!r}")
    wire = z.detach().to("cpu", WIRE_DTYPES[dtype]).contiguous()
    if not bool(torch.isfinite(wire).all()):
        raise ValueError(f"z is not finite in {dtype} (|z| up to {float(z.abs().max()):.3g}); "
                         "use float32 or bfloat16")
    return safetensors_save({TENSOR_NAME: wire})


def max_body_bytes(z_shape: Sequence[int], max_batch: int) -> int:
    """Largest valid body: ``max_batch`` float32 samples plus the header allowance."""
    elements = max_batch
    for size in z_shape:
        elements *= int(size)
    return 4 * elements + HEADER_ALLOWANCE


def decode_z(body: bytes, z_shape: Sequence[int], max_batch: int) -> torch.Tensor:
    """Parse and validate a body; z as float32 [B, *z_shape] or :class:`RequestRejected`."""
    try:
        tensors = safetensors_load(body)
    except (SafetensorError, ValueError, RuntimeError) as error:
        message = f"body is not a readable safetensors tensor ({excerpt(str(error), 120)})"
        raise RequestRejected(400, message) from error
    if set(tensors) != {TENSOR_NAME}:
        names = excerpt(str(sorted(tensors)), 120)
        raise RequestRejected(422, f"body must hold exactly one tensor named {TENSOR_NAME!r}, "
                                   f"got {names}")
    z = tensors[TENSOR_NAME]
    if z.dtype not in WIRE_DTYPES.values():
        raise RequestRejected(422, f"z has dtype {z.dtype}; accepted: {', '.join(WIRE_DTYPES)}")
    expected = [int(size) for size in z_shape]
    if z.dim() != len(expected) + 1 or list(z.shape[1:]) != expected:
        raise RequestRejected(422, f"z has shape {list(z.shape)}; this model expects "
                                   f"[B, {', '.join(map(str, expected))}]")
    if not 1 <= z.shape[0] <= max_batch:
        status = 413 if z.shape[0] > max_batch else 422
        raise RequestRejected(status, f"z holds {z.shape[0]} samples; allowed 1..{max_batch}")
    z = z.float()
    if not bool(torch.isfinite(z).all()):
        raise RequestRejected(422, "z holds NaN or infinite values")
    return z
