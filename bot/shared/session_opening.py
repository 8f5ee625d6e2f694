"""How a channel opens a session with the assistant's greeting (actions/greeting.py): the widget as it opens.
Telegram's /start is already /greet."""

GREETING_MESSAGE = "/greet"
# Metadata of the greeting's trigger: not something the shopper typed (the widget's transcript leaves it out).
SESSION_OPENED = "session_opened"
