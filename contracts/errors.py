"""The one error a contract raises, so every process catches it the same way.

A value that crosses a process boundary and breaks its contract (a date outside the calendar's
horizon, a weekend where a session is required, a deployment manifest that does not validate)
raises :class:`ContractError`. It is a ``ValueError``; the pipelines' ``ConfigError`` and the live
runner's ``ConfigError`` both subclass it, so ``except ContractError`` at an edge catches a bad
input from any of the three packages, and each CLI prints it as one line.
"""

from __future__ import annotations


class ContractError(ValueError):
    """A value breaks a shared contract; the message names the input and the fix."""
