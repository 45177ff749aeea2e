"""``benchmarks/bench_stream.py --quick`` runs end to end and prints its four sections.

A smoke test only: it proves the benchmark still drives the real clients against the fakes
(each section raises if a message, a reconnect or a backfill never arrives) and prints the
numbers; it asserts no timing, because the machine is shared.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow  # ~30 s: three spawned processes, each importing alpaca-py and the fakes
def test_quick_run_prints_every_section() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_stream.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    assert done.returncode == 0, done.stderr[-3000:]
    for title in ("1. ingest", "2. option quotes", "3. gap backfill", "4. memory"):
        assert f"== {title}" in out, out
    # every client of sections 1 and 2 delivered every message at a positive rate
    rows = re.findall(r"^  (alpaca-py raw|alpaca-py models|ours) +([\d,]+) +([\d,]+) ", out, re.M)
    assert [name for name, _, _ in rows] == ["alpaca-py raw", "alpaca-py models", "ours"] * 2
    assert all(int(r.replace(",", "")) > 0 for _, wall, cpu in rows for r in (wall, cpu))
    assert out.count("ratio ours / alpaca-py raw") == 2
    assert re.search(r"reconnect -> zero gaps: median \d+\.\d+ s, max \d+\.\d+ s", out)
    # both memory runs sampled VmRSS through the whole (short) session
    assert len(re.findall(r"^   0m \d+ .* 40m \d+$", out, re.M)) == 2, out
