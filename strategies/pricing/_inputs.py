"""Input handling shared by the pricing front-ends (private).

Every public pricing function accepts scalars, lists, numpy arrays, pandas or polars Series and
broadcasts them numpy-style. The numba kernels see exactly one signature (contiguous float64 1-D
arrays plus one bool array), so each kernel compiles once and is cached on disk.
"""

from __future__ import annotations

from typing import Any

import numpy as np

_CALL_WORDS = ["C", "c", "call", "Call", "CALL"]
_PUT_WORDS = ["P", "p", "put", "Put", "PUT"]


def as_is_call(is_call: Any) -> np.ndarray:
    """Convert ``is_call`` (bools, or 'C'/'P'/'call'/'put' strings) to a bool array.

    Raises:
        ValueError: for strings that are neither a call nor a put flag.
    """
    arr = np.asarray(is_call)
    if arr.dtype.kind in "biu":
        return arr.astype(bool)
    if arr.dtype.kind in "UO":
        text = arr.astype(str)
        calls = np.isin(text, _CALL_WORDS)
        known = calls | np.isin(text, _PUT_WORDS)
        if not known.all():
            bad = sorted(set(text[~known].tolist()))[:5]
            raise ValueError(f"is_call must be bool or one of 'C','P','call','put'; got {bad!r}")
        return calls
    raise ValueError(f"is_call must be bool or 'C'/'P' strings, got dtype {arr.dtype}")


def broadcast(*values: Any, is_call: Any) -> tuple[tuple[int, ...], list[np.ndarray], np.ndarray]:
    """Broadcast float inputs and the call flag together.

    Returns:
        The broadcast shape, the float inputs as contiguous float64 1-D arrays, and the flag
        as a contiguous bool 1-D array.
    """
    arrays = [np.asarray(v, dtype=np.float64) for v in values]
    flags = as_is_call(is_call)
    *floats, flags = np.broadcast_arrays(*arrays, flags)
    shape = flags.shape
    flat = [np.ascontiguousarray(a, dtype=np.float64).reshape(-1) for a in floats]
    return shape, flat, np.ascontiguousarray(flags, dtype=np.bool_).reshape(-1)


def launch(parallel: Any, serial: Any, n: int, min_parallel: int, *args: Any) -> None:
    """Run the parallel kernel for big inputs, the serial twin for small ones.

    Waking numba's thread pool costs tens of microseconds (milliseconds on a busy machine), far
    more than pricing a handful of options, so small calls stay on the calling thread.
    """
    (parallel if n >= min_parallel else serial)(*args)


def restore(flat: np.ndarray, shape: tuple[int, ...]) -> Any:
    """Give a kernel output the broadcast shape; 0-d results come back as Python scalars."""
    out = flat.reshape(shape)
    return out.item() if out.ndim == 0 else out
