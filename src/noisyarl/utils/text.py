"""Small text helpers for messages shown to users."""

from __future__ import annotations


def excerpt(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters; an ellipsis marks a cut.

    Error answers quote what a client sent only through this, so they stay short.

    >>> excerpt("x" * 50, 8)
    'xxxxxxx…'
    >>> excerpt("short", 8)
    'short'
    """
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"
