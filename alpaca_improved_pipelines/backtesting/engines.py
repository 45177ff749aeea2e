"""Where a sweep's chunks run: this machine's process pool (the default) or a Dask cluster.

One switch, read at the start of a sweep (bad values fail there, with one line naming the
variable, before any data is loaded or any MLflow run is opened):

* ``ALPACA_IMPROVED_SWEEP_ENGINE`` unset or ``local``: today's spawn ``ProcessPoolExecutor``.
* ``ALPACA_IMPROVED_SWEEP_ENGINE=dask`` (or only ``ALPACA_IMPROVED_DASK_SCHEDULER`` set): a
  ``distributed.Client`` to the scheduler at ``ALPACA_IMPROVED_DASK_SCHEDULER``
  (``tcp://host:8786``), or, without an address, a ``LocalCluster`` of one single-threaded worker
  process per requested worker, capped at this machine's cores.

Why Dask and not Ray: ``dask[distributed]`` is pure-Python wheels already in the lock (a
consistent 2026.8.0 pair), whereas Ray is a 70 MB+ native runtime with its own object store and
dashboard; a sweep needs only "run this function on that chunk somewhere and hand back a small
frame", which ``Client.submit`` is. Dagster's executors are no substitute: they distribute steps,
not work inside one step.

What every engine guarantees (``tests/research/test_sweep_engines.py``):

* The engine only decides where a chunk runs. A chunk is a fixed slice of the sweep's points
  (``sweep.chunk_size`` of them, fixed by the sweep), evaluated by the same ``evaluate_chunk``
  whatever the engine, and the driver (the process calling ``run_sweep``) writes each chunk's
  checkpoint and assembles the result in chunk order. So the rows, their order and their floats
  are the same on every engine and worker count (bit for bit on one software stack; the Dask
  engine refuses workers whose numpy, numba, vectorbt, polars or sweep code differ from the
  driver's).
* Each chunk is checkpointed exactly once by index: a task Dask re-runs after losing its worker
  yields one result for its index, so the trial count (which deflates the Sharpe) is exact.
* A Dask task carries several small chunks (up to ``MAX_POINTS_PER_TASK`` points, while a sweep
  still makes ``TASKS_PER_WORKER`` tasks per worker), so the driver's per-task cost (the
  in-process scheduler, the client, ~5 ms CPU a task) is paid once per batch; its results come
  back per chunk index. The chunks travel as one opaque object: Dask walks every list, tuple and
  dict of a task's arguments looking for futures, which over 50k point dicts was 0.4 s of the
  driver's CPU.
  numba's parallel kernels in a task are capped at the worker's threads (one for the
  ``LocalCluster``'s workers), so N workers use N cores, not N x cores.
* A sweep whose tasks are cancelled (a ``client.restart()``, a scheduler that went away) raises
  :class:`SweepInterrupted`; running it again resumes from the checkpoints, on either engine.
"""

from __future__ import annotations

import hashlib
import multiprocessing as mp
import os
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import CancelledError, ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self
from urllib.parse import urlsplit

from alpaca_improved_pipelines.errors import AlpacaImprovedError, ConfigError

ENGINE_ENV = "ALPACA_IMPROVED_SWEEP_ENGINE"
SCHEDULER_ENV = "ALPACA_IMPROVED_DASK_SCHEDULER"
ENGINES = ("local", "dask")
SCHEMES = ("tcp", "tls", "inproc", "ucx", "ws", "wss")
CONNECT_TIMEOUT = 10.0  # seconds to reach a scheduler and see a worker before failing at start
# Dask tasks: each carries up to MAX_POINTS_PER_TASK points, and a sweep makes at least
# TASKS_PER_WORKER tasks per worker when it has the chunks for it (DaskEngine.batch_size)
MAX_POINTS_PER_TASK = 512
TASKS_PER_WORKER = 8
# The LocalCluster this engine starts has no dashboard, so it skips what only feeds one: the
# workers' stack sampling every 10 ms, the system monitor every 0.5 s, the event-loop health
# tick every 20 ms (kept at 1 s: a blocked loop is still reported), and the memory checks every
# 0.1 s (1 s). Idle, measured: the driver 27-38 -> 10-11 ms CPU per second, each worker 17-20 ->
# 4-5 ms, CPU the sweep's workers share with them on a small machine.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "1s",
}

# fn(spec, points, data) -> frame; the engine calls it on every chunk
ChunkFn = Callable[[Any, list[dict[str, Any]], Any], Any]


class SweepInterrupted(AlpacaImprovedError):
    """The engine lost the sweep's tasks (cancelled, scheduler gone); rerun it to resume."""


@dataclass(frozen=True)
class EngineConfig:
    """Which engine a sweep uses, parsed from the environment (nothing connected yet)."""

    name: str  # "local" or "dask"
    scheduler: str | None = None  # a Dask scheduler address; None starts a LocalCluster


def engine_config(environ: Mapping[str, str] | None = None) -> EngineConfig:
    """Parse ``ALPACA_IMPROVED_SWEEP_ENGINE`` / ``ALPACA_IMPROVED_DASK_SCHEDULER``.

    Raises ConfigError (one line naming the variable and the fix) on an unknown engine, a
    malformed address, or an address with the local engine asked for explicitly.
    """
    env = os.environ if environ is None else environ
    name = (env.get(ENGINE_ENV) or "").strip().lower()
    scheduler = (env.get(SCHEDULER_ENV) or "").strip() or None
    if name and name not in ENGINES:
        raise ConfigError(
            f"{ENGINE_ENV}={env.get(ENGINE_ENV)!r} is not a sweep engine; use local (the "
            f"default, this machine's processes) or dask (with {SCHEDULER_ENV}=tcp://host:8786, "
            "or a LocalCluster without it)"
        )
    if scheduler is None:
        return EngineConfig(name or "local")
    if name == "local":
        raise ConfigError(
            f"{SCHEDULER_ENV}={scheduler!r} is set but {ENGINE_ENV}=local; unset "
            f"{SCHEDULER_ENV} to sweep on this machine, or set {ENGINE_ENV}=dask"
        )
    parts = urlsplit(scheduler)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in SCHEMES or not parts.hostname or (parts.scheme != "inproc" and not port):
        raise ConfigError(
            f"{SCHEDULER_ENV}={scheduler!r} is not a Dask scheduler address; use "
            "tcp://host:8786 (the address `dask scheduler` prints)"
        )
    return EngineConfig("dask", scheduler)


class SweepEngine:
    """Runs chunks of a sweep; a context manager that releases what it started."""

    name = "engine"

    def map_chunks(
        self, fn: ChunkFn, spec: Any, data: Any, chunks: Mapping[int, list[dict[str, Any]]]
    ) -> Iterator[tuple[int, Any]]:
        """Yield ``(index, fn(spec, chunks[index], data))`` once per index, in any order."""
        raise NotImplementedError

    def close(self) -> None:
        """Release workers, clients and clusters this engine started."""

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class LocalEngine(SweepEngine):
    """Today's engine: the first chunk in this process, the rest on spawned worker processes."""

    name = "local"

    def __init__(self, workers: int = 2) -> None:
        self.workers = workers

    def map_chunks(
        self, fn: ChunkFn, spec: Any, data: Any, chunks: Mapping[int, list[dict[str, Any]]]
    ) -> Iterator[tuple[int, Any]]:
        todo = list(chunks)
        if not todo:
            return
        # here first: compiles (or loads the disk cache of) the numba kernels the workers reuse
        yield todo[0], fn(spec, chunks[todo[0]], data)
        rest = todo[1:]
        if self.workers > 1 and len(rest) > 1:
            # spawn, not fork: a Dagster/MLflow process has threads whose locks a fork would copy
            # held (seen as a hung worker); spawned workers import afresh and use numba's disk cache
            ctx = mp.get_context("spawn")
            with ProcessPoolExecutor(max_workers=self.workers, mp_context=ctx) as pool:
                futures = {i: pool.submit(fn, spec, chunks[i], data) for i in rest}
                for i, fut in futures.items():
                    yield i, fut.result()
        else:
            for i in rest:
                yield i, fn(spec, chunks[i], data)


def _identity(value: Any) -> Any:
    return value


@dataclass(frozen=True)
class _Batch:
    """The chunks one Dask task evaluates, ``(index, points)`` each: an object Dask does not
    look inside for futures (as it does every list, tuple and dict argument, item by item)."""

    chunks: list[tuple[int, list[dict[str, Any]]]]


def _run_batch(fn: ChunkFn, spec: Any, batch: _Batch, data: Any) -> list[tuple[int, Any]]:
    """One Dask task: ``fn`` over several chunks, each result kept with its chunk index.

    numba's parallel kernels are capped at the worker's thread count (a single-threaded worker
    must not spread one chunk over every core: two workers on two cores would fight)."""
    import numba
    from distributed import get_worker

    try:
        nthreads = get_worker().state.nthreads
    except ValueError:  # not on a worker (a test calling it directly)
        nthreads = numba.get_num_threads()
    numba.set_num_threads(max(1, min(nthreads, numba.get_num_threads())))
    return [(i, fn(spec, points, data)) for i, points in batch.chunks]


def sweep_stack() -> dict[str, str | None]:
    """What decides a chunk's floats: library versions and a hash of the sweep's own code."""
    from importlib.metadata import PackageNotFoundError, version

    import strategies

    out: dict[str, str | None] = {}
    for pkg in ("numpy", "numba", "vectorbt", "polars", "pyarrow", "scipy", "pandas"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    digest = hashlib.sha256()
    roots = [Path(__file__).parent, Path(strategies.__file__).parent]
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            digest.update(path.relative_to(root.parent).as_posix().encode())
            digest.update(path.read_bytes())
    out["sweep_code"] = digest.hexdigest()[:16]
    return out


class DaskEngine(SweepEngine):
    """Chunks as Dask tasks on a ``distributed.Client``'s workers; results gathered here."""

    name = "dask"

    def __init__(self, client: Any, owned: list[Any] | None = None) -> None:
        self.client = client
        self._owned = owned or []  # closed with the engine (the client, a LocalCluster)

    @classmethod
    def local_cluster(cls, workers: int = 2) -> DaskEngine:
        """A ``LocalCluster`` of single-threaded worker processes, capped at the cores here."""
        import dask
        from distributed import Client, LocalCluster

        n = max(1, min(workers, os.cpu_count() or 1))
        with dask.config.set(LOCAL_CLUSTER_CONFIG):  # the nannies hand it to their workers
            cluster = LocalCluster(
                n_workers=n,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            )
        client = Client(cluster)
        return cls(client, [client, cluster])

    @classmethod
    def connect(cls, address: str, timeout: float = CONNECT_TIMEOUT) -> DaskEngine:
        """A client of the scheduler at ``address`` with at least one compatible worker.

        Fails at start (ConfigError naming ``ALPACA_IMPROVED_DASK_SCHEDULER``) when the scheduler
        is unreachable, has no worker within ``timeout``, or its workers cannot import this
        project or run other library versions (their floats could differ).
        """
        from distributed import Client

        var = f"{SCHEDULER_ENV}={address!r}"
        try:
            client = Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigError(
                f"{var} is unreachable ({type(exc).__name__}: {str(exc).splitlines()[0][:160]}); "
                "start a scheduler there (`dask scheduler --port 8786`) or unset it to sweep on "
                "this machine"
            ) from None
        engine = cls(client, [client])
        try:
            engine._check_workers(var, timeout)
        except BaseException:
            engine.close()
            raise
        return engine

    def _check_workers(self, var: str, timeout: float) -> None:
        try:
            self.client.wait_for_workers(1, timeout=timeout)
        except (OSError, TimeoutError):
            raise ConfigError(
                f"{var} has no workers after {timeout:g} s; start some with "
                "`dask worker <address> --nthreads 1` on machines that have this project installed"
            ) from None
        mine = sweep_stack()
        try:
            theirs = self.client.run(sweep_stack)
        except Exception as exc:  # an unpickling worker: our code is not installed there
            raise ConfigError(
                f"{var}: its workers cannot run the sweep code ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:160]}); install this project on every worker"
            ) from None
        for worker, stack in sorted(theirs.items()):
            diff = sorted(k for k in mine if stack.get(k) != mine[k])
            if diff:
                raise ConfigError(
                    f"{var}: worker {worker} differs from this process in {', '.join(diff)} "
                    f"({diff[0]}: {stack.get(diff[0])} there, {mine[diff[0]]} here); install the "
                    "same lock and code on every worker, or results would not be reproducible"
                )

    def batch_size(self, n_chunks: int, chunk_points: int) -> int:
        """Chunks per Dask task: enough tasks for ``TASKS_PER_WORKER`` per worker (load balance,
        a lost worker loses little), at most ``MAX_POINTS_PER_TASK`` points (the scheduler's and
        the client's per-task cost, ~5 ms of the driver's CPU, is paid once per task)."""
        workers = max(1, len(self.client.scheduler_info(n_workers=-1).get("workers", {})))
        cap = MAX_POINTS_PER_TASK // max(1, chunk_points)
        return max(1, min(cap, n_chunks // (TASKS_PER_WORKER * workers)))

    def map_chunks(
        self, fn: ChunkFn, spec: Any, data: Any, chunks: Mapping[int, list[dict[str, Any]]]
    ) -> Iterator[tuple[int, Any]]:
        from distributed import as_completed

        if not chunks:
            return
        token = uuid.uuid4().hex[:12]  # fresh keys: never a cancelled task of an earlier try
        # the data as a task, not scatter(): the scheduler can recompute it if its workers die
        data_fut = self.client.submit(_identity, data, key=f"sweep-data-{token}", pure=False)
        order = list(chunks)
        per = self.batch_size(len(order), max(len(points) for points in chunks.values()))
        batches = {
            f"sweep-{token}-chunk-{group[0]:05d}-{len(group)}": group
            for group in (order[k : k + per] for k in range(0, len(order), per))
        }
        futures = [
            self.client.submit(
                _run_batch,
                fn,
                spec,
                _Batch([(i, chunks[i]) for i in group]),
                data_fut,
                key=key,
                pure=False,
            )
            for key, group in batches.items()
        ]
        try:
            for fut in as_completed(futures):
                try:
                    results = fut.result()
                except CancelledError:
                    raise SweepInterrupted(
                        f"sweep chunks {batches[fut.key]} were cancelled on the Dask cluster "
                        f"({self.client.scheduler.address}: restarted or lost); the finished "
                        "chunks are checkpointed, rerun the sweep to resume"
                    ) from None
                fut.release()
                yield from results
        finally:
            self.client.cancel(futures + [data_fut])

    def close(self) -> None:
        for thing in self._owned:
            thing.close()
        self._owned = []


def open_engine(
    workers: int = 2,
    environ: Mapping[str, str] | None = None,
    timeout: float = CONNECT_TIMEOUT,
) -> SweepEngine:
    """The engine the environment asks for; use it as a context manager (it may own a cluster)."""
    config = engine_config(environ)
    if config.name == "local":
        return LocalEngine(workers)
    if config.scheduler is None:
        return DaskEngine.local_cluster(workers)
    return DaskEngine.connect(config.scheduler, timeout)
