"""Every options quality rule passes on clean data and fails on its injected violation."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

import polars as pl
import pytest

from alpaca_improved_pipelines.defs.options.schemas import (
    chain_schema,
    parity_deviations,
    parity_summary,
    surface_schema,
)
from alpaca_improved_pipelines.defs.options.surface import fit_underlying, surface_frame
from alpaca_improved_pipelines.quality.schemas import validate

Inject = Callable[[pl.DataFrame], pl.DataFrame]


def _set(column: str, value: object, where: pl.Expr | None = None) -> Inject:
    """Set ``column`` to ``value`` on the first row matching ``where`` (default: row 0)."""

    def inject(frame: pl.DataFrame) -> pl.DataFrame:
        mask = where if where is not None else pl.lit(True)
        idx = frame.with_row_index().filter(mask)["index"][0]
        dtype = frame.schema[column]
        new = pl.when(pl.int_range(pl.len()) == idx).then(pl.lit(value, dtype=dtype))
        return frame.with_columns(new.otherwise(pl.col(column)).alias(column))

    return inject


def _failed(failures: pl.DataFrame, rule: str) -> bool:
    """True when ``rule`` (a check name, reported alone or as "name: message") failed."""
    return any(c == rule or c.startswith(f"{rule}:") for c in failures["check"].to_list())


OK = pl.col("iv_status") == "OK"
CALL, PUT = pl.col("right") == "C", pl.col("right") == "P"
CHAIN_VIOLATIONS: dict[str, tuple[str, Inject]] = {
    "bid above ask": ("bid_le_ask", _set("bid", 1e6)),
    "iv above 5": ("iv_in_range", _set("iv", 5.5, OK)),
    "iv zero": ("iv_in_range", _set("iv", 0.0, OK)),
    "american iv negative": (
        "iv_american_in_range",
        _set("iv_american", -0.1, pl.col("iv_american_status") == "OK"),
    ),
    "call delta above 1": ("call_delta_in_0_1", _set("delta", 1.2, CALL & OK)),
    "call delta negative": ("call_delta_in_0_1", _set("delta", -0.1, CALL & OK)),
    "put delta positive": ("put_delta_in_-1_0", _set("delta", 0.1, PUT & OK)),
    "put delta below -1": ("put_delta_in_-1_0", _set("delta", -1.5, PUT & OK)),
    "negative gamma": ("gamma_nonnegative", _set("gamma", -1e-4, OK)),
    "unparseable symbol": ("occ_symbol_matches", _set("contract", "NOT-A-SYMBOL")),
    "symbol strike differs": ("occ_symbol_matches", _set("strike", 123.5)),
    "symbol right differs": ("occ_symbol_matches", _set("right", "P", CALL)),
    "symbol root differs": ("occ_symbol_matches", _set("underlying", "MSFT")),
    "expiry before session": ("expiry_on_or_after_session", _set("expiry", dt.date(2024, 1, 9))),
    "duplicate contract": ("unique_session_contract", lambda f: pl.concat([f, f.head(1)])),
}


@pytest.fixture(scope="module")
def surface(chain: pl.DataFrame) -> pl.DataFrame:
    rows = fit_underlying(chain.filter(pl.col("underlying") == "AAPL"), 6)
    return surface_frame(
        [
            {**r, "iv_rank": 0.4, "iv_percentile": 0.3, "iv_history": 30, "iv_rank_status": "ok"}
            for r in rows
        ]
    )


def test_clean_chain_and_surface_pass(chain: pl.DataFrame, surface: pl.DataFrame) -> None:
    assert validate(chain_schema(), chain).height == 0
    assert validate(surface_schema(), surface).height == 0


@pytest.mark.parametrize("case", list(CHAIN_VIOLATIONS))
def test_each_chain_rule_fails_on_its_violation(chain: pl.DataFrame, case: str) -> None:
    rule, inject = CHAIN_VIOLATIONS[case]
    failures = validate(chain_schema(), inject(chain))
    assert failures.height > 0
    assert _failed(failures, rule), failures["check"].unique().to_list()


@pytest.mark.parametrize(
    ("column", "value", "rule"),
    [
        ("svi_b", -0.1, "greater_than_or_equal_to(0)"),
        ("svi_rho", -1.5, "in_range(-1.0, 1.0)"),
        ("fit_rmse", -1e-3, "greater_than_or_equal_to(0)"),
        ("atm_iv", 7.0, "in_range(0.0, 5.0)"),
        ("iv_rank", 1.2, "in_range(0.0, 1.0)"),
        ("svi_a", None, "fitted_rows_have_parameters"),
        ("expiry", None, "not_nullable"),
    ],
)
def test_each_surface_rule_fails_on_its_violation(
    surface: pl.DataFrame, column: str, value: object, rule: str
) -> None:
    failures = validate(surface_schema(), _set(column, value)(surface))
    assert _failed(failures, rule), failures["check"].unique().to_list()


def test_surface_rows_are_unique(surface: pl.DataFrame) -> None:
    failures = validate(surface_schema(), pl.concat([surface, surface.head(1)]))
    assert _failed(failures, "unique_underlying_session_expiry")


def test_put_call_parity_flags_a_mispriced_pair(chain: pl.DataFrame) -> None:
    clean = parity_deviations(chain)
    assert parity_summary(clean)["pairs"] > 1000 and parity_summary(clean)["flagged"] == 0
    pair = (pl.col("underlying") == "AAPL") & (pl.col("strike") == 190.0) & CALL
    target = chain.filter(pair & (pl.col("expiry") == dt.date(2024, 2, 16)))
    assert target.height == 1
    rich = pl.col("contract") == target["contract"][0]
    bumped = chain.with_columns(
        pl.when(rich).then(pl.col(c) + 20.0).otherwise(pl.col(c)).alias(c) for c in ("bid", "ask")
    )
    flagged = parity_deviations(bumped).filter(pl.col("flagged"))
    assert flagged.height == 1 and flagged["strike"][0] == 190.0
    assert flagged["deviation"][0] == pytest.approx(20.0, abs=5.0)
