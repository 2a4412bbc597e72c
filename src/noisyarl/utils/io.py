"""Result files that are never half-written: atomic writes, JSON in and out.

Every writer here writes a temporary file in the destination's directory, flushes and fsyncs it,
then moves it over the destination with :func:`os.replace` (atomic on POSIX and Windows within
one file system). A reader therefore sees either the old file or the complete new one, and a
writer that fails part-way (a serializer raising, a full disk) leaves the old file untouched.
A full disk (or an exhausted quota) is reported as one :class:`DiskFullError` that names the
file that was not written.
"""

from __future__ import annotations

import errno
import json
import math
import os
import re
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

import torch

from noisyarl.errors import ConfigError

#: Permission bits asked for new files; the process umask is applied on top, as for ``open()``.
_NEW_FILE_MODE = 0o666
#: Names of this module's temporary files: ``.<destination name>.<32 hex digits>.tmp``.
_TEMPORARY_NAME = re.compile(r"^\..+\.[0-9a-f]{32}\.tmp$")


#: errno values of a full disk: no space left, disk quota exceeded.
_DISK_FULL = frozenset({errno.ENOSPC, errno.EDQUOT})


class DiskFullError(ConfigError, OSError):
    """The disk (or the quota) was full while writing a file: that file was not written.

    The writer removed its temporary file, so the file it would have replaced is intact and
    nothing else was lost. The command line prints it as one ``error:`` line (exit status 2).
    """


def _disk_full(path: Path, error: OSError) -> DiskFullError:
    return DiskFullError(
        f"{os.strerror(error.errno or errno.ENOSPC).lower()}: {path} was not written; its "
        f"temporary file was removed, the previous {path.name} (if any) is intact and nothing "
        "else was lost; free some space and run again (--resume continues an interrupted run)"
    )


@contextmanager
def _atomic_binary_file(path: str | Path) -> Iterator[BinaryIO]:
    """Yield a binary file that replaces ``path`` when the block ends without an exception.

    Parent directories are created. On an exception the temporary file is removed and the old
    ``path`` (if any) is left as it was; a full disk raises :class:`DiskFullError`.
    """
    path = Path(path)
    try:
        with _replacing_temporary(path) as handle:
            yield handle
    except DiskFullError:
        raise
    except OSError as error:
        if error.errno in _DISK_FULL:
            raise _disk_full(path, error) from error
        raise


@contextmanager
def _replacing_temporary(path: Path) -> Iterator[BinaryIO]:
    """The temporary file of :func:`_atomic_binary_file`, moved over ``path`` on success and
    removed on any exception."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temp_path = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    descriptor = os.open(temp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, _NEW_FILE_MODE)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``path`` as a :class:`Path`.

    >>> import tempfile
    >>> target = Path(tempfile.mkdtemp()) / "sub" / "blob.bin"
    >>> atomic_write_bytes(target, b"abc").read_bytes()
    b'abc'
    """
    with _atomic_binary_file(path) as handle:
        handle.write(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (UTF-8 by default); returns ``path``."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_torch_save(obj: Any, path: str | Path) -> Path:
    """``torch.save(obj)`` to ``path`` atomically, streaming into the temporary file; returns
    ``path``. Load such files with ``torch.load(path, weights_only=True)``."""
    with _atomic_binary_file(path) as handle:
        torch.save(obj, handle)
    return Path(path)


def to_json_value(obj: Any) -> Any:
    """``obj`` as plain JSON data.

    Non-finite floats (NaN, ±inf) become ``None`` (JSON ``null``), because JSON has no such
    numbers; tuples become lists; :class:`Path` becomes ``str``; NumPy scalars and 0-dim tensors
    become Python numbers. Dictionary keys must already be strings.

    >>> to_json_value({"psnr": float("inf"), "shape": (3, 4), "acc": 0.5})
    {'psnr': None, 'shape': [3, 4], 'acc': 0.5}
    """
    if isinstance(obj, dict):
        return {_json_key(key): to_json_value(value) for key, value in obj.items()}
    if isinstance(obj, list | tuple):
        return [to_json_value(value) for value in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, torch.Tensor) and obj.dim() == 0:
        obj = obj.item()
    elif hasattr(obj, "dtype") and hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:
        obj = obj.item()  # a NumPy scalar
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _json_key(key: Any) -> str:
    if not isinstance(key, str):
        raise TypeError(f"JSON object keys must be strings, got {key!r}")
    return key


def write_json(path: str | Path, obj: Any) -> Path:
    """Write ``obj`` as UTF-8 JSON (indent 2, key order kept, trailing newline) atomically.

    Values pass through :func:`to_json_value` first, so NaN and ±inf are written as ``null``;
    the file is then strict JSON (``allow_nan=False``) that any JSON reader accepts. Values that
    JSON cannot represent raise ``TypeError`` and leave an existing file untouched.
    """
    text = json.dumps(to_json_value(obj), indent=2, allow_nan=False, ensure_ascii=False)
    return atomic_write_text(path, text + "\n")


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` names a temporary file of this module's atomic writers."""
    return bool(_TEMPORARY_NAME.match(Path(path).name))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporary files that writers killed mid-write (SIGKILL, power loss) left
    under ``folder`` (recursively); returns them. Call it only when no writer is running there.

    Such a file never replaced its destination, so no result is lost.
    """
    removed = []
    for path in sorted(Path(folder).rglob(".*.tmp")):
        if path.is_file() and is_temporary(path):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def read_json(path: str | Path) -> Any:
    """Read a JSON file written by :func:`write_json` (or any UTF-8 JSON file)."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


__all__ = [
    "DiskFullError",
    "atomic_torch_save",
    "atomic_write_bytes",
    "atomic_write_text",
    "is_temporary",
    "read_json",
    "remove_stale_temporaries",
    "to_json_value",
    "write_json",
]
