"""Device resolution and the hardware description recorded with every run."""

from __future__ import annotations

import pytest
import torch

from noisyarl.errors import ConfigError
from noisyarl.runtime import describe_device, resolve_device
from noisyarl.runtime.device import cpu_model


def test_cpu_model_is_read_from_cpuinfo(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                       "model name\t: AMD EPYC 7B13 64-Core Processor\nflags\t\t: avx2\n")
    assert cpu_model(cpuinfo) == "AMD EPYC 7B13 64-Core Processor"


def test_cpu_model_falls_back_to_the_architecture_without_cpuinfo(tmp_path):
    model = cpu_model(tmp_path / "missing")
    assert model and "model name" not in model
    (tmp_path / "blank").write_text("processor\t: 0\nmodel name\t:\n")
    assert cpu_model(tmp_path / "blank") == model


def test_a_cpu_is_described_with_its_model_and_thread_count():
    description = describe_device(torch.device("cpu"))
    assert description.startswith(f"CPU {cpu_model()}")
    assert description.endswith(f"{torch.get_num_threads()} threads")


def test_auto_resolves_to_this_machine_and_a_missing_gpu_is_a_config_error():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="cuda"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="not a device"):
        resolve_device("gpu-please")
