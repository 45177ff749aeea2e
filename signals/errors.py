"""Errors of the signals service: one line naming the input and what to do."""

from __future__ import annotations


class SignalsError(RuntimeError):
    """A signals-service failure with a user-facing one-line message."""


class ConfigError(SignalsError):
    """Bad or missing configuration (a token, a URL, a plan file); fails at start-up."""
