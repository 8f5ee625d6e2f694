"""The store's website widget: config.py, sessions.py (signed sessions), outbound.py (messages, transcript),
inbound.py (the socket.io channel), the browser side in channels/widget_assets/. credentials.yml names
`channels.widget.WidgetInput`; the README's "Channels" section says what it does."""
from channels.widget.config import CHANNEL_NAME, widget_status
from channels.widget.inbound import WidgetInput
from channels.widget.outbound import WidgetOutput

__all__ = ["CHANNEL_NAME", "WidgetInput", "WidgetOutput", "widget_status"]
