"""MLflow artifacts on S3 through the tracking server's proxied artifact store.

A real ``mlflow server --serve-artifacts --artifacts-destination s3://<bucket>/mlflow`` runs as a
subprocess against the moto S3 server (``MLFLOW_S3_ENDPOINT_URL`` and the AWS credentials are the
server's only); our ``Tracker``, pointed at it with ``MLFLOW_TRACKING_URI`` and holding no AWS
variables, logs a table and a text artifact, and they land in the bucket, with nothing written
under the client's data root.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

from alpaca_improved_pipelines.tracking.mlflow_store import RunTags, Tracker
from tests.s3_server import S3Server, free_port

TAGS = RunTags("run-s3", "ma_crossover_sweep", "2024-01-02..2024-01-05")
AWS_VARS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE")


@pytest.fixture
def mlflow_server(s3_server: S3Server, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(tracking URL, bucket) of a proxied-artifact MLflow server writing to moto."""
    bucket = s3_server.bucket()
    port = free_port()
    exe = shutil.which("mlflow") or str(Path(sys.executable).parent / "mlflow")
    env = {
        **os.environ,
        **s3_server.env(f"s3://{bucket}/mlflow"),
        "MLFLOW_S3_ENDPOINT_URL": s3_server.endpoint,
    }
    env.pop("ALPACA_IMPROVED_LAKE_URI", None)
    log = (tmp_path / "mlflow-server.log").open("wb")
    proc = subprocess.Popen(
        [
            exe,
            "server",
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            f"s3://{bucket}/mlflow",
            "--serve-artifacts",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, (tmp_path / "mlflow-server.log").read_text()[-2000:]
            try:
                urllib.request.urlopen(f"{url}/health", timeout=2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "mlflow server did not start in 90 s"
                time.sleep(0.5)
        yield url, bucket
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.slow
def test_tracker_artifacts_land_in_the_bucket_through_the_server(
    mlflow_server: tuple[str, str],
    s3_server: S3Server,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    url, bucket = mlflow_server
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    for var in (*AWS_VARS, "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)  # the client holds no S3 credentials at all
    home = tmp_path / "client-home"
    tracker = Tracker(home)
    assert tracker.uri == url
    run_id = tracker.start_run("ma_crossover", "sweep-s3", "sweep", TAGS)
    frame = pl.DataFrame({"fast": [5, 10], "sharpe_ratio": [0.8, 1.2]})
    tracker.log_frame(run_id, frame, "leaderboard.parquet")
    tracker.log_text(run_id, "fast,slow\n5,20\n", "tables/params.csv")
    tracker.log(run_id, metrics={"n_trials": 2})
    tracker.finish(run_id)

    keys = [
        o["Key"]
        for o in s3_server.client().list_objects_v2(Bucket=bucket).get("Contents", [])  # type: ignore[attr-defined]
    ]
    mine = [k for k in keys if f"/{run_id}/artifacts/" in k]
    assert any(k.endswith("/leaderboard.parquet") for k in mine), keys
    assert any(k.endswith("/tables/params.csv") for k in mine), keys
    assert all(k.startswith("mlflow/") for k in mine)
    body = (
        s3_server.client()
        .get_object(  # type: ignore[attr-defined]
            Bucket=bucket, Key=next(k for k in mine if k.endswith("params.csv"))
        )["Body"]
        .read()
    )
    assert body == b"fast,slow\n5,20\n"
    # the run is readable back through the server, and nothing went to the client's disk
    listed = {f.path for f in tracker.client.list_artifacts(run_id)}
    assert {"leaderboard.parquet", "tables"} <= listed
    assert not (home / "mlartifacts").exists() and not (home / "mlflow.db").exists()
