"""Discord without the Gateway: an HTTP interactions endpoint for slash commands and buttons,
REST calls for channel posts, DMs and subscriber roles, paced by Discord's ``X-RateLimit-*``
headers. Tested offline against :mod:`signals.local.discord_server`."""
