"""A dispatcher process for the crash tests: ``python -m tests.signals.outbox_child HOME URL``.

Delivers the home's outbox through :class:`~tests.signals.outbox_fixtures.HttpSender` to the
sink at URL (or, with ``telegram:<token>:<scale>`` as the third argument, through the real
``TelegramSender`` to the Bot API fake at URL) until nothing is due, then exits 0;
``ALPACA_IMPROVED_SIGNALS_KILL_AT`` makes the dispatcher SIGKILL itself at an injected point,
and the tests also kill it at random times.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from signals.db import make_engine
from signals.dispatcher import Dispatcher
from tests.signals.outbox_fixtures import HttpSender


async def main(home: Path, url: str, mode: str) -> None:
    engine = make_engine(home, environ={})
    if mode.startswith("telegram:"):
        from telegram import Bot
        from telegram.request import HTTPXRequest

        from signals.telegram.sender import TelegramSender

        token, _, scale = mode.removeprefix("telegram:").rpartition(":")
        async with Bot(token, base_url=url, request=HTTPXRequest(connection_pool_size=32)) as bot:
            sender = TelegramSender(bot, limits_scale=float(scale))
            dispatcher = Dispatcher(engine, [sender], poll=0.02, batch=32)
            await dispatcher.run_until_idle(settle=3.0)
    else:
        http = HttpSender(url, rate=int(mode or 200))
        dispatcher = Dispatcher(engine, [http], poll=0.02, batch=32)
        await dispatcher.run_until_idle(settle=3.0)
        await http.client.aclose()
    print(dispatcher.stats, flush=True)


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else ""))
