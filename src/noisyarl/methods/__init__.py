"""Defences, by name. A new defence is one module plus one line in ``METHODS``."""

from __future__ import annotations

import dataclasses
from typing import Any

from noisyarl.methods.base import Defence, DefenceSpec
from noisyarl.methods.deep_obfuscator import DeepObfuscator
from noisyarl.methods.disco import Disco
from noisyarl.methods.maxent import MaxEntARL
from noisyarl.methods.noisy_arl import NoisyARL
from noisyarl.methods.upper_bound import UpperBound

METHODS: dict[str, type[Defence]] = {
    NoisyARL.name: NoisyARL,
    UpperBound.name: UpperBound,
    MaxEntARL.name: MaxEntARL,
    DeepObfuscator.name: DeepObfuscator,
    Disco.name: Disco,
}


def method_params(name: str, values: dict[str, Any]) -> Any:
    """Validate ``method.params`` into the method's ``Params`` dataclass.

    Raises ``ValueError`` naming the unknown key or the bad value.
    """
    if name not in METHODS:
        raise ValueError(f"method.name: unknown method {name!r} (known: {', '.join(METHODS)})")
    params_cls = METHODS[name].Params
    known = {f.name for f in dataclasses.fields(params_cls)}
    for key in values:
        if key not in known:
            raise ValueError(
                f"method.params.{key}: unknown key for {name} (known: {', '.join(sorted(known))})"
            )
    try:
        return params_cls(**values)
    except (TypeError, ValueError) as error:
        raise ValueError(f"method.params: {error}") from error


def build_defence(name: str, spec: DefenceSpec) -> Defence:
    """Instantiate the defence ``name`` (see ``METHODS``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name](spec)


__all__ = ["METHODS", "Defence", "DefenceSpec", "build_defence", "method_params"]
