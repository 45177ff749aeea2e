"""JSON log lines with context fields, and secrets redacted whatever slips into a record."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from contracts.logs import REDACTED, configure_logging, log_context, secret_values

SECRET = "sEcReTvAlUe918273"
PASSWORD = "pgPa55w0rdXYZ"
FILE_SECRET = "fIlEsEcReT55443322"


@pytest.fixture
def root_restored() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for h in [h for h in root.handlers if h not in handlers]:
        root.removeHandler(h)
    root.setLevel(level)


def env_with_secrets(tmp_path: Path, fmt: str) -> dict[str, str]:
    (tmp_path / "token").write_text(FILE_SECRET + "\n")
    return {
        "ALPACA_IMPROVED_LOG_FORMAT": fmt,
        "ALPACA_SECRET_KEY": SECRET,
        "ALPACA_IMPROVED_DATABASE_URL": f"postgresql://trader:{PASSWORD}@db:5432/aimp",
        "TELEGRAM_BOT_TOKEN_FILE": str(tmp_path / "token"),
        "ALPACA_FEED": "iex",  # not a secret: never redacted
        "DAGSTER_RUN_ID": "run-123",
    }


def lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_json_lines_carry_context_and_never_a_secret(
    tmp_path: Path, root_restored: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = env_with_secrets(tmp_path, "json")
    monkeypatch.setenv("DAGSTER_RUN_ID", "run-123")
    buf = io.StringIO()
    configure_logging(env=env, stream=buf)
    log = logging.getLogger("live.test")
    with log_context(deployment="dep-a", cycle=7):
        log.warning("keys %s %s %s on iex", SECRET, PASSWORD, FILE_SECRET)
        log.info("order", extra={"client_order_id": "aimp-x", "detail": f"url {PASSWORD}"})
    try:
        raise RuntimeError(f"auth failed for {SECRET}")
    except RuntimeError:
        log.exception("broker")
    first, second, third = lines(buf)
    assert first["message"] == f"keys {REDACTED} {REDACTED} {REDACTED} on iex"
    assert (first["deployment"], first["cycle"], first["run_id"]) == ("dep-a", 7, "run-123")
    assert first["level"] == "WARNING" and first["logger"] == "live.test"
    assert first["time"].endswith("+00:00")
    assert second["client_order_id"] == "aimp-x" and second["detail"] == f"url {REDACTED}"
    assert "deployment" not in third  # the context ended with the block
    assert "auth failed for ***" in third["exc_info"]
    text = buf.getvalue()
    assert not any(s in text for s in (SECRET, PASSWORD, FILE_SECRET))


def test_text_format_is_redacted_too_and_a_bad_format_is_named(
    tmp_path: Path, root_restored: None
) -> None:
    env = env_with_secrets(tmp_path, "text")
    buf = io.StringIO()
    configure_logging(env=env, stream=buf)
    logging.getLogger("x").error("secret=%s", SECRET)
    assert buf.getvalue().rstrip().endswith(f"x: secret={REDACTED}")
    with pytest.raises(ValueError, match="ALPACA_IMPROVED_LOG_FORMAT='yaml'.*text or json"):
        configure_logging(env={"ALPACA_IMPROVED_LOG_FORMAT": "yaml"})


def test_secret_values_pick_secrets_not_settings(tmp_path: Path) -> None:
    found = secret_values(env_with_secrets(tmp_path, "json"))
    assert found == {SECRET, PASSWORD, FILE_SECRET}
    assert secret_values({"ALPACA_API_KEY": "1"}) == set()  # too short to redact safely
