"""A real S3-compatible server for the test session: ``moto_server`` on a free 127.0.0.1 port.

moto[server] is the only S3 server installable here (no MinIO server package, no Docker). One
server per test session (each pytest-xdist worker starts its own); ``s3_lake`` gives a test a
fresh bucket and the environment that points the lake at it (``ALPACA_IMPROVED_LAKE_URI``,
``AWS_*``, ``AWS_ENDPOINT_URL``). moto accepts any credentials unless told otherwise, so the
wrong-credentials tests switch its IAM checks on for their own bucket's requests only.

Registered once through ``pytest_plugins`` in ``tests/conftest.py``. The benchmark starts a
server with ``S3Server.start`` directly.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

KEY, SECRET = "testing-key", "testing-secret"  # moto's accepted-anything test credentials


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class S3Server:
    """A running ``moto_server``; ``stop()`` ends it (its objects live in its memory)."""

    proc: subprocess.Popen[bytes]
    port: int
    cache: Path  # the lake cache of this server's readers (ALPACA_IMPROVED_LAKE_CACHE)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @classmethod
    def start(cls, timeout: float = 30.0) -> S3Server:
        exe = shutil.which("moto_server") or str(Path(sys.executable).parent / "moto_server")
        port = free_port()
        proc = subprocess.Popen(
            [exe, "-H", "127.0.0.1", "-p", str(port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        server = cls(proc, port, Path(tempfile.mkdtemp(prefix="lake-cache-")))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                server.stop()
                raise RuntimeError(f"moto_server exited with {proc.returncode} on port {port}")
            try:
                urllib.request.urlopen(f"{server.endpoint}/moto-api/", timeout=1).close()
                return server
            except OSError:
                time.sleep(0.1)
        server.stop()
        raise RuntimeError(f"moto_server did not answer on {server.endpoint} in {timeout} s")

    def stop(self) -> None:
        shutil.rmtree(self.cache, ignore_errors=True)
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def env(self, uri: str) -> dict[str, str]:
        """The environment that points the lake at ``uri`` on this server."""
        return {
            "ALPACA_IMPROVED_LAKE_URI": uri,
            "AWS_ACCESS_KEY_ID": KEY,
            "AWS_SECRET_ACCESS_KEY": SECRET,
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": self.endpoint,
            "ALPACA_IMPROVED_LAKE_CACHE": str(self.cache),
        }

    def client(self) -> object:
        import boto3

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=KEY,
            aws_secret_access_key=SECRET,
        )

    def bucket(self, name: str | None = None) -> str:
        """Create a fresh bucket (a unique name unless given) and return its name."""
        name = name or f"lake-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)  # type: ignore[attr-defined]
        return name


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One moto S3 server for the session."""
    server = S3Server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_lake(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A fresh bucket with the lake pointed at ``s3://<bucket>/lake`` (the URI is yielded)."""
    uri = f"s3://{s3_server.bucket()}/lake"
    for key, value in s3_server.env(uri).items():
        monkeypatch.setenv(key, value)
    for key in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_REGION"):
        monkeypatch.delenv(key, raising=False)
    yield uri
    os.environ.pop("ALPACA_IMPROVED_LAKE_URI", None)
