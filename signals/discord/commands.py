"""The bot's slash commands, registered on ``DISCORD_GUILD_ID`` by a bulk overwrite.

``PUT /applications/{app}/guilds/{guild}/commands`` replaces the guild's whole command set in one
call, so registering is idempotent and a removed command disappears; guild commands update at
once (global ones can take up to an hour). Run it at start-up (``signals serve``) or by hand.
The console commands are registered with ``default_member_permissions: "0"`` (hidden from members
until a server admin allows them under Server Settings > Integrations); the console still checks
``DISCORD_OPERATOR_IDS`` / the operator role on every call.
"""

from __future__ import annotations

from typing import Any

from signals.discord.rest import DiscordRest

STRING = 3  # application command option type
_PLAN = {"name": "plan", "description": "The plan id (see /plans)", "type": STRING}


def _cmd(
    name: str, description: str, *, plan: bool = False, operator: bool = False
) -> dict[str, Any]:
    cmd: dict[str, Any] = {"name": name, "description": description, "type": 1}
    cmd["contexts"] = [0] if operator else [0, 1]  # guild; and the bot's DMs for subscribers
    if plan:
        cmd["options"] = [{**_PLAN, "required": True}]
    if operator:
        cmd["default_member_permissions"] = "0"
    return cmd


COMMANDS: list[dict[str, Any]] = [
    _cmd("plans", "The plans you can subscribe to"),
    _cmd("subscribe", "Subscribe to a plan (you get a payment link)", plan=True),
    _cmd("status", "Your subscriptions (operators: the trading status)"),
    _cmd("unsubscribe", "Cancel a plan at the end of the paid period", plan=True),
    _cmd("positions", "Operator: open positions", operator=True),
    _cmd("pnl", "Operator: profit and loss", operator=True),
    _cmd("halt", "Operator: halt trading (asks to confirm)", operator=True),
    _cmd("resume", "Operator: resume trading (asks to confirm)", operator=True),
    _cmd("flatten", "Operator: close every position and halt (asks to confirm)", operator=True),
]


async def register_commands(rest: DiscordRest, guild_id: str) -> list[dict[str, Any]]:
    """Bulk-overwrite the guild's commands with :data:`COMMANDS`; Discord's registered list."""
    route = "/applications/{application_id}/guilds/{guild_id}/commands"
    params = {"application_id": rest.application_id, "guild_id": guild_id}
    return await rest.request("PUT", route, params, json=COMMANDS)  # type: ignore[no-any-return]
