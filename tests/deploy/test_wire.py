"""The request format: round trips, and every malformed body rejected with the right status."""

from __future__ import annotations

import struct

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from safetensors.torch import save as safetensors_save

from noisyarl.deploy.wire import RequestRejected, decode_z, encode_z, max_body_bytes

SHAPE = (4, 3, 3)


@settings(max_examples=40, deadline=None)
@given(batch=st.integers(1, 8), scale=st.floats(1e-3, 1e5), seed=st.integers(0, 1000))
def test_float32_round_trip_is_exact(batch, scale, seed):
    z = scale * torch.randn(batch, *SHAPE, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(decode_z(encode_z(z), SHAPE, max_batch=8), z)


def test_bfloat16_halves_the_bytes_and_keeps_large_values():
    z = 15360.0 * torch.randn(16, *SHAPE)  # σ of the paper's CelebA runs (docs/method.md §2)
    body32, body16 = encode_z(z), encode_z(z, "bfloat16")
    assert len(body16) < 0.6 * len(body32)
    decoded = decode_z(body16, SHAPE, max_batch=16)
    assert torch.allclose(decoded, z, rtol=2**-8, atol=0)


def test_float16_refuses_values_beyond_its_range():
    with pytest.raises(ValueError, match="not finite in float16"):
        encode_z(torch.full((1, *SHAPE), 1e5), "float16")


def _status(body: bytes, max_batch: int = 8) -> int:
    with pytest.raises(RequestRejected) as caught:
        decode_z(body, SHAPE, max_batch)
    return caught.value.status


def test_malformed_bodies_get_their_status():
    good = encode_z(torch.randn(2, *SHAPE))
    assert _status(good[:-5]) == 400                      # truncated data
    assert _status(good[:6]) == 400                       # truncated header length
    assert _status(b"\x00" * 3 + b"garbage") == 400
    assert _status(struct.pack("<Q", 10**12) + b"{}") == 400  # header length beyond the body
    assert _status(encode_z(torch.randn(2, 4, 3, 2))) == 422  # wrong shape
    assert _status(encode_z(torch.randn(4, 3, 3))) == 422     # missing batch axis
    assert _status(safetensors_save({"z": torch.ones(2, *SHAPE, dtype=torch.int32)})) == 422
    assert _status(safetensors_save({"x": torch.randn(2, *SHAPE)})) == 422
    assert _status(safetensors_save({"z": torch.randn(2, *SHAPE),
                                     "extra": torch.zeros(1)})) == 422
    nan = torch.randn(2, *SHAPE)
    nan[1, 0, 0, 0] = float("nan")
    assert _status(safetensors_save({"z": nan})) == 422
    assert _status(encode_z(torch.randn(9, *SHAPE))) == 413   # over the batch limit


def test_body_limit_admits_the_largest_valid_body():
    assert len(encode_z(torch.randn(8, *SHAPE))) <= max_body_bytes(SHAPE, 8)
