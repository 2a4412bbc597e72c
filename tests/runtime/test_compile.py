"""``train.compile``: compiled networks train like eager ones, and a missing compiler falls back
to eager with a message instead of failing at the first step."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._inductor.config as inductor_config

from noisyarl.builders import untrained_defence
from noisyarl.runtime import StepContext
from noisyarl.runtime import compile as compile_module
from noisyarl.runtime.compile import compile_children, compiler_problem

CPU = torch.device("cpu")


def _is_compiled(module: torch.nn.Module) -> bool:
    return getattr(module, "_compiled_call_impl", None) is not None


def test_missing_cpp_compiler_is_named():
    with inductor_config.patch({"cpp.cxx": ("no-such-compiler-noisyarl",)}):
        assert "no C++ compiler" in compiler_problem(CPU)


def test_without_a_compiler_training_stays_eager_with_a_warning(monkeypatch):
    monkeypatch.setattr(compile_module, "compiler_problem",
                        lambda device: "no C++ compiler found (test)")
    defence = untrained_defence("noisy_arl", 16, split=1, sigma=1.0)
    with pytest.warns(RuntimeWarning, match="train.compile: no C.. compiler.*runs eager"):
        assert compile_children(defence, CPU) is False
    assert not any(_is_compiled(child) for child in defence.children())


@pytest.mark.skipif(compiler_problem(CPU) is not None, reason="no C++ compiler for inductor")
def test_compiled_step_matches_eager_step():
    """Same noise draws, same losses and gradients within float rounding, same state_dict keys
    (client and utility head compiled; the proxy adversary, backpropagated twice, eager)."""
    torch.manual_seed(0)
    eager = untrained_defence("noisy_arl", 16, split=1, sigma=1.0)
    compiled = copy.deepcopy(eager)
    assert compile_children(compiled, CPU, skip=compiled.proxy_adversaries()) is True
    assert _is_compiled(compiled.client) and _is_compiled(compiled.utility_head)
    assert not _is_compiled(compiled.adversary)
    images, labels = torch.rand(8, 3, 16, 16), torch.randint(0, 2, (8,))
    context = StepContext(CPU)
    outputs = []
    for defence in (eager, compiled):
        torch.manual_seed(1)
        outputs.append(defence.train_step(images, labels, labels,
                                          defence.configure_optimizers(), context))
    for key in ("utility_loss", "adversary_loss"):
        torch.testing.assert_close(outputs[1][key], outputs[0][key], rtol=1e-4, atol=1e-5)
    eager_grads = dict(eager.named_parameters())
    for name, parameter in compiled.named_parameters():
        expected = eager_grads[name].grad
        torch.testing.assert_close(parameter.grad, expected, rtol=1e-3,
                                   atol=1e-4 * float(expected.abs().max()) + 1e-7)
    assert list(compiled.state_dict()) == list(eager.state_dict())
