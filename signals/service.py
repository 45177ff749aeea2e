"""``alpaca-improved signals serve``: the whole signals service in one process and one event loop.

What runs (each piece is its own module; this one only wires them from the environment):

- the **journal tailer** (:class:`signals.journal_source.JournalSource`): every second, new
  decisions, orders, fills, risk changes and approvals of the live runner's journal (read-only)
  become events and outbox rows, fanned out to the plans' tiers;
- the **dispatcher** (:class:`signals.dispatcher.Dispatcher`): delivers the outbox exactly once
  within the platforms' rate limits;
- the **bots**: Telegram through python-telegram-bot (long polling, or a webhook at
  ``POST /telegram/webhook`` with the secret token) when ``TELEGRAM_BOT_TOKEN`` is set; Discord's
  interactions endpoint ``POST /discord/interactions`` and its REST client when
  ``DISCORD_APPLICATION_PUBLIC_KEY`` is set; both serve subscribers and the operator console;
- **payments**: Stripe (``STRIPE_API_KEY``; webhooks at ``POST /stripe/webhook``) or the embedded
  local provider (its checkout page at ``/local/checkout/<session>``);
- the **access reconciler**, after every payment event and every ``reconcile_s`` as the net;
- the **dashboard** at ``/dashboard/`` and ``GET /health``.

Trading never waits on any of it: the live runner does not know this process exists.

Exposure: the bot and payment endpoints must be reachable by the platforms (put a TLS reverse
proxy in front); the dashboard shows positions and P&L, so binding anywhere but loopback needs
``ALPACA_IMPROVED_DASHBOARD_USER``/``_PASSWORD`` (refused at start-up otherwise).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import ipaddress
import logging
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route

from signals import outbox as ob
from signals.access import AccessReconciler
from signals.console import OperatorConsole
from signals.dashboard.app import dashboard_app
from signals.dashboard.auth import credentials as dashboard_credentials
from signals.db import make_engine
from signals.dispatcher import Dispatcher
from signals.errors import ConfigError
from signals.interfaces import AccessPlatform, Sender
from signals.journal_source import JournalSource
from signals.payments.base import PaymentProvider
from signals.payments.config import PUBLIC_URL_ENV, make_provider
from signals.payments.local import LocalProvider
from signals.subscriptions import (
    SubscriptionService,
    checkout_routes,
    resolve_plans,
    stripe_webhook_route,
)

log = logging.getLogger("signals.service")

DEFAULT_PORT = 8082


@dataclass
class ServiceOptions:
    """How ``serve`` runs (the CLI's flags)."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    tail_s: float = 1.0  # journal poll interval
    reconcile_s: float = 300.0  # the access reconciler's safety-net period
    telegram_limits_scale: float = 1.0  # >1 only against a local fake (the demo)
    discord_limits_scale: float = 1.0


@dataclass
class SignalsService:
    """Everything ``serve`` runs, built from ``environ`` (see the module docstring)."""

    home: Path
    engine: Engine
    options: ServiceOptions
    environ: Mapping[str, str]
    provider: PaymentProvider
    subscriptions: SubscriptionService
    console: OperatorConsole
    reconciler: AccessReconciler
    source: JournalSource
    senders: list[Sender] = field(default_factory=list)
    platforms: list[AccessPlatform] = field(default_factory=list)
    routes: list[Any] = field(default_factory=list)
    telegram_app: Any = None  # telegram.ext.Application when configured
    telegram_config: Any = None
    discord_rest: Any = None
    discord_guild: str | None = None
    dispatcher: Dispatcher | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    loop: asyncio.AbstractEventLoop | None = None  # the service's loop, once started
    _stop: asyncio.Event | None = None
    _tasks: list[asyncio.Task[Any]] = field(default_factory=list)

    def submit(self, coro: Any, timeout_s: float = 60.0) -> Any:
        """Run ``coro`` on the service's own loop from another thread (the bots' HTTP clients
        belong to that loop) and return its result: the CLI, the demo and tests use it."""
        if self.loop is None:
            raise RuntimeError("the signals service is not running")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout_s)

    @property
    def public_url(self) -> str:
        return (
            self.environ.get(PUBLIC_URL_ENV) or f"http://{self.options.host}:{self.options.port}"
        ).rstrip("/")

    # -- the ASGI app ----------------------------------------------------------------------
    def asgi(self) -> Starlette:
        """The service's Starlette app; its lifespan starts and stops the background work."""
        routes = [Route("/health", self._health), *self.routes]
        routes.extend(checkout_routes(self.subscriptions))  # /checkout/done, the local page
        routes.append(
            Mount("/dashboard", app=dashboard_app(self.home, self.engine, environ=self.environ))
        )
        return Starlette(routes=routes, lifespan=self._lifespan)

    async def _health(self, request: Request) -> Response:
        with self.engine.connect() as conn:
            counts = ob.counts(conn)
        return JSONResponse(
            {
                "ok": True,
                "outbox": counts,
                "channels": sorted(s.channel.value for s in self.senders),
                "provider": self.provider.name,
                "tail": {k: v for k, v in self.stats.items() if k != "error"},
            }
        )

    # -- background work ---------------------------------------------------------------------
    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.start()
        try:
            yield
        finally:
            await self.stop()

    async def start(self) -> None:
        """Start the bots, then the tailer, the dispatcher and the reconciler loops."""
        self._stop = asyncio.Event()
        self.loop = asyncio.get_running_loop()
        if self.telegram_app is not None:
            from signals.telegram.bot import start_bot

            await start_bot(self.telegram_app, self.telegram_config)
        if self.discord_rest is not None and self.discord_guild:
            await self._register_discord_commands()
        self.dispatcher = Dispatcher(self.engine, self.senders)
        self._tasks = [
            asyncio.create_task(self._tail_loop(), name="signals-tail"),
            asyncio.create_task(self.dispatcher.run_forever(self._stop), name="signals-dispatch"),
            asyncio.create_task(
                self.reconciler.run_periodic(
                    self.options.reconcile_s,
                    self._stop,
                    refresh=self.subscriptions.refresh_subscriptions,  # lost webhooks
                ),
                name="signals-reconcile",
            ),
        ]
        log.info(
            "signals service on %s: channels %s, provider %s",
            self.public_url,
            ",".join(s.channel.value for s in self.senders) or "none",
            self.provider.name,
        )

    async def _register_discord_commands(self) -> None:
        """Publish the slash commands on the guild (a bulk overwrite: safe on every start). A
        refused token or a missing permission fails the start-up with one line."""
        from signals.discord.commands import register_commands
        from signals.discord.rest import DiscordHTTPError

        assert self.discord_guild is not None
        try:
            await register_commands(self.discord_rest, self.discord_guild)
        except DiscordHTTPError as err:
            raise ConfigError(
                f"Discord refused the slash-command registration on guild {self.discord_guild} "
                f"({err}); check DISCORD_BOT_TOKEN, DISCORD_APPLICATION_ID and that the bot was "
                "invited with the applications.commands scope"
            ) from None

    async def stop(self) -> None:
        """Stop taking work, let the dispatcher record what is on the wire, close the bots."""
        if self._stop is not None:
            self._stop.set()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await asyncio.wait_for(task, timeout=15)
        if self.dispatcher is not None:
            self.dispatcher.close()
        if self.telegram_app is not None:
            from signals.telegram.bot import stop_bot

            with contextlib.suppress(Exception):
                await stop_bot(self.telegram_app)
        if self.discord_rest is not None:
            await self.discord_rest.aclose()

    async def _tail_loop(self) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                new = await asyncio.to_thread(self.source.poll)
                self.stats["events"] = self.stats.get("events", 0) + new
                self.stats["last_poll"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            except Exception as err:  # a journal being written or moved: try again next tick
                self.stats["error"] = f"{type(err).__name__}: {err}"
                log.warning("journal tail failed: %s: %s", type(err).__name__, err)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), timeout=self.options.tail_s)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _has(env: Mapping[str, str], name: str) -> bool:
    return bool(env.get(name) or env.get(f"{name}_FILE"))


def build_service(
    home: Path, options: ServiceOptions | None = None, environ: Mapping[str, str] | None = None
) -> SignalsService:
    """Wire the service from the environment; every configuration error surfaces here, as one
    :class:`ConfigError` line naming the variable, before anything listens."""
    env = dict(os.environ if environ is None else environ)
    opts = options or ServiceOptions()
    if not _loopback(opts.host) and dashboard_credentials(env) is None:
        raise ConfigError(
            f"--host {opts.host} exposes the dashboard (positions, P&L): set "
            "ALPACA_IMPROVED_DASHBOARD_USER and ALPACA_IMPROVED_DASHBOARD_PASSWORD (or *_FILE), "
            "or bind to 127.0.0.1 behind a proxy that authenticates"
        )
    engine = make_engine(home, env)
    public = (env.get(PUBLIC_URL_ENV) or f"http://{opts.host}:{opts.port}").rstrip("/")
    env.setdefault(PUBLIC_URL_ENV, public)
    provider = make_provider(engine, env)  # Stripe with a key, else the local provider
    console = OperatorConsole(home, engine, environ=env)
    reconciler = AccessReconciler(engine, [])
    # Stripe needs a plans file (its prices); the local provider falls back to the demo's plans
    plans = resolve_plans(home, env, allow_default=isinstance(provider, LocalProvider))
    subs = SubscriptionService(engine, provider, plans, reconciler)
    svc = SignalsService(
        home=home,
        engine=engine,
        options=opts,
        environ=env,
        provider=provider,
        subscriptions=subs,
        console=console,
        reconciler=reconciler,
        source=JournalSource(engine, home),
    )
    if _has(env, "STRIPE_API_KEY"):
        svc.routes.append(stripe_webhook_route(subs))
    if _has(env, "TELEGRAM_BOT_TOKEN"):
        _wire_telegram(svc, env)
    if env.get("DISCORD_APPLICATION_PUBLIC_KEY"):
        _wire_discord(svc, env)
    reconciler.platforms = list(svc.platforms)
    return svc


def _wire_telegram(svc: SignalsService, env: Mapping[str, str]) -> None:
    from signals.telegram.access import TelegramAccess
    from signals.telegram.bot import build_application, webhook_route
    from signals.telegram.config import load_config
    from signals.telegram.sender import TelegramSender

    cfg = load_config(env)
    app = build_application(cfg, svc.subscriptions, svc.console)
    svc.telegram_app, svc.telegram_config = app, cfg
    svc.senders.append(TelegramSender(app.bot, limits_scale=svc.options.telegram_limits_scale))
    svc.platforms.append(TelegramAccess(app.bot, svc.engine))
    if cfg.mode == "webhook":
        assert cfg.webhook_secret is not None
        svc.routes.append(webhook_route(app, cfg.webhook_secret))


def _wire_discord(svc: SignalsService, env: Mapping[str, str]) -> None:
    from signals.discord.access import DiscordAccess
    from signals.discord.config import load_config
    from signals.discord.interactions import discord_routes
    from signals.discord.rest import DiscordRest
    from signals.discord.sender import DiscordSender

    cfg = load_config(env)
    rest = DiscordRest(cfg)
    svc.discord_rest, svc.discord_guild = rest, cfg.guild_id
    svc.senders.append(DiscordSender(rest, limits_scale=svc.options.discord_limits_scale))
    if cfg.guild_id:
        svc.platforms.append(DiscordAccess(rest, cfg.guild_id))
    svc.routes.extend(discord_routes(cfg, svc.subscriptions, svc.console, rest=rest))


def serve(home: Path, options: ServiceOptions, environ: Mapping[str, str] | None = None) -> None:
    """Build the service and run it under uvicorn until SIGINT/SIGTERM."""
    import uvicorn

    svc = build_service(home, options, environ)
    # the dashboard's event streams stay open: give them 3 s at shutdown, not uvicorn's forever
    config = uvicorn.Config(
        svc.asgi(), host=options.host, port=options.port, log_level="warning",
        access_log=False, timeout_graceful_shutdown=3,
    )  # fmt: skip
    print(
        f"signals service: {svc.public_url}  (dashboard {svc.public_url}/dashboard/, "
        f"health {svc.public_url}/health)",
        flush=True,
    )
    uvicorn.Server(config).run()
