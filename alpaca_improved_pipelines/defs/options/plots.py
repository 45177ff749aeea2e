"""PNG plots of smiles and fitted surfaces for Dagster Markdown metadata (base64, inline)."""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np
import polars as pl

from alpaca_improved_pipelines.defs.options.surface import smile_quotes
from alpaca_improved_pipelines.defs.options.svi import SVI

SVI_COLUMNS = tuple(f"svi_{n}" for n in ("a", "b", "rho", "m", "sigma"))


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _markdown(fig: Any, title: str) -> str:
    plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    plt.close(fig)
    return f"![{title}](data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()})"


def smile_plot_markdown(chain: pl.DataFrame, underlying: str, max_expiries: int = 4) -> str:
    """Our IV from mids of out-of-the-money quotes against strike, for a few expiries of
    ``underlying`` (the quotes a smile is fitted to); "" when there are none."""
    data = smile_quotes(chain.filter(pl.col("underlying") == underlying))
    if data.is_empty():
        return ""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 2.6), dpi=80)
    expiries = data["expiry"].unique().sort().to_list()
    step = max(1, len(expiries) // max_expiries)
    for expiry in expiries[::step][:max_expiries]:
        part = data.filter(pl.col("expiry") == expiry).sort("strike")
        ax.plot(part["strike"], part["fit_iv"], ".-", markersize=2, linewidth=0.8, label=expiry)
    ax.axvline(float(data["underlying_price"][0]), color="grey", linewidth=0.6)
    ax.set_title(f"{underlying} implied vol of OTM quotes by strike", fontsize=9)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6)
    return _markdown(fig, f"{underlying} smile")


def surface_plot_markdown(surface: pl.DataFrame, underlying: str) -> str:
    """A 3-D fitted SVI surface (vol by log-moneyness and maturity) beside the ATM term
    structure for ``underlying``; "" when nothing was fitted."""
    fits = surface.filter(
        (pl.col("underlying") == underlying) & (pl.col("fit_status") == "ok")
    ).sort("t_years")
    if fits.height < 2:
        return ""
    plt = _pyplot()
    fig = plt.figure(figsize=(8, 3.2), dpi=80)
    ax = fig.add_subplot(1, 2, 1, projection="3d")
    z = np.linspace(-2.5, 2.5, 41)  # log-moneyness in ATM standard deviations
    t = fits["t_years"].to_numpy()
    vols = []
    for row in fits.iter_rows(named=True):
        svi = SVI(*(row[c] for c in SVI_COLUMNS))
        vols.append(svi.vol(z * row["atm_iv"] * np.sqrt(row["t_years"]), row["t_years"]))
    zz, tt = np.meshgrid(z, t)
    ax.plot_surface(zz, tt, np.vstack(vols), cmap="viridis", linewidth=0, antialiased=True)
    ax.set_xlabel("ln(K/F) / ATM sd", fontsize=7)
    ax.set_ylabel("T (years)", fontsize=7)
    ax.set_zlabel("vol", fontsize=7)
    ax.tick_params(labelsize=6)
    ax.set_title(f"{underlying} SVI surface", fontsize=9)
    ax2 = fig.add_subplot(1, 2, 2)
    days, atm = fits["dte_days"], fits["atm_iv"]
    wings = atm + fits["bf25"]
    ax2.plot(days, wings - fits["rr25"] / 2, ".--", linewidth=0.8, label="25d put")
    ax2.plot(days, atm, "o-", markersize=3, label="ATM")
    ax2.plot(days, wings + fits["rr25"] / 2, ".--", linewidth=0.8, label="25d call")
    ax2.set_xlabel("days to expiry", fontsize=7)
    ax2.set_title("term structure", fontsize=9)
    ax2.tick_params(labelsize=7)
    ax2.legend(fontsize=6)
    return _markdown(fig, f"{underlying} vol surface")
