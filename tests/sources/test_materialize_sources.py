"""Real ``dg.materialize`` runs with resources from ``build_resources``, sources chosen by env.

The same asset code fills the lake from synthetic, Alpaca or Polygon with only
``ALPACA_IMPROVED_SOURCE`` changed; corrupted answers leave no partition behind; a failing
primary is filled by the secondary with provenance in the ``source`` column.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
from dagster._serdes import serialize_value

from alpaca_improved_pipelines.defs.market_data.assets import stock_bars_1d, stock_bars_1m
from alpaca_improved_pipelines.defs.resources import build_resources
from alpaca_improved_pipelines.lake.tables import BAR_SCHEMA
from alpaca_improved_pipelines.resources.lake import LakeResource
from alpaca_improved_pipelines.settings import load_settings
from tests.fakes.fixtures import SECRETS

KEY = "2024-03-15"
SESSION = dt.date(2024, 3, 15)


@pytest.fixture(scope="module")
def instance() -> Iterator[dg.DagsterInstance]:
    """One temp instance for the module (a fresh SQLite instance costs ~2 s to migrate)."""
    with dg.instance_for_test() as inst:
        yield inst


def run(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    instance: dg.DagsterInstance,
    source: str,
    assets: list | None = None,
    **env: str,
) -> dg.ExecuteInProcessResult:
    """Materialize the bar assets for KEY exactly as a deployment would build its resources."""
    monkeypatch.setenv("ALPACA_IMPROVED_HOME", str(home))
    monkeypatch.setenv("ALPACA_IMPROVED_SOURCE", source)
    monkeypatch.setenv("ALPACA_IMPROVED_SYMBOLS", "SPY,AAPL")
    monkeypatch.setenv("ALPACA_IMPROVED_FSYNC", "0")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    resources = build_resources(load_settings())
    return dg.materialize(
        assets or [stock_bars_1d],
        partition_key=KEY,
        resources=resources,
        instance=instance,
        raise_on_error=False,
    )


def lake(home: Path) -> LakeResource:
    return LakeResource(home=str(home), fsync=False)


def test_switching_source_needs_no_code_change(
    monkeypatch, vendor_env, instance, tmp_path: Path
) -> None:
    frames = {}
    for source in ("synthetic", "alpaca", "polygon"):
        home = tmp_path / source
        result = run(monkeypatch, home, instance, source, [stock_bars_1d, stock_bars_1m])
        assert result.success, source
        frames[source] = {
            t: lake(home).read(t, [SESSION], BAR_SCHEMA) for t in ("stock_bars_1d", "stock_bars_1m")
        }
        for frame in frames[source].values():
            assert set(frame["source"]) == {source}
    for table in ("stock_bars_1d", "stock_bars_1m"):
        want = frames["synthetic"][table].drop("source")
        assert frames["alpaca"][table].drop("source").equals(want), table
        assert frames["polygon"][table].drop("source").equals(want), table


@pytest.mark.parametrize(
    "source,prefix,fault,cause",
    [
        ("alpaca", "/v2/stocks/bars", "truncated", "not valid JSON"),
        ("alpaca", "/v2/stocks/bars", "empty_object", "no 'bars'"),
        ("alpaca", "/v2/stocks/bars", "401", "keys were rejected"),
        ("polygon", "/v2/aggs", "empty_object", "no 'results'"),
        ("polygon", "/v2/aggs", "cyclic_token", "repeated"),
        ("polygon", "/v2/aggs", "403_plan", "plan"),
    ],
)
def test_corrupted_answer_writes_no_partition_and_is_not_retried(
    monkeypatch,
    vendor_env,
    instance,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    source: str,
    prefix: str,
    fault: str,
    cause: str,
) -> None:
    fake = request.getfixturevalue("alpaca_market" if source == "alpaca" else "polygon_fake")
    fake.set_fault(prefix, fault)  # sticky: a cyclic token cycles from the first page on
    result = run(monkeypatch, tmp_path, instance, source)
    assert not result.success
    assert not lake(tmp_path).has("stock_bars_1d", SESSION)
    failure = result.get_step_failure_events()[0].step_failure_data.error
    assert cause in failure.message
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert retries == [], "a permanent failure must bypass the asset's RetryPolicy"
    assert len(fake.hits(prefix)) <= 2


def test_missing_key_fails_naming_the_variable(
    monkeypatch, vendor_env, instance, tmp_path: Path
) -> None:
    monkeypatch.delenv("ALPACA_SECRET_KEY")
    result = run(monkeypatch, tmp_path, instance, "alpaca")
    assert not result.success
    message = result.get_step_failure_events()[0].step_failure_data.error.message
    assert "ALPACA_SECRET_KEY is not set" in message
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)


def test_fallback_fills_a_session_the_primary_fails(
    monkeypatch, vendor_env, instance, tmp_path: Path, alpaca_market
) -> None:
    alpaca_market.set_fault("/v2/stocks/bars", "503")
    result = run(
        monkeypatch, tmp_path, instance, "alpaca", ALPACA_IMPROVED_FALLBACK_SOURCE="polygon"
    )
    assert result.success
    frame = lake(tmp_path).read("stock_bars_1d", [SESSION], BAR_SCHEMA)
    assert set(frame["source"]) == {"polygon"}
    assert len(alpaca_market.hits("/v2/stocks/bars")) == 4  # the primary's retries came first


def test_keys_never_reach_logs_metadata_config_or_errors(
    monkeypatch,
    vendor_env,
    instance,
    tmp_path: Path,
    alpaca_market,
    polygon_fake,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    results = [
        run(
            monkeypatch,
            tmp_path / "ok",
            instance,
            "alpaca",
            ALPACA_IMPROVED_FALLBACK_SOURCE="polygon",
        )
    ]
    alpaca_market.set_fault("/v2/stocks/bars", "401")
    polygon_fake.set_fault("/v2/aggs", "401")
    results.append(
        run(
            monkeypatch,
            tmp_path / "bad",
            instance,
            "alpaca",
            ALPACA_IMPROVED_FALLBACK_SOURCE="polygon",
        )
    )
    assert results[0].success and not results[1].success
    resources = build_resources(load_settings())
    texts = [caplog.text, *capfd.readouterr(), repr(resources), str(resources["source"])]
    for result in results:
        texts.append(serialize_value(instance.get_run_by_id(result.run_id).run_config))
        texts += [serialize_value(e) for e in instance.all_logs(result.run_id)]
    blob = "\n".join(texts)
    assert "keys were rejected" in blob  # the failure is explained ...
    for secret in SECRETS:
        assert secret not in blob  # ... without ever showing a key
    assert alpaca_market.hits()[0].header("APCA-API-KEY-ID") == SECRETS[0]  # keys were sent
    assert pl.DataFrame  # keep polars imported for readers comparing frames above


def test_partial_answer_writes_no_partition(
    monkeypatch, vendor_env, instance, tmp_path: Path, polygon_fake
) -> None:
    """AAPL arrives, SPY's page is truncated: nothing of the session is written."""
    polygon_fake.queue_faults("/v2/aggs", ["ok", "truncated"])
    result = run(monkeypatch, tmp_path, instance, "polygon")
    assert not result.success and len(polygon_fake.hits("/v2/aggs")) == 2
    assert not lake(tmp_path).has("stock_bars_1d", SESSION)


def test_transient_exhaustion_retries_the_whole_partition(
    monkeypatch, vendor_env, instance, tmp_path: Path, alpaca_market
) -> None:
    """Our per-request budget (4 tries) is spent, then the asset's Dagster RetryPolicy reruns
    the partition, which succeeds once the vendor recovers."""
    alpaca_market.queue_faults("/v2/stocks/bars", ["503"] * 4)
    result = run(monkeypatch, tmp_path, instance, "alpaca")
    assert result.success
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 1 and len(alpaca_market.hits("/v2/stocks/bars")) == 5
    assert set(lake(tmp_path).read("stock_bars_1d", [SESSION], BAR_SCHEMA)["source"]) == {"alpaca"}
