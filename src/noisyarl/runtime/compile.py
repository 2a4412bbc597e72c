"""``train.compile: true``: the defence's networks compiled with ``torch.compile`` (inductor).

Each direct child of the defence (client, utility head) is compiled in place
with :meth:`torch.nn.Module.compile`, so parameter names, checkpoints and ``state_dict`` keys stay
those of the eager modules. Inductor needs a C++ compiler on CPU and Triton on CUDA; when one is
missing the run warns once and trains eager (same results, slower) instead of failing at the
first step.

Random ops inside compiled graphs (the Gaussian noise module) fall back to PyTorch's own
generator (``torch._inductor.config.fallback_random``), so a compiled run draws the same noise as
an eager run with the same seed. Remaining differences are float rounding of fused kernels.
The proxy adversaries stay eager (:meth:`noisyarl.methods.Defence.proxy_adversaries`): the
one-forward adversarial step backpropagates twice through each of them (``retain_graph``), and
a compiled graph backpropagated twice gave wrong parameter gradients in torch 2.14 (relative
errors above 1, measured on RN18_1 at 16 px); ``tests/runtime/test_compile.py`` checks the
gradients of the compiled step against eager.
"""

from __future__ import annotations

import importlib.util
import shutil
import warnings
from collections.abc import Sequence

import torch
from torch import nn

#: C++ compilers inductor finds on Linux/macOS when its own search cannot be asked.
_CXX = ("g++", "c++", "clang++")


def compiler_problem(device: torch.device) -> str | None:
    """Why ``torch.compile`` cannot generate code for ``device`` here, or None when it can."""
    if device.type == "cuda":
        if importlib.util.find_spec("triton") is None:
            return "Triton is not installed (inductor needs it on CUDA; pip install triton)"
        return None
    if device.type != "cpu":
        return f"no inductor backend for device {device.type!r} is tested here"
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler

        get_cpp_compiler()
        return None
    except ImportError:  # a torch without this private helper: look on PATH ourselves
        if any(shutil.which(name) for name in _CXX):
            return None
    except Exception:  # noqa: BLE001 - inductor raises its own InvalidCxxCompiler
        pass
    return ("no C++ compiler found (inductor needs one on CPU: install g++ or set CXX, "
            "e.g. apt install g++)")


def compile_children(module: nn.Module, device: torch.device,
                     skip: Sequence[nn.Module] = ()) -> bool:
    """Compile every direct child of ``module`` but those in ``skip`` in place; returns False
    (after a warning) and leaves ``module`` eager when :func:`compiler_problem` finds no
    compiler for ``device``.

    The first steps of a compiled run are slow (graphs are traced and compiled, about 40 s
    for RN18_3 at 178 px on 2 CPU cores); eval mode and a smaller last batch compile once more.
    """
    problem = compiler_problem(device)
    if problem is not None:
        warnings.warn(f"train.compile: {problem}; training runs eager instead (same results, "
                      "slower)", RuntimeWarning, stacklevel=2)
        return False
    import torch._functorch.config as functorch_config
    import torch._inductor.config as inductor_config

    inductor_config.fallback_random = True
    # The client's graph is backpropagated with retain_graph=True (StepContext.joint_step keeps
    # the proxies' graphs for their own backward); donated buffers forbid that.
    functorch_config.donated_buffer = False
    for child in module.children():
        if not any(child is skipped for skipped in skip):
            child.compile()
    return True
