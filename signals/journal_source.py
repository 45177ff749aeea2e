"""Signal events from the live journal, read-only, with exactly-once hand-off to the outbox.

The runner never knows the signals service exists: it journals as always, and this tailer opens
the journal read-only (``live.journal.pg.open_journal(home, readonly=True)``: the SQLite file,
or the Postgres schema when ``ALPACA_IMPROVED_DATABASE_URL`` is set) and turns rows into
:class:`~signals.model.SignalEvent` s with deterministic ids and full lineage:

======================  ===========================================  =================
source                  event id                                     timestamp (journal)
======================  ===========================================  =================
deployments             ``approval:<dep>:<fingerprint[:16]>``         ``loaded_at``
intents (decisions)     ``decision:<dep>:<session>``                 ``decision_ts``
order_events            ``order:<cid>:<status>[:<filled qty>]``      the event's ``ts``
fills                   ``fill:<exec id>``                           the fill's ``ts``
cycles (account state)  ``risk:cycle:<seq>:<state>``                 finish (start) time
meta ``risk_since``     ``risk:<dep>:<reason>:<state>:<at>``         the reason's ``at``
======================  ===========================================  =================

Each source keeps a cursor in the signals database (``cursors``: the last ``intents.id``,
``order_events.id``, fills ``rowid``, cycle); the cursor moves in the *same* transaction that
stores the events and fans them out into outbox rows, so a crash re-reads at most what was not
committed, and the unique event ids and idempotency keys make that re-read a no-op. Lineage
comes from the deployment row: manifest id, strategy, and the MLflow run id in its manifest
JSON; client order ids from the intents, orders and fills.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from live.journal.codec import intent_from_json, ts_from_text
from live.journal.pg import open_journal
from live.journal.store import Journal
from signals import outbox as ob
from signals.db import signal_events
from signals.fanout import fan_out
from signals.journal_charts import fill_chart
from signals.model import EventKind, Lineage, SignalEvent, price_text

ACCOUNT = "account"  # the deployment id of account-wide events (they concern every plan)
# order statuses worth a signal (the journal's local and pending states are not)
ORDER_STATUSES = {
    "new": "submitted", "accepted": "submitted", "partially_filled": "partially_filled",
    "filled": "filled", "canceled": "canceled", "expired": "expired", "rejected": "rejected",
    "done_for_day": "done_for_day", "risk_rejected": "risk_rejected",
    "unsent_expired": "unsent_expired", "replaced": "replaced",
}  # fmt: skip


class JournalSource:
    """Tail one runner's journal into events and outbox rows (module docstring).

    Args:
        engine: The signals database.
        home: The data root whose journal to read (Postgres when the database URL is set).
        opener: How to open the journal read-only (tests pass their own).
    """

    def __init__(
        self, engine: Engine, home: Path, opener: Callable[[], Journal] | None = None
    ) -> None:
        self.engine = engine
        self.home = home
        self.opener = opener or (lambda: open_journal(home, readonly=True))

    def poll(self, now: dt.datetime | None = None) -> int:
        """Read what is new, store it with its outbox rows and cursors; returns new events."""
        now = now or dt.datetime.now(dt.UTC)
        try:
            j = self.opener()
        except FileNotFoundError:  # no runner has written a journal yet
            return 0
        try:
            with self.engine.connect() as conn:
                cur = {name: ob.get_cursor(conn, name, "") for name in _CURSORS}
            read = _Reader(j, cur)
            events = read.all()
        finally:
            j.close()
        with self.engine.begin() as conn:
            ids = [e.event_id for e in events]
            have = {
                r[0]
                for i in range(0, len(ids), 500)
                for r in conn.execute(
                    sa.select(signal_events.c.event_id).where(
                        signal_events.c.event_id.in_(ids[i : i + 500])
                    )
                )
            }
            new = [e for e in _unique(events) if e.event_id not in have]
            fan_out(conn, new, now)
            for name, value in read.cursors.items():
                if value != cur.get(name):
                    ob.set_cursor(conn, name, value)
        return len(new)


_CURSORS = ("journal:intents", "journal:order_events", "journal:fills", "journal:cycles")


def _unique(events: list[SignalEvent]) -> list[SignalEvent]:
    seen: dict[str, SignalEvent] = {}
    for e in events:
        seen.setdefault(e.event_id, e)
    return list(seen.values())


class _Reader:
    """One pass over the journal after the cursors; ``cursors`` holds the new values."""

    def __init__(self, j: Journal, cursors: dict[str, str]) -> None:
        self.j = j
        self.cursors = dict(cursors)
        self.deps = {r["id"]: dict(r) for r in j.rows("SELECT * FROM deployments")}

    def lineage(self, dep: str, cids: tuple[str, ...] = ()) -> Lineage:
        row = self.deps.get(dep)
        if row is None:
            return Lineage(dep, client_order_ids=cids)
        manifest = json.loads(row["manifest_json"])
        return Lineage(
            dep, row["manifest_id"], row["strategy"], str(manifest.get("mlflow_run_id") or ""),
            cids,
        )  # fmt: skip

    def all(self) -> list[SignalEvent]:
        return [
            *self.approvals(), *self.decisions(), *self.orders(), *self.fills(),
            *self.cycles(), *self.deployment_risk(),
        ]  # fmt: skip

    def _int(self, name: str) -> int:
        return int(self.cursors.get(name) or 0)

    def approvals(self) -> list[SignalEvent]:
        out = []
        for dep, row in sorted(self.deps.items()):
            m = json.loads(row["manifest_json"])
            appr = m.get("approval") or {}
            facts = {"capital": m.get("capital"), "approver": appr.get("approver", ""),
                     "reason": appr.get("reason", ""), "git_sha": m.get("git_sha", ""),
                     "params": m.get("params", {})}  # fmt: skip
            title = f"{row['strategy']} deployment {dep} approved and loaded"
            out.append(SignalEvent(
                f"approval:{dep}:{row['fingerprint'][:16]}", EventKind.APPROVAL,
                ts_from_text(row["loaded_at"]), self.lineage(dep), title, facts,
            ))  # fmt: skip
        return out

    def decisions(self) -> list[SignalEvent]:
        last = self._int("journal:intents")
        rows = self.j.rows("SELECT * FROM intents WHERE id > ? ORDER BY id", last)
        groups: dict[tuple[str, str], list[Any]] = {}
        for r in rows:
            groups.setdefault((r["deployment_id"], r["session"]), []).append(r)
            last = max(last, int(r["id"]))
        self.cursors["journal:intents"] = str(last)
        out = []
        for (dep, session), items in groups.items():
            intents = [intent_from_json(r["intent_json"]) for r in items]
            lines = [_intent_line(i) for i in intents]
            cids = tuple(r["base_cid"] for r in items)
            title = (
                f"{self.lineage(dep).strategy or dep} decided {len(items)} order(s) for {session}"
            )
            out.append(SignalEvent(
                f"decision:{dep}:{session}", EventKind.DECISION,
                ts_from_text(items[0]["decision_ts"]), self.lineage(dep, cids), title,
                {"session": session, "intents": lines},
            ))  # fmt: skip
        return out

    def orders(self) -> list[SignalEvent]:
        last = self._int("journal:order_events")
        rows = self.j.rows(
            "SELECT e.id, e.client_order_id, e.ts, e.status, e.filled_qty, e.note, "
            "o.deployment_id, o.qty, o.filled_avg_price FROM order_events e "
            "JOIN orders o ON o.client_order_id = e.client_order_id WHERE e.id > ? ORDER BY e.id",
            last,
        )
        out = []
        for r in rows:
            last = max(last, int(r["id"]))
            status = ORDER_STATUSES.get(r["status"] or "")
            if status is None:
                continue
            cid, dep = r["client_order_id"], r["deployment_id"]
            eid = f"order:{cid}:{status}"
            if status == "partially_filled":
                eid += f":{r['filled_qty'] or 0:g}"
            facts = {"status": status, "filled_qty": r["filled_qty"], "qty": r["qty"],
                     "avg_price": r["filled_avg_price"], "note": r["note"] or ""}  # fmt: skip
            title = f"order {cid} {status.replace('_', ' ')}"
            out.append(SignalEvent(eid, EventKind.ORDER, ts_from_text(r["ts"]),
                                   self.lineage(dep, (cid,)), title, facts))  # fmt: skip
        self.cursors["journal:order_events"] = str(last)
        return out

    def fills(self) -> list[SignalEvent]:
        last = self._int("journal:fills")
        # the history of the deployments with new fills only (their charts need it)
        rows = self.j.rows(
            "SELECT rowid AS rid, * FROM fills WHERE deployment_id IN "
            "(SELECT DISTINCT deployment_id FROM fills WHERE rowid > ?) ORDER BY rowid",
            last,
        )
        history: dict[str, list[Any]] = {}
        out = []
        for r in rows:
            history.setdefault(r["deployment_id"], []).append(r)
            if int(r["rid"]) <= last:
                continue
            last = int(r["rid"])
            dep = r["deployment_id"]
            cids = (r["client_order_id"],) if r["client_order_id"] else ()
            lin = self.lineage(dep, cids)
            side = "BUY" if r["qty"] > 0 else "SELL"
            price = price_text(r["price"])
            title = f"{side} {abs(r['qty']):g} {r['symbol']} @ {price} ({lin.strategy})"
            facts = {"symbol": r["symbol"], "qty": r["qty"], "price": r["price"],
                     "asset_class": r["asset_class"], "kind": r["kind"],
                     "chart": fill_chart(history[dep], self.deps.get(dep))}  # fmt: skip
            out.append(SignalEvent(f"fill:{r['exec_id']}", EventKind.FILL, ts_from_text(r["ts"]),
                                   lin, title, facts))  # fmt: skip
        self.cursors["journal:fills"] = str(last)
        return out

    def cycles(self) -> list[SignalEvent]:
        cur = json.loads(self.cursors.get("journal:cycles") or '{"seq": 0, "state": "active"}')
        seq, state = int(cur["seq"]), str(cur["state"])
        rows = self.j.rows("SELECT * FROM cycles WHERE seq > ? ORDER BY seq", seq)
        since = self.j.get_meta("risk_since", {}) or {}
        out = []
        for k, r in enumerate(rows):
            done = r["finished_at"] is not None
            # a cycle row holds one state: its start state while it runs, its end state after
            at = r["finished_at"] if done else r["started_at"]
            if r["state"] != state:
                out.append(self._risk(r["seq"], at, state, r["state"], since))
            if not done and k + 1 == len(rows):
                break  # the cycle under way: read it again when it has finished
            state, seq = r["state"], int(r["seq"])
        self.cursors["journal:cycles"] = json.dumps({"seq": seq, "state": state})
        return out

    def _risk(self, seq: int, at: str, old: str, new: str, since: Any) -> SignalEvent:
        ts = ts_from_text(at)
        reasons = {
            f"{scope or 'account'}/{key}": v.get("state")
            for scope, keys in since.items() for key, v in keys.items()
            if ts_from_text(v.get("at", at)) <= ts
        }  # fmt: skip
        title = f"trading state {old.upper()} -> {new.upper()} (whole account)"
        return SignalEvent(f"risk:cycle:{seq}:{new}", EventKind.RISK, ts,
                           Lineage(ACCOUNT), title,
                           {"from": old, "to": new, "reasons": reasons})  # fmt: skip

    def deployment_risk(self) -> list[SignalEvent]:
        since = self.j.get_meta("risk_since", {}) or {}
        details = self.j.get_meta("risk_details", {}) or {}
        out = []
        for scope, keys in sorted(since.items()):
            if not scope:
                continue  # account-wide: the cycles' state transitions report it
            for key, v in sorted(keys.items()):
                state, at = v.get("state", ""), v.get("at", "")
                if not at:
                    continue
                title = f"{scope}: {state.upper()} ({key})"
                out.append(SignalEvent(
                    f"risk:{scope}:{key}:{state}:{at}", EventKind.RISK, ts_from_text(at),
                    self.lineage(scope), title,
                    {"from": "active", "to": state, "reasons": {key: state},
                     "note": str(details.get(key, ""))[:300]},
                ))  # fmt: skip
        return out


def _intent_line(intent: Any) -> str:
    legs = " / ".join(f"{leg.side.value.upper()} {leg.ratio_qty * intent.qty:g} {leg.symbol}"
                      for leg in intent.legs)  # fmt: skip
    price = f" LMT {price_text(intent.limit_price)}" if intent.limit_price is not None else " MKT"
    reason = f" ({intent.reason})" if intent.reason else ""
    return f"{legs}{price}{reason}"
