"""The live dashboard against a real journal, a real signals database and real lake files,
served by uvicorn on 127.0.0.1 (and, marked ``browser``, opened in Debian's headless Chromium)."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.routing import Mount

from contracts import paths
from contracts.database import DATABASE_ENV, parse_database_url
from live.journal.pg import PgJournal
from live.journal.store import Journal
from signals.dashboard import dashboard_app, standalone
from signals.dashboard.state import PROBE_EVERY_S, StateCache
from signals.db import outbox
from signals.errors import ConfigError
from tests.signals import dashboard_fixtures as fx

TOL = 1e-9


@dataclass
class Site:
    home: Path
    journal: Journal
    engine: Engine
    planted: fx.Secrets
    base: str


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    planted = fx.Secrets()
    journal = fx.build_journal(tmp_path, planted)
    engine = fx.build_outbox(tmp_path, planted)
    fx.build_lake(tmp_path)
    app = dashboard_app(tmp_path, engine, environ=planted.environ(), heartbeat_s=1.0)
    # mounted as `signals serve` mounts it: the page's relative URLs must work under a prefix
    with fx.serve(Starlette(routes=[Mount("/dashboard", app)])) as root:
        yield Site(tmp_path, journal, engine, planted, f"{root}/dashboard")
    journal.close()
    engine.dispose()


def sse_events(base: str, until: Any, timeout_s: float = 10.0, **kw: Any) -> list[tuple[str, Any]]:
    """``(event, data)`` pairs from ``/api/events`` until ``until(events)`` is true."""
    events: list[tuple[str, Any]] = []
    name, deadline = "message", time.monotonic() + timeout_s
    with httpx.stream("GET", f"{base}/api/events", timeout=timeout_s, **kw) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        for line in resp.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: "):
                events.append((name, json.loads(line.removeprefix("data: "))))
                if until(events):
                    return events
            names = [n for n, _ in events]
            assert time.monotonic() < deadline, f"no matching event in {timeout_s}s: {names}"
    raise AssertionError(f"the stream ended early after {[n for n, _ in events]}")


def test_every_section_has_the_journal_outbox_and_lake_numbers(site: Site) -> None:
    page = httpx.get(site.base, follow_redirects=True)  # /dashboard -> /dashboard/
    assert page.url.path == "/dashboard/" and 'src="static/app.js"' in page.text
    s = httpx.get(f"{site.base}/api/state").json()
    assert s["journal"]["available"] is True
    deps = {d["id"]: d for d in s["deployments"]}
    assert deps[fx.DEP_BT] == {
        "id": fx.DEP_BT, "strategy": "ma_crossover", "manifest_id": f"m-{fx.DEP_BT}",
        "mlflow_run_id": fx.RUN_ID, "capital": 100_000.0,
        "loaded_at": fx.T0.isoformat(), "active": True,
    }  # fmt: skip
    assert deps[fx.DEP_NOBT]["mlflow_run_id"] == ""
    pos = {(p["deployment_id"], p["symbol"]): (p["qty"], p["avg_price"]) for p in s["positions"]}
    assert pos == {(fx.DEP_BT, "SPY"): (10.0, 500.0), (fx.DEP_NOBT, "QQQ"): (5.0, 501.0)}
    [order] = s["open_orders"]  # the two filled orders are not open
    assert (order["deployment_id"], order["status"], order["symbols"], order["side"]) == (
        fx.DEP_BT, "new", "SPY", "sell")  # fmt: skip
    assert order["qty"] == 4.0 and order["filled_qty"] == 0.0
    assert [f["exec_id"] for f in s["fills"]] == ["x-2", "x-1"]  # newest first
    risk = s["risk"]
    assert risk["state"] == "halted" and risk["reasons"] == {"account": {"max_drawdown": "halted"}}
    assert risk["since"]["account"]["max_drawdown"]["at"] == "2024-03-05"
    assert risk["orders_by_status"] == {"filled": 2, "new": 1} and risk["fills_total"] == 2
    assert risk["last_cycle"]["state"] == "halted" and risk["halt_file"] is False
    # the limits the runner enforces: the manifests' risk_limits, as live.runner.status has them
    assert s["limits"][fx.DEP_BT]["max_daily_loss"] == 50_000.0
    assert set(s["limits"]) == {fx.DEP_BT, fx.DEP_NOBT}


def test_pnl_against_the_backtest_and_no_backtest(site: Site) -> None:
    rows = {
        r["deployment_id"]: r for r in httpx.get(f"{site.base}/api/state").json()["pnl"]["rows"]
    }
    bt = rows[fx.DEP_BT]
    live = bt["live"]
    assert live["sessions"] == 3 and live["total_pnl"] == pytest.approx(sum(fx.DAILY_PNL), abs=TOL)
    assert [e for _, e in live["equity"]] == pytest.approx(fx.expected_equity(), abs=1e-6)
    assert live["return"] == pytest.approx(sum(fx.DAILY_PNL) / 100_000.0, abs=TOL)
    assert bt["backtest"]["mlflow_run_id"] == fx.RUN_ID  # its own run, not rank 1 by accident
    assert bt["backtest"]["annual_return"] == pytest.approx(fx.ANNUAL_RETURN, abs=TOL)
    pace = (1 + fx.ANNUAL_RETURN) ** (3 / 252) - 1  # the backtest's annual return, 3 sessions
    assert live["backtest_pace_return"] == pytest.approx(pace, rel=1e-9)
    assert live["vs_backtest"] == pytest.approx(sum(fx.DAILY_PNL) / 100_000.0 - pace, abs=1e-12)
    assert live["backtest_pace"][-1][1] == pytest.approx(100_000.0 * (1 + pace), rel=1e-9)
    assert bt["replay"] == {"both": 2, "live_only": 1, "backtest_only": 0, "first": "2024-03-05",
                            "last": "2024-03-05", "price_diff_bps_mean": 3.0}  # fmt: skip
    assert bt["note"] == ""
    nobt = rows[fx.DEP_NOBT]  # no MLflow run in backtest_runs, no replay rows: nothing invented
    assert nobt["backtest"] is None and nobt["replay"] is None and nobt["live"] is None
    assert nobt["note"].startswith("no backtest")


def test_outbox_delivery_state(site: Site) -> None:
    o = httpx.get(f"{site.base}/api/state").json()["outbox"]
    assert o["total"] == 6
    assert o["by_status"] == {"pending": 2, "inflight": 1, "sent": 2, "dead": 1}
    assert o["by_channel"] == {"telegram": {"sent": 1, "pending": 2, "dead": 1},
                               "discord": {"sent": 1, "inflight": 1}}  # fmt: skip
    assert [r["id"] for r in o["recent"]] == [6, 5, 4, 3, 2, 1]
    retried = next(r for r in o["recent"] if r["id"] == 4)
    assert (retried["status"], retried["attempts"]) == ("pending", 2)
    assert retried["last_error"] == "429 Too Many Requests: retry after 5"
    assert retried["not_before"] == fx.T0.isoformat() and retried["kind"] == "fill"
    [dead] = o["dead_letters"]
    assert (dead["id"], dead["attempts"], dead["channel"]) == (6, 5, "telegram")
    assert (
        "403 bot was blocked" in dead["last_error"] and "bot***/sendMessage" in dead["last_error"]
    )
    assert all("target" not in r for r in o["recent"])  # a subscriber's chat id is not shown


def test_no_secret_in_any_response(site: Site) -> None:
    bodies = [httpx.get(f"{site.base}{p}").text for p in
              ("/", "/api/state", "/static/app.js", "/static/style.css")]  # fmt: skip
    events = sse_events(site.base, lambda ev: ev and ev[-1][0] == "heartbeat")
    bodies.append(json.dumps(events))
    state = json.loads(bodies[1])
    assert state["risk"]["details"]["max_drawdown"] == "postgresql://signals:***@db"
    for secret in site.planted.all():
        for body in bodies:
            assert secret not in body
    # the planted values really are in the sources the dashboard read
    rows = site.journal.rows("SELECT manifest_json FROM deployments")
    assert any(site.planted.token in r[0] for r in rows)
    with site.engine.connect() as conn:
        errors = [r[0] for r in conn.execute(sa.select(outbox.c.last_error))]
    assert any(site.planted.stray_password in e for e in errors)


def test_read_only(site: Site) -> None:
    site.journal.close()  # no writer: the journal file alone, no -wal
    journal = paths.journal_path(site.home)
    before = (hashlib.sha256(journal.read_bytes()).hexdigest(), sorted(journal.parent.iterdir()))
    for path in ("/", "/api/state", "/api/events", "/static/app.js"):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            assert httpx.request(method, f"{site.base}{path}").status_code == 405, (method, path)
    assert httpx.get(f"{site.base}/api/state").json()["journal"]["available"] is True
    after = (hashlib.sha256(journal.read_bytes()).hexdigest(), sorted(journal.parent.iterdir()))
    assert after == before  # not a byte changed, no -wal or -shm created
    site.journal = Journal(journal)


def write_after_first_state(journal: Journal, engine: Engine) -> Any:
    """An ``until`` for :func:`sse_events`: on the first state, write a fill and an outbox row;
    true once a later state shows the fill."""

    def until(events: list[tuple[str, Any]]) -> bool:
        if len(events) == 1:
            fx.add_fill(journal, "x-new", 2.0, 510.0)
            with engine.begin() as conn:
                conn.execute(sa.insert(outbox), [fx.outbox_row(9, "discord", "sent", 1, "")])
        states = [d for name, d in events if name == "state"]
        return any(d["fills"][0]["exec_id"] == "x-new" for d in states[1:])

    return until


def assert_pushed(events: list[tuple[str, Any]]) -> None:
    first, last = events[0][1], events[-1][1]
    assert first["fills"][0]["exec_id"] == "x-2" and last["risk"]["fills_total"] == 3
    assert last["outbox"]["total"] == 7 and last["outbox"]["by_status"]["sent"] == 3
    assert last["version"] != first["version"]


def test_sse_pushes_a_change_and_heartbeats(site: Site) -> None:
    started = time.monotonic()
    assert_pushed(sse_events(site.base, write_after_first_state(site.journal, site.engine)))
    assert time.monotonic() - started < 5.0  # polled each second, pushed on the change
    beats = sse_events(site.base, lambda ev: ev[-1][0] == "heartbeat", timeout_s=5)
    assert [name for name, _ in beats].count("state") == 1  # nothing changed: one state only


def test_basic_auth_on_every_route(tmp_path: Path) -> None:
    planted = fx.Secrets()
    engine = fx.build_outbox(tmp_path, planted)
    pw_file = tmp_path / "dash_pw"
    pw_file.write_text(planted.dash_password + "\n")
    env = {**planted.environ(), "ALPACA_IMPROVED_DASHBOARD_USER": "ops",
           "ALPACA_IMPROVED_DASHBOARD_PASSWORD_FILE": str(pw_file)}  # fmt: skip
    routes = ("/", "/api/state", "/api/events", "/static/app.js")
    with fx.serve(dashboard_app(tmp_path, engine, environ=env)) as base:
        for path in routes:
            resp = httpx.get(f"{base}{path}")
            assert resp.status_code == 401 and resp.headers["www-authenticate"].startswith("Basic")
            assert httpx.get(f"{base}{path}", auth=("ops", "wrong")).status_code == 401
            assert (
                httpx.get(f"{base}{path}", auth=("root", planted.dash_password)).status_code == 401
            )
            bad = {"Authorization": "Basic !!notbase64"}
            assert httpx.get(f"{base}{path}", headers=bad).status_code == 401
        ok = ("ops", planted.dash_password)
        assert httpx.get(f"{base}/api/state", auth=ok).json()["journal"]["available"] is False
        assert httpx.get(f"{base}/", auth=ok).status_code == 200
        token = base64.b64encode(f"ops:{planted.dash_password}".encode()).decode()
        events = sse_events(base, lambda ev: bool(ev), headers={"Authorization": f"Basic {token}"})
        assert events[0][0] == "state"
    half = {"ALPACA_IMPROVED_DASHBOARD_USER": "ops"}
    with pytest.raises(ConfigError, match="ALPACA_IMPROVED_DASHBOARD_PASSWORD is not set"):
        dashboard_app(tmp_path, engine, environ=half)


def test_empty_data_root(tmp_path: Path) -> None:
    engine = fx.build_outbox(tmp_path / "signals_only", fx.Secrets())
    with engine.begin() as conn:
        conn.execute(sa.delete(outbox))
    with fx.serve(dashboard_app(tmp_path, engine, environ={})) as base:
        s = httpx.get(f"{base}/api/state").json()
    assert s["journal"]["available"] is False and "no journal yet" in s["journal"]["problem"]
    assert s["deployments"] is None and s["pnl"] == {"rows": []}
    assert s["outbox"]["total"] == 0 and s["outbox"]["dead_letters"] == []


@pytest.fixture
def browser_page(site: Site) -> Iterator[tuple[Any, list[str]]]:
    """A headless Chromium page (Debian's) and the console errors it logs."""
    chromium = fx.chromium_or_skip()
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=fx.CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(10_000)
        page.on(
            "console",
            lambda m: errors.append(f"{m.text} {m.location}") if m.type == "error" else None,
        )
        page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
        try:
            yield page, errors
        finally:
            page.close()  # ends the page's event stream before the server stops
            browser.close()


def _write_fill_and_outbox_row(site: Site) -> None:
    fx.add_fill(site.journal, "x-new", 2.0, 510.0)
    with site.engine.begin() as conn:
        conn.execute(sa.insert(outbox), [fx.outbox_row(9, "discord", "sent", 1, "")])


@pytest.mark.browser
def test_page_shows_the_journal_and_refreshes_live_in_chromium(
    site: Site, browser_page: tuple[Any, list[str]]
) -> None:
    from playwright.sync_api import expect

    page, errors = browser_page
    page.goto(f"{site.base}/")
    expect(page.get_by_test_id("live-mode")).to_have_text("live")
    spy = page.locator(f'[data-testid=position-row][data-key="{fx.DEP_BT}|SPY"] td')
    expect(spy.nth(2)).to_have_text("10")
    expect(spy.nth(3)).to_have_text("500")
    expect(page.get_by_test_id("position-row")).to_have_count(2)
    [order] = httpx.get(f"{site.base}/api/state").json()["open_orders"]
    row = page.locator(f'[data-testid=order-row][data-key="{order["client_order_id"]}"] td')
    expect(row.nth(2)).to_have_text("new")
    expect(row.nth(4)).to_have_text("sell")
    expect(row.nth(5)).to_have_text("4")
    expect(page.get_by_test_id("order-row")).to_have_count(1)
    expect(page.get_by_test_id("risk-state")).to_have_text("halted")
    expect(page.get_by_test_id("deployment-row")).to_have_count(2)
    loss = page.locator('[data-testid=limit-row][data-key="max_daily_loss"] td')
    expect(loss).to_have_text(["max_daily_loss", "50000", "50000"])  # limit, ma-qqq, ma-spy
    for status, n in {"pending": 2, "inflight": 1, "sent": 2, "dead": 1}.items():
        expect(page.get_by_test_id(f"outbox-count-{status}")).to_have_text(str(n))
    expect(page.get_by_test_id("outbox-total")).to_have_text("6")
    expect(page.get_by_test_id("outbox-row")).to_have_count(6)
    expect(page.get_by_test_id("dead-row")).to_have_count(1)
    nobt = page.locator(f'[data-testid=pnl-card][data-key="{fx.DEP_NOBT}"]')
    expect(nobt.get_by_test_id("pnl-note")).to_contain_text("no backtest")
    card = page.locator(f'[data-testid=pnl-card][data-key="{fx.DEP_BT}"]')
    expect(card.get_by_test_id("pnl-live")).to_contain_text("200")
    expect(card.get_by_test_id("spark-live")).to_have_count(1)
    expect(card.get_by_test_id("spark-ref")).to_have_count(1)
    expect(page.get_by_test_id("fill-row")).to_have_count(2)

    page.evaluate("window.__notReloaded = true")
    _write_fill_and_outbox_row(site)
    fill = page.locator('[data-testid=fill-row][data-key="x-new"] td')
    expect(fill.nth(3)).to_have_text("2", timeout=5_000)  # pushed, within a few seconds
    expect(fill.nth(4)).to_have_text("510")
    expect(page.get_by_test_id("outbox-count-sent")).to_have_text("3")
    expect(page.get_by_test_id("outbox-total")).to_have_text("7")
    assert page.evaluate("window.__notReloaded") is True  # updated in place, no reload
    expect(page.get_by_test_id("live-mode")).to_have_text("live")  # by the stream, not polling
    html = page.content()
    assert all(secret not in html for secret in site.planted.all())
    assert errors == []


@pytest.mark.browser
def test_page_falls_back_to_polling_without_the_stream(
    site: Site, browser_page: tuple[Any, list[str]]
) -> None:
    from playwright.sync_api import expect

    page, _ = browser_page
    page.route("**/api/events", lambda route: route.abort())  # the stream never connects
    page.goto(f"{site.base}/")
    expect(page.get_by_test_id("live-mode")).to_have_text("polling")
    expect(page.get_by_test_id("fill-row")).to_have_count(2)
    _write_fill_and_outbox_row(site)
    expect(page.locator('[data-testid=fill-row][data-key="x-new"]')).to_have_count(1)
    expect(page.get_by_test_id("outbox-total")).to_have_text("7")


def test_postgres_journal_and_outbox(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(DATABASE_ENV, postgres_url)
    planted = fx.Secrets()
    journal = fx.build_journal(tmp_path, planted)
    assert isinstance(journal, PgJournal)
    engine = fx.build_outbox(tmp_path, planted, environ={DATABASE_ENV: postgres_url})
    assert engine.dialect.name == "postgresql"
    fx.build_lake(tmp_path)
    env = {**planted.environ(), DATABASE_ENV: postgres_url}
    app = dashboard_app(tmp_path, engine, environ=env)
    with fx.serve(app) as base:
        state = httpx.get(f"{base}/api/state").json()
        session = app.state.cache.journal._pg
        events = sse_events(base, write_after_first_state(journal, engine))
        assert session is not None and app.state.cache.journal._pg is session  # kept, reused
    journal.close()
    engine.dispose()
    assert state["journal"]["where"].startswith("schema live of postgresql://")
    assert [f["exec_id"] for f in state["fills"]] == ["x-2", "x-1"]
    assert {p["symbol"]: p["qty"] for p in state["positions"]} == {"SPY": 10.0, "QQQ": 5.0}
    assert state["risk"]["orders_by_status"] == {"filled": 2, "new": 1}
    assert state["outbox"]["by_status"] == {"pending": 2, "inflight": 1, "sent": 2, "dead": 1}
    assert_pushed(events)  # the Postgres versions (largest ids, counts) saw the change
    password = parse_database_url(postgres_url).password
    assert password and password not in json.dumps([state, events])


def _read_stream(url: str, out: list[str]) -> None:
    with httpx.stream("GET", url, timeout=30) as resp:
        out.extend(resp.iter_lines())
    out.append("<end>")


def test_streams_end_at_their_cap_and_on_close_streams(tmp_path: Path) -> None:
    engine = fx.build_outbox(tmp_path, fx.Secrets())
    app = dashboard_app(tmp_path, engine, environ={}, stream_max_s=1.5)
    with fx.serve(app) as base:
        lines: list[str] = []
        started = time.monotonic()  # the cap: the server ends the stream
        _read_stream(f"{base}/api/events", lines)
        assert lines[-1] == "<end>" and 1.4 < time.monotonic() - started < 4.0
        assert "event: state" in lines
    app = dashboard_app(tmp_path, engine, environ={})  # the default cap is minutes
    with fx.serve(app) as base:
        lines.clear()
        reader = threading.Thread(target=_read_stream, args=(f"{base}/api/events", lines))
        reader.start()
        time.sleep(1.0)
        assert "<end>" not in lines
        started = time.monotonic()
        app.state.close_streams()  # what a server calls when it shuts down
        reader.join(timeout=5)
        assert not reader.is_alive() and lines[-1] == "<end>"
        assert time.monotonic() - started < 3.0


def _settle(cache: StateCache) -> None:
    """Wait out the rebuild throttle (4 build times) and the shared version probe."""
    time.sleep(max(4 * cache._build_s, PROBE_EVERY_S) + 0.01)


def test_state_is_rebuilt_only_when_a_source_changed(tmp_path: Path) -> None:
    planted = fx.Secrets()
    journal = fx.build_journal(tmp_path, planted)
    engine = fx.build_outbox(tmp_path, planted)
    cache = StateCache(tmp_path, engine, "t", {}, tick_s=3600.0)
    digest, _ = cache.current()
    for _ in range(5):
        assert cache.current()[0] == digest
    assert cache.rebuilds == 1
    fx.add_fill(journal, "x-new", 1.0, 499.0)
    new, state = cache.current()
    _settle(cache)  # changes closer together than that wait for the next poll
    new, state = cache.current()
    assert new != digest and state["fills"][0]["exec_id"] == "x-new" and cache.rebuilds == 2
    with engine.begin() as conn:
        conn.execute(sa.update(outbox).where(outbox.c.id == 3).values(status="sent"))
    _settle(cache)  # changes closer together than that wait for the next poll
    third, state = cache.current()
    assert third != new and state["outbox"]["by_status"]["sent"] == 3
    assert state["outbox"]["by_channel"]["telegram"] == {"sent": 2, "pending": 1, "dead": 1}
    with engine.begin() as conn:  # a retention job deletes sent rows: the counts start over
        conn.execute(sa.delete(outbox).where(outbox.c.status == "sent"))
        conn.execute(
            sa.insert(outbox),
            [fx.outbox_row(k, "discord", "pending", 0, "") for k in (7, 8, 9, 10)],
        )  # more than were deleted
    _settle(cache)
    _, state = cache.current()
    assert state["outbox"]["total"] == 7
    assert state["outbox"]["by_status"] == {"pending": 5, "inflight": 1, "sent": 0, "dead": 1}
    assert state["outbox"]["by_channel"] == {"telegram": {"pending": 1, "dead": 1},
                                             "discord": {"inflight": 1, "pending": 4}}  # fmt: skip
    journal.close()


def test_lake_on_s3(s3_lake: str, tmp_path: Path) -> None:
    planted = fx.Secrets()
    fx.build_journal(tmp_path, planted).close()
    engine = fx.build_outbox(tmp_path, planted)
    fx.build_lake(tmp_path)  # into the bucket
    assert not paths.lake_dir(tmp_path).exists()
    env = {**os.environ, **planted.environ()}
    with fx.serve(dashboard_app(tmp_path, engine, environ=env)) as base:
        rows = {r["deployment_id"]: r for r in httpx.get(f"{base}/api/state").json()["pnl"]["rows"]}
        body = httpx.get(f"{base}/api/state").text
    assert [e for _, e in rows[fx.DEP_BT]["live"]["equity"]] == pytest.approx(
        fx.expected_equity(), abs=1e-6
    )
    assert rows[fx.DEP_BT]["backtest"]["mlflow_run_id"] == fx.RUN_ID
    assert (
        rows[fx.DEP_BT]["replay"]["both"] == 2
        and rows[fx.DEP_NOBT]["note"] == "no backtest; no live P&L in the lake yet (live_results)"
    )
    assert os.environ["AWS_SECRET_ACCESS_KEY"] not in body


def test_damaged_journal_is_named_and_the_rest_still_shown(tmp_path: Path) -> None:
    planted = fx.Secrets()
    engine = fx.build_outbox(tmp_path, planted)
    journal = paths.journal_path(tmp_path)
    journal.parent.mkdir(parents=True)
    journal.write_bytes(b"this is not a sqlite database" * 100)
    with fx.serve(dashboard_app(tmp_path, engine, environ={})) as base:
        resp = httpx.get(f"{base}/api/state")
    assert resp.status_code == 200
    s = resp.json()
    assert s["journal"]["available"] is False and "is damaged" in s["journal"]["problem"]
    assert s["outbox"]["total"] == 6  # one broken source does not blank the page


def test_standalone_factory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(paths.HOME_ENV, str(tmp_path))
    monkeypatch.delenv(DATABASE_ENV, raising=False)
    fx.build_journal(tmp_path, fx.Secrets()).close()
    with fx.serve(standalone.app()) as base:
        state = httpx.get(f"{base}/api/state").json()
    assert len(state["deployments"]) == 2 and state["outbox"]["total"] == 0
    assert (tmp_path / "signals" / "signals.sqlite").is_file()


@pytest.mark.browser
def test_page_reconnects_when_the_server_ends_a_stream(
    site: Site, browser_page: tuple[Any, list[str]]
) -> None:
    from playwright.sync_api import expect

    page, errors = browser_page
    app = dashboard_app(site.home, site.engine, environ=site.planted.environ(), stream_max_s=1.5)
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url.rsplit("/", 1)[-1]))
    with fx.serve(app) as base:
        page.goto(f"{base}/")
        expect(page.get_by_test_id("live-mode")).to_have_text("live")
        page.wait_for_timeout(4_500)  # the server ends the stream, the page reconnects 2 s later
        _write_fill_and_outbox_row(site)
        expect(page.locator('[data-testid=fill-row][data-key="x-new"]')).to_have_count(1)
        expect(page.get_by_test_id("live-mode")).to_have_text("live")
        page.close()
    assert requests.count("events") >= 2  # the first stream, then a reconnection after its end
    assert requests.count("state") == 1  # the first paint only: never fell back to polling
    assert errors == []


@pytest.mark.browser
def test_live_refresh_behind_basic_auth_in_chromium(site: Site) -> None:
    from playwright.sync_api import expect, sync_playwright

    chromium = fx.chromium_or_skip()
    env = site.planted.environ(auth=True)
    app = dashboard_app(site.home, site.engine, environ=env)
    with fx.serve(app) as base, sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(chromium), headless=True, args=fx.CHROMIUM_FLAGS
        )
        try:
            assert httpx.get(f"{base}/").status_code == 401  # without the credentials
            creds = {"username": "ops", "password": site.planted.dash_password}
            page = browser.new_context(http_credentials=creds).new_page()  # type: ignore[arg-type]
            page.goto(f"{base}/")
            expect(page.get_by_test_id("live-mode")).to_have_text("live")  # the stream, authed
            _write_fill_and_outbox_row(site)
            expect(page.locator('[data-testid=fill-row][data-key="x-new"]')).to_have_count(1)
            assert site.planted.dash_password not in page.content()
            page.close()
        finally:
            browser.close()


def test_lake_changes_are_read_at_the_tick(tmp_path: Path) -> None:
    planted = fx.Secrets()
    fx.build_journal(tmp_path, planted).close()
    engine = fx.build_outbox(tmp_path, planted)
    fx.build_lake(tmp_path)
    cache = StateCache(tmp_path, engine, "t", {}, tick_s=0.3)

    def live() -> dict[str, Any]:
        _settle(cache)
        time.sleep(0.3)  # the next tick
        rows = cache.current()[1]["pnl"]["rows"]
        return next(r for r in rows if r["deployment_id"] == fx.DEP_BT)["live"]

    assert live()["total_pnl"] == pytest.approx(sum(fx.DAILY_PNL), abs=TOL)
    # the monitoring asset rewrites the last session and a session disappears
    frame = pl.read_parquet(paths.lake_dir(tmp_path) / f"live_pnl/session={fx.SESSIONS[-1]}"
                            / "part.parquet").with_columns(pl.lit(-500.0).alias("pnl"))  # fmt: skip
    fx.write_part(tmp_path, "live_pnl", fx.SESSIONS[-1], frame)
    shutil.rmtree(paths.lake_dir(tmp_path) / f"live_pnl/session={fx.SESSIONS[0]}")
    after = live()
    assert after["sessions"] == 2 and after["first"] == str(fx.SESSIONS[1])
    assert after["total_pnl"] == pytest.approx(fx.DAILY_PNL[1] - 500.0, abs=TOL)
    assert len(cache.lake._cache["live_pnl"]) == 2  # the removed partition left the cache
