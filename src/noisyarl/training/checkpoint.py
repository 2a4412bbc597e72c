"""Checkpoints: atomic writes, safe loads (``weights_only=True``), the run's config inside.

A checkpoint that cannot be read back (zero bytes, truncated, overwritten with something else)
raises :class:`DamagedCheckpointError`, a :class:`~noisyarl.config.ConfigError` that names the
file, so that the command line prints one line instead of a traceback.
"""

from __future__ import annotations

import hashlib
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from noisyarl.errors import ConfigError
from noisyarl.utils.io import atomic_torch_save


class DamagedCheckpointError(ConfigError):
    """A checkpoint file exists but is not a complete checkpoint; the message names it."""


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Write ``state`` (tensors, state dicts, plain Python values) atomically to ``path``."""
    atomic_torch_save(state, path)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint`; never unpickles arbitrary objects.

    Raises :class:`DamagedCheckpointError` when the file is empty, truncated or not a
    checkpoint (a missing file raises ``FileNotFoundError`` as usual).
    """
    path = Path(path)
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except (EOFError, OSError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile,
            ValueError) as error:  # torch reports a short zip file as OSError(EINVAL)
        raise DamagedCheckpointError(f"{path} is damaged ({_damage(path, error)})") from error
    if not isinstance(state, dict):
        raise DamagedCheckpointError(f"{path} is damaged (it holds no checkpoint dictionary)")
    return state


def _damage(path: Path, error: BaseException) -> str:
    """A short description of what is wrong with ``path``, for a one-line message."""
    size = path.stat().st_size
    if size == 0:
        return "0 bytes"
    first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    if len(first_line) > 80:
        first_line = first_line[:77] + "..."
    return f"{size} bytes, truncated or not a checkpoint: {first_line}"


def state_fingerprint(module: torch.nn.Module) -> str:
    """SHA-256 (hex) of ``module``'s state dict: every entry's name, dtype, shape and bytes, in
    sorted name order. Equal weights give equal fingerprints on any device."""
    digest = hashlib.sha256()
    for name, value in sorted(module.state_dict().items()):
        if not isinstance(value, torch.Tensor):  # a module's extra state
            digest.update(f"{name}|{value!r}|".encode())
            continue
        tensor = value.detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()
