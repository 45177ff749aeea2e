"""Local fakes of the platforms the signals service talks to, used by ``make demo`` and the tests.

Each fake is a real HTTP server on 127.0.0.1 speaking the platform's documented wire protocol
(paths, parameters, result shapes, error bodies, rate limits), so the real client libraries
(python-telegram-bot, the stripe client, plain HTTP) run against it unchanged. Each also has an
in-process, thread-safe control API that plays the other side: users who send commands, press
buttons, join through invite links or block the bot, and faults queued per method.

This is package code rather than test code because the demo runs without ``tests/``.
"""
