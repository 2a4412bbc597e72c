"""Checks of user-given values shared by the config and the methods' params."""

from __future__ import annotations

import math


def finite_number(value: int | float, key: str) -> float:
    """``value`` as a float; nan, inf, -inf and integers beyond the float range raise
    ``ValueError`` naming ``key``.

    >>> finite_number(3, "method.sigma")
    3.0
    """
    try:
        number = float(value)
    except OverflowError:  # an integer beyond the float range
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{key}: must be a finite number, got {value!r}")
    return number
