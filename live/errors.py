"""Errors that say what helps (freqtrade's taxonomy, Nautilus' "unknown outcome").

* :class:`RetryableBrokerError` - timeouts, 429, 5xx on reads: retrying can help.
* :class:`OrderRejected` - the broker definitively refused: do not retry the same order.
* :class:`AmbiguousSubmit` - a state-changing call whose outcome is unknown (timeout, reset,
  504, a 422 "client_order_id must be unique" after our own submit): look the order up by its
  ``client_order_id`` before doing anything else.
* :class:`MalformedResponse` - the broker answered something we cannot trust (HTML, ``{}``,
  wrong types): reconciliation fails closed.
"""

from __future__ import annotations

from contracts.errors import ContractError


class LiveError(RuntimeError):
    """Base of every live-runner error."""


class ConfigError(LiveError, ContractError):
    """A manifest, limit or setting is invalid; the message names the input and the fix.

    Also a :class:`~contracts.errors.ContractError` (a ``ValueError``), the class the shared
    calendar and manifest raise, so one ``except ContractError`` catches all bad input.
    """


class LiveModeRefused(ConfigError):
    """Live trading requested without the explicit opt-in, or the host is not the expected one."""


class BrokerError(LiveError):
    """A broker call failed.

    Attributes:
        status: HTTP status, if any.
        code: Broker error code (Alpaca's 8-digit code), if the body had one.
    """

    def __init__(self, message: str, status: int | None = None, code: int | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RetryableBrokerError(BrokerError):
    """Transient: a retry (after ``retry_after`` seconds when known) can help."""

    def __init__(
        self, message: str, status: int | None = None, code: int | None = None,
        retry_after: float | None = None,
    ) -> None:  # fmt: skip
        super().__init__(message, status, code)
        self.retry_after = retry_after


class OrderRejected(BrokerError):
    """The broker refused the order; retrying the same order cannot help."""


class OrderNotFound(BrokerError):
    """The broker does not know the order (404)."""


class AmbiguousSubmit(BrokerError):
    """The order may or may not exist at the broker: look it up by ``client_order_id`` first."""

    def __init__(
        self, message: str, client_order_id: str, status: int | None = None, code: int | None = None
    ) -> None:
        super().__init__(message, status, code)
        self.client_order_id = client_order_id


class AuthRejected(BrokerError):
    """The broker refused our keys (HTTP 401): nothing was processed; new orders halt until
    valid keys appear (:class:`live.runner.broker_watch.BrokerWatch`)."""


class MalformedResponse(BrokerError):
    """The broker's answer could not be parsed into a trustworthy report."""


class ReconciliationError(LiveError):
    """Local and broker state disagree in a way that must not be papered over."""
