"""The lake on S3 (issue 13 item 2): our one-PUT partitions vs bare pyarrow vs Delta Lake.

Starts a moto S3 server on 127.0.0.1 (as the tests do) and measures, on the same synthetic
minute bars (N sessions x 10 symbols):

* ingest of N partitions: bare ``pyarrow.parquet.write_table`` through an s3fs filesystem
  (one unconditional PUT per file, no hash) vs ours (``S3Store.write`` in one batch, as a step
  writes them: one conditional PUT each of the bytes the local store writes, sha256 in the
  object's metadata, then one commit-marker PUT; also without the batch, a marker PUT per
  partition) vs Delta Lake (one
  commit per partition, ``mode="overwrite", predicate="session = '…'"``, as a partition
  materialization would commit); target: ours >= 0.8x bare;
* the daily-resample query of ``bench_lake.py`` through our DuckDB view over the bucket vs the
  same view over local files (target: S3 <= 1.5x local), and over the Delta table (DuckDB 2.0
  reads Delta only through ``DeltaTable.to_pyarrow_dataset()``);
* a re-materialization: replacing one partition, ours vs Delta.

    python benchmarks/bench_lake_s3.py [--sessions 30] [--symbols 10] [--rounds 15] [--rtt-ms 0]

``--rtt-ms`` adds a network round trip (a sleep) to every request the views make per statement
(the commit marker's HEAD, a LIST): the moto server on loopback answers with CPU on this
machine's cores, a real bucket with latency, which the check overlapping the query hides.

Prints the numbers and ratios; asserts nothing. Best of 3 for each measurement but the view
query, which is timed in interleaved rounds (local, S3 through the local cache with the check
overlapping the query, the same with the check before the query, S3 with the cache off) and
reported as medians with their ranges.

Measured 2026-12-06, quiet 2-core machine, 40 rounds: view over S3 20.4 ms vs local 14.9 ms,
1.36x (per-round median 1.35x; was 1.56x with a LIST per statement); ingest in a batch 1.09x
bare pyarrow, a commit per partition 0.71x (history: benchmarks/README.md).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.s3_server starts the server, as the tests do
sys.path.insert(0, str(ROOT / "benchmarks"))  # bench_lake: the same query, the same timing

from bench_lake import DAILY_SQL, _best  # noqa: E402

from alpaca_improved_pipelines import calendar as cal  # noqa: E402
from alpaca_improved_pipelines.lake import storage  # noqa: E402
from alpaca_improved_pipelines.settings import DEFAULT_SYMBOLS  # noqa: E402
from alpaca_improved_pipelines.sources.synthetic_bars import minute_bars  # noqa: E402
from contracts.lake_store import S3Store  # noqa: E402
from tests.s3_server import KEY, SECRET, S3Server  # noqa: E402


def _delta_options(server: S3Server) -> dict[str, str]:
    return {
        "AWS_ACCESS_KEY_ID": KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": server.endpoint,
        "AWS_ALLOW_HTTP": "true",
        "AWS_S3_ALLOW_UNSAFE_RENAME": "true",  # harmless with conditional puts; older stores
    }


def _s3fs(server: S3Server) -> Any:
    import s3fs

    return s3fs.S3FileSystem(
        key=KEY,
        secret=SECRET,
        endpoint_url=server.endpoint,
        client_kwargs={"region_name": "us-east-1"},
        skip_instance_cache=True,
    )


def bench_ingest(
    server: S3Server, tables: dict[dt.date, pa.Table], bucket: str
) -> tuple[S3Store, str]:
    from deltalake import write_deltalake

    rows = sum(t.num_rows for t in tables.values())
    uri = f"s3://{bucket}/ours"
    store = S3Store(uri, server.env(uri))
    fresh = iter(range(100))
    # pyarrow's own S3FileSystem always completes a multipart upload, which moto 5.2.6 answers
    # with an error inside a 200 OK; the same write through s3fs is one PUT per file
    s3 = _s3fs(server)
    rounds = iter(range(100))

    def bare() -> None:
        r = next(rounds)
        for s, t in tables.items():
            key = f"{bucket}/bare{r}/stock_bars_1m/session={s}/part.parquet"
            pq.write_table(t, key, filesystem=s3, compression="zstd")

    def ours() -> None:  # new partitions each round, as bare writes: If-None-Match PUTs
        r = next(fresh)  # as a step writes them: one batch, one commit marker PUT at its end
        round_store = S3Store(f"{uri}{r}", server.env(uri))
        with round_store.batch():
            for s, t in tables.items():
                round_store.write(t, round_store.partition("stock_bars_1m", s))

    def ours_each() -> None:  # outside a batch: each write commits (a marker PUT) on its own
        r = next(fresh)
        round_store = S3Store(f"{uri}{r}", server.env(uri))
        for s, t in tables.items():
            round_store.write(t, round_store.partition("stock_bars_1m", s))

    def rerun() -> None:  # the same keys again: If-None-Match 412, HEAD, If-Match PUT
        with store.batch():
            for s, t in tables.items():
                store.write(t, store.partition("stock_bars_1m", s))

    delta_uri = f"s3://{bucket}/delta/stock_bars_1m"
    options = _delta_options(server)

    def delta() -> None:
        for s, t in tables.items():  # the bars carry their session column
            write_deltalake(
                delta_uri,
                t,
                partition_by=["session"],
                mode="overwrite",
                predicate=f"session = '{s.isoformat()}'",
                storage_options=options,
            )

    rerun()
    t_bare, t_ours, t_delta, t_rerun = _best(bare), _best(ours), _best(delta), _best(rerun)
    t_each = _best(ours_each)
    print(f"ingest {rows:,} minute rows in {len(tables)} partitions on the moto S3 server")
    print(f"  bare pyarrow write_table (s3fs, one PUT)   {rows / t_bare:>12,.0f} rows/s")
    print(
        f"  ours (If-None-Match PUTs, one commit)     {rows / t_ours:>12,.0f} rows/s  "
        f"ratio ours/bare {t_bare / t_ours:.2f}x (target >= 0.8x)"
    )
    print(
        f"  ours, a commit per partition (no batch)   {rows / t_each:>12,.0f} rows/s  "
        f"ratio {t_bare / t_each:.2f}x"
    )
    print(
        f"  ours, every partition replaced (rerun)    {rows / t_rerun:>12,.0f} rows/s  "
        f"ratio rerun/bare {t_bare / t_rerun:.2f}x"
    )
    print(
        f"  Delta Lake (one commit per partition)     {rows / t_delta:>12,.0f} rows/s  "
        f"ratio delta/bare {t_bare / t_delta:.2f}x"
    )
    return store, delta_uri


def bench_query(
    server: S3Server,
    tables: dict[dt.date, pa.Table],
    store: S3Store,
    delta_uri: str,
    tmp: Path,
    rounds: int = 15,
    rtt: float = 0.0,
) -> None:
    import duckdb
    from deltalake import DeltaTable

    from research import lakehouse

    local = tmp / "home"
    for s, t in tables.items():
        storage.write_partition(pl.from_arrow(t), local / "lake", "stock_bars_1m", s, fsync=False)  # type: ignore[arg-type]
    saved = {k: os.environ.get(k) for k in server.env(store.uri)}
    saved["ALPACA_IMPROVED_LAKE_CACHE"] = os.environ.get("ALPACA_IMPROVED_LAKE_CACHE")
    os.environ.pop("ALPACA_IMPROVED_LAKE_URI", None)
    con_local = lakehouse.connect(local, warn=False)
    os.environ.update(server.env(store.uri))
    con_s3 = lakehouse.connect(tmp / "remote-home", warn=False)
    con_serial = lakehouse.connect(tmp / "remote-home", warn=False)
    con_serial._validate = None  # the check before the query, not overlapped: a same-run A/B
    if rtt:  # a LIST's network round trip, which the moto server on loopback does not have
        stores = {id(s): s for s in (c._before.mirror.store for c in (con_s3, con_serial))}  # type: ignore[attr-defined]
        for lister in stores.values():  # connections to one lake share its store
            lister.listing = _delayed(lister.listing, rtt)
            lister.commit_marker = _delayed(lister.commit_marker, rtt)
    os.environ["ALPACA_IMPROVED_LAKE_CACHE"] = "off"  # the bucket through Python file objects
    con_streamed = lakehouse.connect(tmp / "remote-home", warn=False)
    os.environ["ALPACA_IMPROVED_LAKE_CACHE"] = str(tmp / "lake-cache")
    sql = DAILY_SQL.format(src="stock_bars_1m")
    assert con_s3.sql(sql).fetchall() == con_local.sql(sql).fetchall()
    assert con_streamed.sql(sql).fetchall() == con_local.sql(sql).fetchall()
    assert con_serial.sql(sql).fetchall() == con_local.sql(sql).fetchall()
    runs: dict[str, list[float]] = {"local": [], "s3": [], "serial": [], "streamed": []}
    cons = {"local": con_local, "s3": con_s3, "serial": con_serial, "streamed": con_streamed}
    order = list(cons)
    for r in range(rounds):  # interleaved: the shared machine's load drifts between runs
        for name in order[r % 4 :] + order[: r % 4]:  # each goes first in a quarter of rounds
            con = cons[name]
            t0 = time.perf_counter()
            con.sql(sql).fetchall()
            runs[name].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in runs.items()}
    per_round = sorted(s / loc for s, loc in zip(runs["s3"], runs["local"], strict=True))
    t_local, t_s3 = med["local"], med["s3"]
    dataset = DeltaTable(delta_uri, storage_options=_delta_options(server)).to_pyarrow_dataset()
    raw = duckdb.connect()
    raw.register("delta_bars", dataset)
    t_delta = _best(lambda: raw.sql(DAILY_SQL.format(src="delta_bars")).fetchall())
    t_open = _best(lambda: lakehouse.connect(tmp / "remote-home", warn=False).close())
    via_s3fs = duckdb.connect()
    via_s3fs.register_filesystem(_s3fs(server))
    glob = f"{store.uri}/stock_bars_1m/session=*/part.parquet"
    src = f"read_parquet('{glob}', hive_partitioning = true, union_by_name = true)"
    t_s3fs = _best(lambda: via_s3fs.sql(DAILY_SQL.format(src=src)).fetchall(), 1)
    print(
        f"daily resample of the minute lake (DuckDB), {rounds} interleaved rounds: median "
        f"[min-max], load {os.getloadavg()[0]:.1f}"
        + (f", every S3 LIST {rtt * 1e3:.0f} ms longer (a simulated round trip)" if rtt else "")
    )

    def spread(name: str) -> str:
        xs = runs[name]
        return f"{med[name] * 1e3:8.1f} ms [{min(xs) * 1e3:.1f}-{max(xs) * 1e3:.1f}]"

    print(f"  our view over local files                 {spread('local')}")
    print(
        f"  our view over the S3 bucket (local cache) {spread('s3')}  "
        f"ratio S3/local {t_s3 / t_local:.2f}x (target <= 1.5x; per round "
        f"{per_round[0]:.2f}-{per_round[-1]:.2f}x, median "
        f"{statistics.median(per_round):.2f}x)"
    )
    per_serial = sorted(s / loc for s, loc in zip(runs["serial"], runs["local"], strict=True))
    print(
        f"  the same, check before the query (serial) {spread('serial')}  "
        f"ratio {med['serial'] / t_local:.2f}x (per round {per_serial[0]:.2f}-"
        f"{per_serial[-1]:.2f}x, median {statistics.median(per_serial):.2f}x)"
    )
    print(
        f"  the same, cache off (Python file objects) {spread('streamed')}  "
        f"ratio {med['streamed'] / t_local:.2f}x"
    )
    t_list = _best(lambda: store.listing("stock_bars_1m"), 9)
    t_head = _best(lambda: store.commit_marker("stock_bars_1m"), 9)
    print(
        f"  per statement: the commit marker's HEAD   {t_head * 1e3:8.1f} ms (best of 9; a LIST "
        f"of the table, made when it changed: {t_list * 1e3:.1f} ms)"
    )
    print(
        f"  Delta table (DeltaTable -> Arrow dataset) {t_delta * 1e3:8.1f} ms  "
        f"ratio delta/local {t_delta / t_local:.2f}x"
    )
    print(
        f"  the same read_parquet through s3fs        {t_s3fs * 1e3:8.1f} ms  "
        f"ratio s3fs/local {t_s3fs / t_local:.2f}x (the path we did not take)"
    )
    print(f"  connect() over S3 (LISTs, fetch, schemas) {t_open * 1e3:8.1f} ms (once per session)")
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def _delayed(listing: Any, rtt: float) -> Any:
    def delayed(name: str) -> Any:
        time.sleep(rtt)  # waiting on the network: no CPU, the GIL released
        return listing(name)

    return delayed


def bench_replace(
    server: S3Server, tables: dict[dt.date, pa.Table], store: S3Store, delta_uri: str
) -> None:
    from deltalake import write_deltalake

    s, t = next(iter(tables.items()))
    options = _delta_options(server)
    t_ours = _best(lambda: store.write(t, store.partition("stock_bars_1m", s)), 5)
    t_delta = _best(
        lambda: write_deltalake(
            delta_uri,
            t,
            mode="overwrite",
            predicate=f"session = '{s.isoformat()}'",
            storage_options=options,
        ),
        5,
    )
    print(f"re-materialize one partition ({t.num_rows:,} rows)")
    print(f"  ours (HEAD + If-Match PUT)                {t_ours * 1e3:8.1f} ms")
    print(
        f"  Delta overwrite with predicate            {t_delta * 1e3:8.1f} ms  "
        f"ratio delta/ours {t_delta / t_ours:.2f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sessions", type=int, default=30)
    ap.add_argument("--symbols", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=15, help="interleaved view timings")
    ap.add_argument(
        "--rtt-ms", type=float, default=0.0, help="add this round trip to every view-time request"
    )
    args = ap.parse_args()
    symbols = DEFAULT_SYMBOLS[: args.symbols]
    sessions = cal.sessions_between(dt.date(2024, 1, 2), dt.date(2025, 6, 30))[: args.sessions]
    tables = {s: minute_bars(7, symbols, s).to_arrow() for s in sessions}
    server = S3Server.start()
    try:
        bucket = server.bucket()
        with tempfile.TemporaryDirectory() as tmp:
            store, delta_uri = bench_ingest(server, tables, bucket)
            bench_query(server, tables, store, delta_uri, Path(tmp), args.rounds, args.rtt_ms / 1e3)
            bench_replace(server, tables, store, delta_uri)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
