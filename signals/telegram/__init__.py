"""Telegram through python-telegram-bot: settings (:mod:`.config`), the dispatcher's sender with
the exactly-once probe (:mod:`.sender`), the bot and its webhook route (:mod:`.bot`,
:mod:`.handlers`) and paid-chat access (:mod:`.access`)."""
