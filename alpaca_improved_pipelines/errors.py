"""Errors the platform raises at its edges: each names the bad input and the fix."""

from contracts.errors import ContractError


class AlpacaImprovedError(Exception):
    """Base class for every error this platform raises on purpose."""


class ConfigError(AlpacaImprovedError, ContractError):
    """A setting, argument or environment variable is wrong; the message says which and the fix.

    A :class:`~contracts.errors.ContractError` (hence a ``ValueError``): the calendar and the
    manifest raise the base class, so code that catches bad input catches ``ContractError``.
    """


class LakeError(AlpacaImprovedError):
    """A lake file is missing, corrupted or foreign; the message names the file and what to do."""


class SourceError(AlpacaImprovedError):
    """A data source failed in a way retrying will not help (bad keys, bad payload, no data)."""


class TransientSourceError(SourceError):
    """A data source failed in a way a retry may fix (429, 5xx, timeouts, connection resets)."""
