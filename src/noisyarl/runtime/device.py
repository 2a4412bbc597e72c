"""Which device a run uses: ``train.device`` resolved against this machine."""

from __future__ import annotations

import platform
from pathlib import Path

import torch

from noisyarl.errors import ConfigError


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda`` without a GPU is a config error.

    local_rank: under torchrun, the GPU of this process (``cuda`` -> ``cuda:local_rank``).
    Raises :class:`~noisyarl.config.ConfigError` for a device name torch does not know and for
    a CUDA device that this machine does not have.
    """
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(name)
    except RuntimeError as error:
        raise ConfigError(f"train.device: {name!r} is not a device (use auto, cpu or cuda[:N])"
                          ) from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"train.device: {name} requested but torch.cuda.is_available() is "
                          "False; use auto or cpu")
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank)
    if device.type == "cuda" and device.index >= torch.cuda.device_count():
        raise ConfigError(f"train.device: {device} requested but this machine has "
                          f"{torch.cuda.device_count()} CUDA device(s); use auto, cuda or cpu")
    return device


def cpu_model(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """This machine's CPU model ("AMD EPYC 7B13") from Linux's ``cpuinfo``, else the
    architecture ("arm64") that :mod:`platform` reports."""
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def describe_device(device: torch.device) -> str:
    """The hardware behind ``device``, for reports: the GPU's name and CUDA version, or the
    CPU model, its architecture and torch's thread count. Recorded with every run because
    float results (and so a 3-epoch adversarial run) differ between CPU instruction sets."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (CUDA {torch.version.cuda})"
    return f"CPU {cpu_model()} ({platform.machine()}), {torch.get_num_threads()} threads"


#: Smallest image side (px) at which ``train.channels_last: auto`` uses the NHWC layout. On
#: the 2-core x86 CPU of ``benchmarks/RESULTS.md`` (bench_train_step, one-forward fp32 step,
#: RN18_3, batch 64) NHWC ran 1.11x as fast as NCHW at 178 px and 0.81x at 64 px.
CHANNELS_LAST_MIN_SIZE = 128


def resolve_channels_last(setting: bool | str, image_size: int) -> bool:
    """``train.channels_last`` as a bool: true/false as given; ``auto`` -> NHWC from
    :data:`CHANNELS_LAST_MIN_SIZE` px on (where it was measured to win), NCHW below.

    The layout changes speed and float rounding only (the noise is drawn in logical order
    whatever the layout, :mod:`noisyarl.models.noise`).
    """
    if setting == "auto":
        return image_size >= CHANNELS_LAST_MIN_SIZE
    if isinstance(setting, bool):
        return setting
    raise ValueError(f"channels_last must be true, false or 'auto', got {setting!r}")
