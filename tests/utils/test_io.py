"""Tests of noisyarl.utils.io: atomic writes never leave a half-written or missing file."""

from __future__ import annotations

import json
import math
import os
import stat

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisyarl.utils.io import (
    _atomic_binary_file,
    atomic_torch_save,
    atomic_write_bytes,
    atomic_write_text,
    read_json,
    to_json_value,
    write_json,
)


def _names(directory) -> list[str]:
    return sorted(path.name for path in directory.iterdir())


def test_text_and_bytes_round_trip_and_create_parents(tmp_path):
    path = tmp_path / "a" / "b" / "note.txt"
    assert atomic_write_text(path, "σ = 960\n") == path
    assert path.read_text(encoding="utf-8") == "σ = 960\n"
    atomic_write_bytes(path, b"\x00\x01")
    assert path.read_bytes() == b"\x00\x01"
    assert _names(path.parent) == ["note.txt"]


def test_new_files_get_ordinary_permissions(tmp_path):
    old_umask = os.umask(0o022)
    try:
        path = atomic_write_text(tmp_path / "mode.txt", "x")
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


def test_failing_json_serializer_leaves_the_old_file(tmp_path):
    path = write_json(tmp_path / "metrics.json", {"utility": 91.6})
    with pytest.raises(TypeError):
        write_json(path, {"utility": object()})
    assert read_json(path) == {"utility": 91.6}
    assert _names(tmp_path) == ["metrics.json"]


def test_failing_torch_save_midway_leaves_the_old_file(tmp_path):
    path = tmp_path / "checkpoint.pt"
    atomic_torch_save({"step": 1, "weights": torch.ones(3)}, path)
    # Serialization fails after the temporary file was opened.
    broken = {"weights": torch.zeros(10_000), "callback": lambda: None}
    with pytest.raises(Exception, match="(?i)pickle|lambda"):
        atomic_torch_save(broken, path)
    restored = torch.load(path, weights_only=True)
    assert restored["step"] == 1 and torch.equal(restored["weights"], torch.ones(3))
    assert _names(tmp_path) == ["checkpoint.pt"]


def test_failure_after_a_partial_write_leaves_the_old_file(tmp_path):
    path = atomic_write_bytes(tmp_path / "data.bin", b"old")
    with pytest.raises(RuntimeError, match="disk full"):
        with _atomic_binary_file(path) as handle:
            handle.write(b"half of the new")
            raise RuntimeError("disk full")
    assert path.read_bytes() == b"old"
    assert _names(tmp_path) == ["data.bin"]
    with pytest.raises(TypeError):
        atomic_write_bytes(path, "not bytes")  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"


def test_write_json_turns_non_finite_numbers_into_null_and_stays_strict(tmp_path):
    values = {"psnr": math.inf, "nan": float("nan"), "shape": (256, 12, 12),
              "numpy": np.float32(0.5), "tensor": torch.tensor(3), "path": tmp_path / "x",
              "nested": [{"neg_inf": -math.inf}]}
    path = write_json(tmp_path / "out.json", values)

    text = path.read_text(encoding="utf-8")

    def reject(constant):
        raise AssertionError(f"non-standard JSON constant {constant}")

    assert json.loads(text, parse_constant=reject) == {
        "psnr": None, "nan": None, "shape": [256, 12, 12], "numpy": 0.5, "tensor": 3,
        "path": str(tmp_path / "x"), "nested": [{"neg_inf": None}]}
    assert text.startswith('{\n  "psnr": null,') and text.endswith("}\n")  # indent 2, key order


def test_json_keys_must_be_strings(tmp_path):
    with pytest.raises(TypeError):
        write_json(tmp_path / "bad.json", {1: "one"})
    assert not (tmp_path / "bad.json").exists()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(deadline=None)
@given(json_values)
def test_json_round_trip(tmp_path_factory, value):
    path = tmp_path_factory.mktemp("json") / "value.json"
    write_json(path, value)
    assert read_json(path) == to_json_value(value)


def test_stale_temporaries_of_killed_writers_are_removed_and_results_kept(tmp_path):
    from noisyarl.utils.io import is_temporary, remove_stale_temporaries

    write_json(tmp_path / "metrics.json", {"utility": 90.0})
    stale = tmp_path / "checkpoints" / ".last.pt.0123456789abcdef0123456789abcdef.tmp"
    stale.parent.mkdir()
    stale.write_bytes(b"half a checkpoint")
    user_file = tmp_path / ".notes.tmp"  # not one of ours: left alone
    user_file.write_text("mine")
    assert is_temporary(stale) and not is_temporary(user_file)
    assert remove_stale_temporaries(tmp_path) == [stale]
    assert not stale.exists() and user_file.exists()
    assert read_json(tmp_path / "metrics.json") == {"utility": 90.0}
