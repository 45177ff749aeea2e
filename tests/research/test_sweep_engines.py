"""Sweep engines: the local pool and a real Dask LocalCluster (2 single-threaded worker processes)
give bit-identical results and exact trial counts; checkpoints resume across engines after a
killed worker or a cancelled sweep; bad engine settings fail at start with one line."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import signal
import socket
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from alpaca_improved_pipelines.backtesting import sweep as sw
from alpaca_improved_pipelines.backtesting.checkpoints import Checkpoints
from alpaca_improved_pipelines.backtesting.data import CloseMatrix, load_closes
from alpaca_improved_pipelines.backtesting.engines import (
    ENGINE_ENV,
    SCHEDULER_ENV,
    DaskEngine,
    EngineConfig,
    LocalEngine,
    SweepInterrupted,
    engine_config,
    open_engine,
)
from alpaca_improved_pipelines.backtesting.families import family
from alpaca_improved_pipelines.defs.research.assets import SWEEPS
from alpaca_improved_pipelines.errors import ConfigError
from contracts import paths

from .conftest import one_worker, quiet, resources_for

FAMILY = "rsi_reversion"


def bits(frame: pl.DataFrame) -> str:
    """sha256 of the frame's Arrow IPC bytes: equal only when every value is equal bit for bit."""
    buf = io.BytesIO()
    # the oldest Arrow layout: strings as offsets + bytes, whatever chunks built the frame
    frame.rechunk().write_ipc(buf, compression="uncompressed", compat_level=pl.CompatLevel.oldest())
    return hashlib.sha256(buf.getvalue()).hexdigest()


def executed(dask_worker) -> int:  # run on a worker by Client.run
    return int(dask_worker.state.executed_count)


def sweep_asset(year_home: Path, home: Path) -> dg.ExecuteInProcessResult:
    """Materialize the family's sweep asset in ``home`` (a copy of the year lake's daily bars)."""
    shutil.copytree(year_home / "lake" / "stock_bars_1d", home / "lake" / "stock_bars_1d")
    with dg.instance_for_test() as instance:
        return dg.materialize(
            [SWEEPS[FAMILY]],
            resources=resources_for(home),
            instance=instance,
            run_config=quiet(one_worker(FAMILY)),
            raise_on_error=False,
        )


def transitions_to_processing(dask_scheduler) -> dict[str, int]:  # run on the scheduler
    out: dict[str, int] = {}
    for key, _start, finish, *_ in dask_scheduler.transition_log:
        if finish == "processing" and "-chunk-" in str(key):
            out[str(key)] = out.get(str(key), 0) + 1
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def points() -> list[dict]:
    return family(FAMILY).grid()[:40]  # 40 points = 10 chunks of 4


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sw, "CHUNK", 4)  # many tasks from a small sweep


@pytest.fixture(scope="module")
def closes(year_home: Path) -> CloseMatrix:
    return load_closes(year_home / "lake")


@pytest.fixture(scope="module")
def reference(closes: CloseMatrix, points: list[dict], tmp_path_factory) -> pl.DataFrame:
    """The local engine's result, all chunks in this process."""
    old, sw.CHUNK = sw.CHUNK, 4
    try:
        out, _ = sw.run_sweep(
            sw.SweepSpec(FAMILY, points),
            closes,
            tmp_path_factory.mktemp("ref"),
            engine=LocalEngine(1),
        )
    finally:
        sw.CHUNK = old
    return out


@pytest.fixture(scope="module")
def cluster(closes: CloseMatrix, points: list[dict]) -> Iterator[DaskEngine]:
    """A real LocalCluster of 2 worker processes, the sweep code imported and compiled on both."""
    with DaskEngine.local_cluster(2) as engine:
        assert len(engine.client.scheduler_info()["workers"]) == 2
        engine.client.run(sw.evaluate_chunk, sw.SweepSpec(FAMILY, []), points[:2], closes)
        yield engine


# ---- configuration: one line naming the variable, before anything runs -------------------------


def test_default_is_the_local_pool() -> None:
    assert engine_config({}) == EngineConfig("local")
    assert isinstance(open_engine(3, environ={}), LocalEngine)
    assert engine_config({ENGINE_ENV: "DASK"}) == EngineConfig("dask")
    addr = "tcp://10.0.0.5:8786"
    assert engine_config({SCHEDULER_ENV: addr}) == EngineConfig("dask", addr)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({ENGINE_ENV: "ray"}, ENGINE_ENV),
        ({SCHEDULER_ENV: "10.0.0.5:8786"}, SCHEDULER_ENV),
        ({SCHEDULER_ENV: "tcp://10.0.0.5"}, SCHEDULER_ENV),
        ({ENGINE_ENV: "local", SCHEDULER_ENV: "tcp://h:8786"}, SCHEDULER_ENV),
    ],
)
def test_bad_engine_settings_are_one_line_naming_the_variable(env: dict, named: str) -> None:
    with pytest.raises(ConfigError) as err:
        open_engine(2, environ=env)
    msg = str(err.value)
    assert msg.startswith(named) and "\n" not in msg


def test_every_command_refuses_a_bad_engine_at_start_up() -> None:
    from alpaca_improved_pipelines.settings import load_settings

    with pytest.raises(ConfigError, match=f"^{ENGINE_ENV}='ray' is not a sweep engine"):
        load_settings({ENGINE_ENV: "ray"})
    assert load_settings({SCHEDULER_ENV: "tcp://10.0.0.5:8786"})  # parsed, not dialled, here


def test_unreachable_scheduler_fails_at_start() -> None:
    addr = f"tcp://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ConfigError) as err:
        open_engine(2, environ={SCHEDULER_ENV: addr}, timeout=2)
    msg = str(err.value)
    assert msg.startswith(f"{SCHEDULER_ENV}='{addr}' is unreachable") and "\n" not in msg


def test_scheduler_without_workers_fails_at_start() -> None:
    from distributed import LocalCluster

    no_workers = f"^{SCHEDULER_ENV}=.* has no workers after 1 s"
    with (
        LocalCluster(n_workers=0, host="127.0.0.1", dashboard_address=None) as empty,
        pytest.raises(ConfigError, match=no_workers),
    ):
        open_engine(2, environ={SCHEDULER_ENV: empty.scheduler_address}, timeout=1)


def test_unknown_engine_fails_the_sweep_before_any_run_or_checkpoint(
    year_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv(ENGINE_ENV, "spark")
    res = sweep_asset(year_home, home)
    assert not res.success
    failure = res.get_step_failure_events()[0].step_failure_data.error
    assert failure is not None and failure.cause is not None
    assert failure.cause.cls_name == "ConfigError"
    assert failure.cause.message.startswith(
        f"alpaca_improved_pipelines.errors.ConfigError: {ENGINE_ENV}='spark' is not a sweep engine"
    )
    assert not (home / "sweeps").exists()
    with sqlite3.connect(paths.mlflow_db(home)) as db:  # the store exists; no run was opened
        assert db.execute("select count(*) from runs").fetchone() == (0,)


def test_chunk_size_grows_with_the_sweep_within_its_bounds() -> None:
    """Small sweeps keep CHUNK points a chunk; big ones double it while they keep MIN_CHUNKS
    chunks, up to MAX_CHUNK points and MAX_CHUNK_CELLS simulated closes a chunk."""
    assert sw.chunk_size(40) == sw.CHUNK == 32
    assert sw.chunk_size(64 * 64 - 1) == 32 and sw.chunk_size(64 * 64) == 64
    assert sw.chunk_size(50_000, 502 * 3) == 512  # 97 chunks of 512
    assert sw.chunk_size(10_000, 502 * 3) == 128  # 78 chunks of 128
    assert sw.chunk_size(10**7, 502 * 3) == sw.MAX_CHUNK
    # minute bars: 24,780 bars x 3 symbols a point; 64 points would simulate 4.8M closes
    assert sw.chunk_size(100_000, 24_780 * 3) == 32
    for n in (1, 100, 5_000, 33_333, 250_000):
        for cells in (1, 1_506, 74_340):
            size = sw.chunk_size(n, cells)
            assert size % sw.CHUNK == 0 and (size == sw.CHUNK or size * cells <= sw.MAX_CHUNK_CELLS)


def test_rows_and_floats_do_not_depend_on_the_chunk_size(
    closes: CloseMatrix, points: list[dict], reference: pl.DataFrame, tmp_path: Path
) -> None:
    """The reference ran in chunks of 4; chunks of 8 and 40 give equal rows, bit for bit, in
    their own checkpoint files (the size is in the name: neither run reads the other's)."""
    spec = sw.SweepSpec(FAMILY, points)
    for size in (8, 40):
        old, sw.CHUNK = sw.CHUNK, size
        try:
            out, resumed = sw.run_sweep(spec, closes, tmp_path, engine=LocalEngine(1))
        finally:
            sw.CHUNK = old
        assert resumed == 0 and out.height == len(points)
        assert bits(out) == bits(reference)
    assert sorted(p.name for p in tmp_path.glob("chunk-*.parquet")) == [
        *(f"chunk-40-{i:05d}.parquet" for i in range(1)),
        *(f"chunk-8-{i:05d}.parquet" for i in range(5)),
    ]


def test_a_sweep_in_grown_chunks_resumes_from_them(
    closes: CloseMatrix,
    points: list[dict],
    reference: pl.DataFrame,
    small_chunks,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """40 points with MIN_CHUNKS 2 grow to chunks of 16 (16, 16, 8): interrupted after one, the
    rerun takes it from its checkpoint and computes the other two, the rows bit for bit the
    reference's (chunks of 4)."""
    monkeypatch.setattr(sw, "MIN_CHUNKS", 2)
    assert sw.chunk_size(len(points), int(closes.close.size)) == 16
    spec = sw.SweepSpec(FAMILY, points)

    def stop_after_1(i: int, total: int) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(spec, closes, tmp_path, engine=LocalEngine(1), on_chunk=stop_after_1)
    assert [p.name for p in tmp_path.glob("chunk-*.parquet")] == ["chunk-16-00000.parquet"]
    out, resumed = sw.run_sweep(spec, closes, tmp_path, engine=LocalEngine(1))
    assert resumed == 1 and bits(out) == bits(reference)
    assert sorted(p.name for p in tmp_path.glob("chunk-*.parquet")) == [
        f"chunk-16-{i:05d}.parquet" for i in range(3)
    ]


@pytest.mark.slow
def test_the_local_cluster_runs_without_dashboard_feeds() -> None:
    """The LocalCluster the engine starts: single-threaded workers with no stack sampling and
    slow health ticks (what only a dashboard reads), this process's settings untouched."""
    import dask

    from alpaca_improved_pipelines.backtesting.engines import LOCAL_CLUSTER_CONFIG

    here = {k: dask.config.get(k) for k in LOCAL_CLUSTER_CONFIG}

    def settings(dask_worker) -> dict:  # Client.run hands the worker to this argument
        return {k: dask.config.get(k) for k in LOCAL_CLUSTER_CONFIG} | {
            "nthreads": dask_worker.state.nthreads
        }

    with DaskEngine.local_cluster(1) as engine:
        (seen,) = engine.client.run(settings).values()
    assert seen == {**LOCAL_CLUSTER_CONFIG, "nthreads": 1}
    assert {k: dask.config.get(k) for k in LOCAL_CLUSTER_CONFIG} == here  # only inside it


def test_checkpoints_remove_a_killed_drivers_temp_files_once(tmp_path: Path) -> None:
    """The first put of a (resumed) sweep removes stale temporary files; later puts do not scan
    the directory again (a scan per put was O(chunks^2) for the driver)."""
    import pyarrow as pa

    from contracts import parquet_io

    blob = parquet_io.serialize(pa.table({"x": [1, 2]}))[0].to_pybytes()
    ck = Checkpoints(tmp_path)
    stale = tmp_path / f"{parquet_io.TMP_PREFIX}999-dead"
    stale.write_bytes(b"half a chunk")
    ck.put(0, blob)
    assert not stale.exists()
    stale.write_bytes(b"half a chunk")
    ck.put(1, blob)
    assert stale.exists()  # not scanned for again by this sweep's later puts
    assert ck.read(1)["x"].to_list() == [1, 2] and ck.exists(0)
    Checkpoints(tmp_path).put(2, blob)  # the next run's first put cleans
    assert not stale.exists()


# ---- the cluster: identical results, exact trials, resume ---------------------------------------


@pytest.mark.slow
def test_dask_equals_local_bit_for_bit(
    cluster: DaskEngine, closes, points, reference, small_chunks, tmp_path: Path
) -> None:
    ran_before = cluster.client.run(executed)
    out, resumed = sw.run_sweep(sw.SweepSpec(FAMILY, points), closes, tmp_path, engine=cluster)
    assert resumed == 0
    assert out.height == len(points) == reference.height  # every point once: the trial count
    assert out["params"].n_unique() == len(points)
    assert bits(out) == bits(reference)
    # both workers took chunks (a one-worker run would prove nothing about distribution)
    ran = cluster.client.run(executed)
    assert len(ran) == 2 and all(ran[w] > ran_before.get(w, 0) for w in ran)


@pytest.mark.slow
def test_dask_tasks_carry_batches_of_chunks_same_bits(
    cluster: DaskEngine,
    closes,
    points,
    reference,
    small_chunks,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """10 chunks on 2 workers at 1 task per worker: 2 tasks of 5 chunks, each chunk
    checkpointed once by its own index, the result bit for bit the local one."""
    from alpaca_improved_pipelines.backtesting import engines

    monkeypatch.setattr(engines, "TASKS_PER_WORKER", 1)
    assert cluster.batch_size(10, 4) == 5
    seen = cluster.client.run_on_scheduler(transitions_to_processing)
    out, resumed = sw.run_sweep(sw.SweepSpec(FAMILY, points), closes, tmp_path, engine=cluster)
    tasks = {
        k
        for k, n in cluster.client.run_on_scheduler(transitions_to_processing).items()
        if n > seen.get(k, 0)
    }
    assert len(tasks) == 2 and all(k.endswith("-5") for k in tasks), tasks
    assert resumed == 0 and sorted(p.name for p in tmp_path.glob("chunk-*.parquet")) == [
        f"chunk-4-{i:05d}.parquet" for i in range(10)
    ]
    assert out.height == len(points) and bits(out) == bits(reference)
    monkeypatch.setattr(engines, "MAX_POINTS_PER_TASK", 12)
    assert cluster.batch_size(10, 4) == 3  # capped however few workers
    assert cluster.batch_size(10, 512) == 1  # a big chunk is a task of its own


@pytest.mark.slow
def test_killed_worker_mid_sweep_same_result_and_trial_count(
    cluster: DaskEngine, closes, points, reference, small_chunks, tmp_path: Path
) -> None:
    client = cluster.client
    pids = client.run(os.getpid)  # worker address -> its process id
    seen = client.run_on_scheduler(transitions_to_processing)
    killed: list[int] = []

    def kill_one(i: int, total: int) -> None:  # after the first checkpoint: chunks still running
        if not killed:
            busy = [w for w, keys in client.processing().items() if keys and w in pids]
            if not busy:  # no chunk running at this instant (a loaded machine): next checkpoint
                return
            pid = pids[busy[0]]
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)

    out, resumed = sw.run_sweep(
        sw.SweepSpec(FAMILY, points), closes, tmp_path, engine=cluster, on_chunk=kill_one
    )
    assert killed and resumed == 0
    assert len(list(tmp_path.glob("chunk-*.parquet"))) == len(points) // 4
    assert out.height == len(points) and out["params"].n_unique() == len(points)
    assert bits(out) == bits(reference)
    # the killed worker's chunks were handed to a worker again, and still counted once
    assigned = client.run_on_scheduler(transitions_to_processing)
    again = {k: n - seen.get(k, 0) for k, n in assigned.items() if n - seen.get(k, 0) > 1}
    assert again, "no chunk was re-assigned: the kill did not hit a busy worker"
    client.wait_for_workers(2, timeout=120)  # the nanny restarted the killed worker
    assert killed[0] not in set(client.run(os.getpid).values())


@pytest.mark.slow
def test_interrupted_sweeps_resume_on_the_other_engine(
    cluster: DaskEngine, closes, points, reference, small_chunks, tmp_path: Path
) -> None:
    spec = sw.SweepSpec(FAMILY, points)

    # local engine interrupted after 3 chunks -> the cluster finishes it
    def stop_after_3(i: int, total: int) -> None:
        if len(list((tmp_path / "a").glob("chunk-*.parquet"))) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(spec, closes, tmp_path / "a", engine=LocalEngine(1), on_chunk=stop_after_3)
    out, resumed = sw.run_sweep(spec, closes, tmp_path / "a", engine=cluster)
    assert resumed == 3 and bits(out) == bits(reference)


@pytest.mark.slow
def test_a_cluster_restarted_mid_sweep_stops_it_and_the_local_engine_resumes(
    closes, points, reference, small_chunks, tmp_path: Path
) -> None:
    """On a cluster of its own: a restart (every task cancelled) must not leave the shared
    cluster waiting for its workers to come back on a loaded machine."""
    spec = sw.SweepSpec(FAMILY, points)
    with DaskEngine.local_cluster(2) as own:

        def restart_after_2(i: int, total: int) -> None:
            if len(list((tmp_path / "b").glob("chunk-*.parquet"))) == 2:
                own.client.restart(wait_for_workers=False)  # their start-up is slow here

        with pytest.raises(SweepInterrupted, match="rerun the sweep to resume"):
            sw.run_sweep(spec, closes, tmp_path / "b", engine=own, on_chunk=restart_after_2)
    assert len(list((tmp_path / "b").glob("chunk-*.parquet"))) == 2
    out, resumed = sw.run_sweep(spec, closes, tmp_path / "b", engine=LocalEngine(1))
    assert resumed == 2 and bits(out) == bits(reference)
    assert out.height == len(points) and out["params"].n_unique() == len(points)


@pytest.mark.slow
def test_family_sweep_asset_on_the_cluster_equals_local(
    cluster: DaskEngine, year_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The Dagster asset through ALPACA_IMPROVED_DASK_SCHEDULER: same table, same trial ledger."""
    tables, trials = {}, {}
    for engine in ("local", "dask"):
        home = tmp_path / engine
        if engine == "dask":
            monkeypatch.setenv(SCHEDULER_ENV, cluster.client.scheduler.address)
        res = sweep_asset(year_home, home)
        assert res.success
        meta = res.asset_materializations_for_node(f"{FAMILY}_sweep")[0].metadata
        trials[engine] = (meta["trials"].value, meta["trials_in_ledger"].value)
        tables[engine] = pl.read_parquet(
            home / "lake" / "sweep_results" / f"family={FAMILY}" / "part.parquet"
        )
    assert trials["dask"] == trials["local"]
    assert trials["dask"][0] == tables["dask"].height == tables["dask"]["params"].n_unique()
    assert bits(tables["dask"]) == bits(tables["local"])


def test_checkpoints_in_the_lakes_bucket_resume(
    s3_lake: str, closes, points, reference, small_chunks, tmp_path: Path
) -> None:
    """With the lake on S3 the checkpoints are objects in its bucket; a rerun resumes from them."""
    size = sw.chunk_size(len(points), int(closes.close.size))
    ck = Checkpoints.for_sweep(tmp_path, FAMILY, "k1").sized(size)
    assert ck.where() == f"{s3_lake}/_sweeps/{FAMILY}/k1"
    spec = sw.SweepSpec(FAMILY, points)

    def stop_after_3(i: int, total: int) -> None:
        if sum(ck.exists(j) for j in range(total)) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        sw.run_sweep(spec, closes, ck, engine=LocalEngine(1), on_chunk=stop_after_3)
    again = Checkpoints.for_sweep(tmp_path, FAMILY, "k1")  # a new process would build this
    out, resumed = sw.run_sweep(spec, closes, again, engine=LocalEngine(1))
    assert resumed == 3 and bits(out) == bits(reference)
    assert not (tmp_path / "sweeps").exists()  # nothing on local disk
