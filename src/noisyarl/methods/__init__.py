"""Defences, by name. A new defence is one module plus one line in ``METHODS``.

The module subclasses :class:`Defence` (its class flags say what the rest of the toolkit does
with it: :meth:`Defence.describe`, :meth:`Defence.noise_module`); the line registers the class
under its ``name``. Training, attacks, reports, export and latency then take it unchanged;
``tests/methods/test_contract.py`` checks every registered defence against that contract.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import warnings
from typing import Any

from noisyarl.methods.adversary import adversarial_update
from noisyarl.methods.base import Defence, DefenceSpec, Knob
from noisyarl.methods.deep_obfuscator import DeepObfuscator
from noisyarl.methods.disco import Disco
from noisyarl.methods.image_space import Blur, Pixelation, PixelNoise
from noisyarl.methods.maxent import MaxEntARL
from noisyarl.methods.noise_only import NoiseOnly
from noisyarl.methods.noisy_arl import NoisyARL
from noisyarl.methods.nopeek import NoPeek
from noisyarl.methods.shredder import Shredder
from noisyarl.methods.upper_bound import UpperBound
from noisyarl.utils.validate import finite_number

METHODS: dict[str, type[Defence]] = {
    NoisyARL.name: NoisyARL,
    UpperBound.name: UpperBound,
    MaxEntARL.name: MaxEntARL,
    DeepObfuscator.name: DeepObfuscator,
    Disco.name: Disco,
    NoiseOnly.name: NoiseOnly,
    NoPeek.name: NoPeek,
    Blur.name: Blur,
    Pixelation.name: Pixelation,
    PixelNoise.name: PixelNoise,
    Shredder.name: Shredder,
}


def method_params(name: str, values: dict[str, Any], prefix: str = "method") -> Any:
    """Validate ``method.params`` into the method's ``Params`` dataclass.

    Every value is checked against its field's type (a float field takes any finite number, an
    int field an integer; true/false is not a number) before the dataclass's own range checks.
    ``prefix`` is the config key of the method (``compare[0].method``) that messages name.
    Keys a defence has renamed (its ``Params.RENAMED``, old -> new, e.g. MaxEnt's
    ``encoder_lr`` -> ``client_lr``) are read under their new name with a ``FutureWarning``
    that names it. Raises ``ValueError`` naming the unknown key or the bad value.
    """
    if name not in METHODS:
        raise ValueError(f"{prefix}.name: unknown method {name!r} (known: {', '.join(METHODS)})")
    params_cls = METHODS[name].Params
    values = _renamed_params(values, getattr(params_cls, "RENAMED", {}), prefix)
    hints = typing.get_type_hints(params_cls)
    known = [f.name for f in dataclasses.fields(params_cls)]
    for key in values:
        if key not in known:
            raise ValueError(_unknown_param(name, key, known, prefix))
    checked = {key: _param_value(value, hints[key], f"{prefix}.params.{key}")
               for key, value in values.items()}
    try:
        return params_cls(**checked)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{prefix}.params: {error}") from error


def _renamed_params(values: dict[str, Any], renamed: dict[str, str],
                    prefix: str) -> dict[str, Any]:
    """``values`` with renamed keys (old -> new) under their new names, each with a warning."""
    if not any(old in values for old in renamed):
        return values
    updated = dict(values)
    for old, new in renamed.items():
        if old not in updated:
            continue
        if new in updated:
            raise ValueError(f"{prefix}.params: both {old} and {new} are given; {old} is the "
                             f"old name of {new}, keep only {new}")
        warnings.warn(f"{prefix}.params.{old} is deprecated; write {prefix}.params.{new}",
                      FutureWarning, stacklevel=3)
        updated[new] = updated.pop(old)
    return updated


def _unknown_param(name: str, key: str, known: list[str], prefix: str) -> str:
    """The message for a params key that ``name`` does not have (maybe another method's)."""
    message = f"{prefix}.params.{key}: unknown key for {name} (known: {', '.join(sorted(known))})"
    owners = [other for other, method in METHODS.items()
              if other != name and key in {f.name for f in dataclasses.fields(method.Params)}]
    if not owners:
        return message
    clear = ("clear them with --set method.params={}" if prefix == "method"
             else f"remove them from {prefix}.params")
    return f"{message}; these params belong to another method ({', '.join(owners)}): {clear}"


def _param_value(value: Any, hint: Any, key: str) -> Any:
    """``value`` checked against a ``Params`` field's type hint; raises ``ValueError``."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        options = [option for option in args if option is not type(None)]
        return _param_value(value, options[0], key) if len(options) == 1 else value
    if typing.get_origin(hint) is typing.Literal:
        if value not in args:
            raise ValueError(f"{key}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if hint is bool and not isinstance(value, bool):
        raise ValueError(f"{key}: expected true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"{key}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        return finite_number(value, key)
    if hint is str and not isinstance(value, str):
        raise ValueError(f"{key}: expected a string, got {value!r}")
    return value


def find_knob(name: str, key: str = "") -> Knob:
    """The trade-off knob ``key`` of defence ``name`` (default: its first). Raises
    ``ValueError`` naming the defence and its knobs when it has no such knob.

    >>> find_knob("maxent_arl").key, find_knob("noisy_arl", "params.lambda_adv").grid
    ('params.alpha', (0.01, 0.1, 0.5, 1.0))
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    knobs = METHODS[name].knobs
    if not knobs:
        raise ValueError(f"{name} has no trade-off knob")
    if not key:
        return knobs[0]
    for knob in knobs:
        if knob.key == key:
            return knob
    raise ValueError(f"{name} has no knob {key!r} (its knobs: "
                     f"{', '.join(knob.key for knob in knobs)})")


def build_defence(name: str, spec: DefenceSpec) -> Defence:
    """Instantiate the defence ``name`` (see ``METHODS``)."""
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    return METHODS[name](spec)


__all__ = ["METHODS", "Defence", "DefenceSpec", "Knob", "adversarial_update", "build_defence",
           "find_knob", "method_params"]
