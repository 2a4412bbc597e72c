"""The errors a user's input can raise, below every other module so that any layer may raise them.

:class:`ConfigError` is also importable as ``noisyarl.config.ConfigError``; the command line
prints its message as one ``error:`` line and exits with status 2.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A config key is unknown or its value is invalid; the message names the key."""
