"""Signal charts as PNG bytes that are byte-identical for the same inputs.

Two pictures: a deployment's equity curve (cumulative realized P&L from its fills) for stock
signals, and an option position's payoff at expiry with its Black-Scholes Greeks
(:mod:`strategies.pricing.black_scholes`) for option signals.

Determinism: matplotlib's object API on the Agg canvas (no pyplot, no global figure state), a
fixed figure size and dpi, matplotlib's bundled DejaVu Sans, ``metadata={"Software": None}`` so
no version is embedded (Agg writes no date), and nothing time-dependent in the picture: every
label comes from the inputs. The same inputs on the same matplotlib give the same bytes (a test
renders twice and compares; different inputs must differ).
"""

from __future__ import annotations

import datetime as dt
import io
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from strategies.occ import OptionSymbol

SIZE = (6.4, 3.6)  # inches
DPI = 100
_RC: Any = {
    "font.family": "DejaVu Sans",  # bundled with matplotlib: the same glyphs everywhere
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "path.simplify": False,
}
CONTRACT = 100  # shares per US equity option


@dataclass(frozen=True, slots=True)
class OptionLeg:
    """One held option (signed contracts) or stock (signed shares) line of a position."""

    symbol: str
    qty: float
    price: float  # average price paid (premium per share for an option)


def _figure() -> Figure:
    """A figure on its own Agg canvas (matplotlib is imported on first use: the dispatcher
    process pays for it only when a signal carries a chart)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=SIZE, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def equity_chart(points: Sequence[tuple[str, float]], title: str) -> bytes:
    """The cumulative realized P&L curve: ``points`` are ``(ISO timestamp, dollars)``."""
    from matplotlib import dates as mdates
    from matplotlib import rc_context

    with rc_context(_RC):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        if points:
            xs = mdates.date2num([dt.datetime.fromisoformat(t) for t, _ in points])
            ys = np.array([float(v) for _, v in points])
            ax.step(xs, ys, where="post", color="#1f77b4", linewidth=1.5)
            ax.fill_between(xs, ys, 0.0, step="post", alpha=0.15, color="#1f77b4")
            ax.axhline(0.0, color="#555555", linewidth=0.8)
            ax.xaxis_date(tz="UTC")
            fig.autofmt_xdate()
            last = float(ys[-1])
            ax.set_ylabel("realized P&L ($)")
            ax.text(0.01, 0.97, f"{last:+,.2f} $", transform=ax.transAxes, va="top")
        else:
            ax.text(0.5, 0.5, "no fills yet", transform=ax.transAxes, ha="center")
        ax.set_title(title[:90])
        fig.tight_layout()
        return _png(fig)


def position_greeks(
    legs: Sequence[OptionLeg], spot: float, as_of: dt.date, rate: float, vol: float
) -> dict[str, float]:
    """Dollar Greeks of the position at ``spot`` (delta in shares, theta per day, vega per vol
    point), Black-Scholes with one assumed volatility."""
    from strategies.pricing.black_scholes import bs_greeks, per_day, per_vol_point

    total = {"delta": 0.0, "gamma": 0.0, "theta": 0.0, "vega": 0.0}
    for leg in legs:
        sym = _option(leg.symbol)
        if sym is None:
            total["delta"] += leg.qty
            continue
        t = max((sym.expiry - as_of).days, 0) / 365.0
        if t <= 0:
            continue
        g = bs_greeks(spot, sym.strike, t, rate, vol, 0.0, sym.is_call)
        n = leg.qty * CONTRACT
        total["delta"] += n * float(g.delta)
        total["gamma"] += n * float(g.gamma)
        total["theta"] += n * float(per_day(g.theta))
        total["vega"] += n * float(per_vol_point(g.vega))
    return total


def payoff_at_expiry(legs: Sequence[OptionLeg], spots: np.ndarray) -> np.ndarray:
    """Dollar P&L of the position at expiry over ``spots`` (premiums paid included)."""
    out = np.zeros_like(spots, dtype=float)
    for leg in legs:
        sym = _option(leg.symbol)
        if sym is None:
            out += leg.qty * (spots - leg.price)
            continue
        intrinsic = (
            np.maximum(spots - sym.strike, 0.0)
            if sym.is_call
            else np.maximum(sym.strike - spots, 0.0)
        )
        out += leg.qty * CONTRACT * (intrinsic - leg.price)
    return out


def payoff_chart(
    legs: Sequence[OptionLeg], spot: float, as_of: dt.date, title: str,
    rate: float = 0.04, vol: float = 0.25,
) -> bytes:  # fmt: skip
    """The position's payoff at expiry around ``spot`` and its Greeks (assumed ``vol``)."""
    strikes = [s.strike for s in (_option(leg.symbol) for leg in legs) if s is not None]
    lo = min([spot, *strikes]) * 0.8
    hi = max([spot, *strikes]) * 1.2
    spots = np.linspace(lo, hi, 241)
    pnl = payoff_at_expiry(legs, spots)
    greeks = position_greeks(legs, spot, as_of, rate, vol)
    from matplotlib import rc_context

    with rc_context(_RC):
        fig = _figure()
        ax = fig.add_subplot(1, 1, 1)
        ax.plot(spots, pnl, color="#2ca02c", linewidth=1.5)
        ax.fill_between(spots, pnl, 0.0, where=pnl >= 0, alpha=0.15, color="#2ca02c")
        ax.fill_between(spots, pnl, 0.0, where=pnl < 0, alpha=0.15, color="#d62728")
        ax.axhline(0.0, color="#555555", linewidth=0.8)
        ax.axvline(spot, color="#555555", linestyle="--", linewidth=0.8)
        ax.set_xlabel("underlying at expiry ($)")
        ax.set_ylabel("P&L at expiry ($)")
        box = (
            f"spot {spot:,.2f}  as of {as_of.isoformat()}  vol {vol:.0%} (assumed)\n"
            f"delta {greeks['delta']:+,.1f} sh  gamma {greeks['gamma']:+,.3f}\n"
            f"theta {greeks['theta']:+,.2f} $/day  vega {greeks['vega']:+,.2f} $/vol pt"
        )
        ax.text(0.01, 0.97, box, transform=ax.transAxes, va="top", fontsize=8,
                family="DejaVu Sans Mono")  # fmt: skip
        ax.set_title(title[:90])
        fig.tight_layout()
        return _png(fig)


def _option(symbol: str) -> OptionSymbol | None:
    from strategies import occ  # imports polars: only when a chart is drawn

    try:
        return occ.parse(symbol)
    except ValueError:
        return None
