"""A frame of bars as (bars, symbols) numpy panels and back: the layout ``add_indicators`` uses
to run the compiled panel kernels on a long frame whose symbols may interleave.

Symbols with the same number of bars share one panel (the usual case is a single panel: every
symbol over the same sessions); a symbol's rows keep their frame order. For a frame sorted by
``ts`` then ``symbol`` with equal histories the panel is the frame's own row order (no gather).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl
from numba import njit


@njit(cache=True)
def _dense_groups(codes):  # noqa: ANN001, ANN202
    """Dense group ids in order of first appearance, each row's position within its group and
    the group sizes."""
    remap = np.full(codes.max() + 1 if codes.size else 1, -1, dtype=np.int64)
    group = np.empty(codes.size, dtype=np.int64)
    pos = np.empty(codes.size, dtype=np.int64)
    sizes = np.zeros(codes.size, dtype=np.int64)
    n_groups = 0
    for i in range(codes.size):
        g = remap[codes[i]]
        if g < 0:
            g = n_groups
            remap[codes[i]] = g
            n_groups += 1
        group[i], pos[i] = g, sizes[g]
        sizes[g] += 1
    return group, pos, sizes[:n_groups]


@njit(cache=True)
def _count_unordered(ts, group, n_groups):  # noqa: ANN001, ANN202
    """Rows whose ``ts`` is not after the previous row of the same group."""
    last = np.empty(n_groups, dtype=ts.dtype)
    seen = np.zeros(n_groups, dtype=np.bool_)
    bad = 0
    for i in range(ts.size):
        g = group[i]
        if seen[g] and ts[i] <= last[g]:
            bad += 1
        last[g], seen[g] = ts[i], True
    return bad


@njit(cache=True)
def _panel_rows(group, pos, bucket_of, column_of, offset, width):  # noqa: ANN001, ANN202
    """Frame row of every panel cell, bucket after bucket, each panel row-major."""
    rows = np.empty(group.size, dtype=np.int64)
    for i in range(group.size):
        g = group[i]
        b = bucket_of[g]
        rows[offset[b] + pos[i] * width[b] + column_of[g]] = i
    return rows


def _small_codes(codes: np.ndarray) -> bool:
    return codes.dtype.kind in "iu" and codes.min() >= 0 and codes.max() <= 4 * codes.size


@dataclass(frozen=True, slots=True)
class PanelLayout:
    """Where each frame row sits in the panels.

    Attributes:
        rows: Frame row of every panel cell, panel after panel, each row-major.
        shapes: (bars, symbols) of each panel.
        unordered: Rows whose ``ts`` is not after the previous row of their symbol.
        identity: The panel cells are the frame rows in order (no gather needed).
    """

    rows: np.ndarray
    shapes: tuple[tuple[int, int], ...]
    unordered: int
    identity: bool

    def panels(self, values: np.ndarray) -> list[np.ndarray]:
        """A frame column (numpy, frame order) as C-contiguous float64 panels."""
        flat = np.asarray(values, dtype=np.float64)
        flat = flat if self.identity else flat[self.rows]
        out, start = [], 0
        for bars, width in self.shapes:
            out.append(flat[start : start + bars * width].reshape(bars, width))
            start += bars * width
        return out

    def column(self, panels: list[np.ndarray]) -> np.ndarray:
        """Panels (as :meth:`panels` returned them) back to one frame-ordered column."""
        if len(panels) == 1:
            flat = panels[0].ravel()  # a view: one panel needs no concatenation
        else:
            flat = np.concatenate([p.ravel() for p in panels]) if panels else np.empty(0)
        if self.identity:
            return flat
        out = np.empty_like(flat)
        out[self.rows] = flat
        return out


def panel_layout(df: pl.DataFrame, by: str = "symbol", ts: str = "ts") -> PanelLayout:
    """The panel layout of a frame of bars (rows of one ``by`` value form a column)."""
    keys = df[by]
    if keys.dtype in (pl.String, pl.Categorical) or isinstance(keys.dtype, pl.Enum):
        codes = keys.cast(pl.Categorical).to_physical().to_numpy()
    else:
        codes = keys.to_numpy()
    if codes.size and not _small_codes(codes):
        codes = np.unique(codes, return_inverse=True)[1]  # sparse or non-integer keys: densify
    group, pos, sizes = _dense_groups(codes.astype(np.int64))
    stamps = df[ts].to_physical().to_numpy()
    stamps = stamps.astype(np.int64 if stamps.dtype.kind in "iub" else np.float64)
    unordered = int(_count_unordered(stamps, group, sizes.size))
    lengths = np.unique(sizes)
    bucket_of = np.searchsorted(lengths, sizes)
    width = np.bincount(bucket_of, minlength=lengths.size)
    column_of = np.empty(sizes.size, dtype=np.int64)
    for b in range(lengths.size):
        members = np.flatnonzero(bucket_of == b)
        column_of[members] = np.arange(members.size)
    offset = np.concatenate([[0], np.cumsum(lengths * width)[:-1]]).astype(np.int64)
    rows = _panel_rows(group, pos, bucket_of, column_of, offset, width.astype(np.int64))
    shapes = tuple((int(n), int(w)) for n, w in zip(lengths, width, strict=True))
    identity = bool(np.array_equal(rows, np.arange(rows.size)))
    return PanelLayout(rows, shapes, unordered, identity)
