"""Deterministic client order ids: ``aimp-<deploy8>-<yyyymmddHHMM>-<nn><leg>-<hash6>[-rN]``.

* ``deploy8``: the deployment id squeezed to 8 lower-case alphanumerics (traceable through the
  journal's deployments table; the hash disambiguates collisions);
* ``yyyymmddHHMM``: the decision time in UTC; ``nn``: the intent's index in that decision;
* ``leg``: ``s`` for a simple order, ``m2``..``m4`` for an mleg order of that many legs;
* ``hash6``: sha256 of (deployment id, exact decision time, index, session), so two decisions in
  the same minute still differ;
* ``-rN``: the Nth resubmission after a cancel or replace; Alpaca refuses a reused id even after
  the first order was cancelled (alpaca-py #260), so a resubmit always gets a new one.

Every id is at most 48 characters (Alpaca's documented limit).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, datetime

PREFIX = "aimp-"
MAX_LEN = 48
_ID = re.compile(
    r"^aimp-(?P<dep>[a-z0-9]{1,8})-(?P<ts>\d{12})-(?P<seq>\d{2,3})(?P<leg>s|m[2-4])"
    r"-(?P<hash>[0-9a-f]{6})(?:-r(?P<attempt>\d{1,3}))?$"
)


@dataclass(frozen=True, slots=True)
class ClientOrderIdParts:
    """The fields a client order id encodes."""

    deploy8: str
    minute: str
    seq: int
    legs: int
    digest: str
    attempt: int

    @property
    def base(self) -> str:
        """The id of attempt 0 (the original submission)."""
        leg = "s" if self.legs == 1 else f"m{self.legs}"
        return f"{PREFIX}{self.deploy8}-{self.minute}-{self.seq:02d}{leg}-{self.digest}"


def deploy8(deployment_id: str) -> str:
    """The deployment id squeezed to at most 8 lower-case alphanumerics."""
    squeezed = re.sub(r"[^a-z0-9]", "", deployment_id.lower())[:8]
    return squeezed or hashlib.sha256(deployment_id.encode()).hexdigest()[:8]


def client_order_id(
    deployment_id: str,
    decision_ts: datetime,
    seq: int,
    legs: int,
    attempt: int = 0,
    salt: str = "",
) -> str:
    """The deterministic id of intent ``seq`` of one decision (and its ``attempt``).

    ``salt`` (the decision's key: its session, or a minute decision's minute, see
    :func:`live.runner.intraday.minute_key`) keeps two decisions at the same instant distinct.

    Raises:
        ValueError: On a naive ``decision_ts`` or out-of-range ``seq``/``legs``/``attempt``.
    """
    if decision_ts.tzinfo is None:
        raise ValueError("decision_ts must be timezone-aware")
    if not 0 <= seq <= 999 or not 1 <= legs <= 4 or not 0 <= attempt <= 999:
        raise ValueError(f"seq/legs/attempt out of range: {seq}/{legs}/{attempt}")
    utc = decision_ts.astimezone(UTC)
    key = f"{deployment_id}|{utc.isoformat()}|{seq}" + (f"|{salt}" if salt else "")
    digest = hashlib.sha256(key.encode()).hexdigest()[:6]
    parts = ClientOrderIdParts(
        deploy8(deployment_id), utc.strftime("%Y%m%d%H%M"), seq, legs, digest, attempt
    )
    return with_attempt(parts.base, attempt)


def with_attempt(cid: str, attempt: int) -> str:
    """``cid``'s base id with resubmission suffix ``attempt`` (0 = none)."""
    parts = parse(cid)
    if parts is None:
        raise ValueError(f"not one of our client order ids: {cid!r}")
    out = parts.base if attempt == 0 else f"{parts.base}-r{attempt}"
    assert len(out) <= MAX_LEN, out
    return out


def parse(cid: str) -> ClientOrderIdParts | None:
    """The parts of one of our ids, or None for anybody else's."""
    m = _ID.match(cid or "")
    if m is None:
        return None
    leg = m["leg"]
    return ClientOrderIdParts(
        m["dep"],
        m["ts"],
        int(m["seq"]),
        1 if leg == "s" else int(leg[1]),
        m["hash"],
        int(m["attempt"] or 0),
    )


def is_ours(cid: str) -> bool:
    """True for ids this runner generated."""
    return parse(cid) is not None
