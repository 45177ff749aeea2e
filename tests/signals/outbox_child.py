"""A dispatcher process for the crash tests: ``python -m tests.signals.outbox_child HOME URL``.

Delivers the home's outbox through :class:`~tests.signals.outbox_fixtures.HttpSender` to the
sink at URL until nothing is due, then exits 0; ``ALPACA_IMPROVED_SIGNALS_KILL_AT`` makes the
dispatcher SIGKILL itself at an injected point, and the tests also kill it at random times.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from signals.db import make_engine
from signals.dispatcher import Dispatcher
from tests.signals.outbox_fixtures import HttpSender


async def main(home: Path, url: str, rate: int) -> None:
    engine = make_engine(home, environ={})
    sender = HttpSender(url, rate=rate)
    dispatcher = Dispatcher(engine, [sender], poll=0.02, batch=32)
    await dispatcher.run_until_idle(settle=3.0)
    await sender.client.aclose()
    print(dispatcher.stats, flush=True)


if __name__ == "__main__":
    asyncio.run(
        main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 200)
    )
