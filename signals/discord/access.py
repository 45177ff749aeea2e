"""Discord access for paid plans: a plan's role on ``DISCORD_GUILD_ID`` opens its channels.

Discord channel permissions do the gating (the plan's channel is visible to its role only); the
reconciler only adds or removes the role. Both calls answer 204 whether or not the member had the
role, so :meth:`DiscordAccess.grant` and :meth:`DiscordAccess.revoke` are idempotent by nature;
a revoke for someone who already left the server (404 Unknown Member) is done too. Each change
carries an ``X-Audit-Log-Reason`` naming our subscriber id, so the server's audit log explains it.
Rate limits are waited out (``wait=True``): the reconciler is not latency-bound.
"""

from __future__ import annotations

from signals.discord.rest import DiscordHTTPError, DiscordRest
from signals.errors import ConfigError
from signals.interfaces import AccessGrant
from signals.model import Channel, Plan

UNKNOWN_MEMBER = 10007
ROLE_ROUTE = "/guilds/{guild_id}/members/{user_id}/roles/{role_id}"


class DiscordAccess:
    """:class:`signals.interfaces.AccessPlatform` through guild member roles."""

    platform = Channel.DISCORD

    def __init__(self, rest: DiscordRest, guild_id: str | None) -> None:
        if not guild_id:
            raise ConfigError(
                "set DISCORD_GUILD_ID (the server whose roles open the paid channels; "
                "right-click the server > Copy Server ID)"
            )
        self.rest = rest
        self.guild_id = guild_id

    def _params(self, plan: Plan, user_id: str) -> dict[str, str]:
        if not plan.discord_role_id:
            raise ConfigError(
                f"plan {plan.plan_id!r} has no discord_role_id; add the role's id to the plan "
                "(Server Settings > Roles > right-click > Copy Role ID)"
            )
        return {"guild_id": self.guild_id, "user_id": user_id, "role_id": plan.discord_role_id}

    async def grant(self, plan: Plan, subscriber_id: str, platform_user_id: str) -> AccessGrant:
        reason = f"signals: subscriber {subscriber_id} entitled to plan {plan.plan_id}"
        params = self._params(plan, platform_user_id)
        await self.rest.request("PUT", ROLE_ROUTE, params, reason=reason)
        return AccessGrant()

    async def revoke(self, plan: Plan, subscriber_id: str, platform_user_id: str) -> None:
        reason = f"signals: subscriber {subscriber_id} no longer entitled to plan {plan.plan_id}"
        try:
            params = self._params(plan, platform_user_id)
            await self.rest.request("DELETE", ROLE_ROUTE, params, reason=reason)
        except DiscordHTTPError as e:
            if e.code != UNKNOWN_MEMBER:  # left the server: no role to remove
                raise

    async def is_member(self, plan: Plan, platform_user_id: str) -> bool:
        params = self._params(plan, platform_user_id)
        try:
            member = await self.rest.request("GET", "/guilds/{guild_id}/members/{user_id}", params)
        except DiscordHTTPError as e:
            if e.code == UNKNOWN_MEMBER:
                return False
            raise
        return plan.discord_role_id in {str(x) for x in member.get("roles", [])}
