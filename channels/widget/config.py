"""The website widget's configuration: on when WIDGET_SIGNING_SECRET is set (`widget_status` is the line
`make run` prints), and where its browser files are (widget_assets/, the vendored ones from scripts/setup.sh)."""
from __future__ import annotations

from pathlib import Path

from bot.settings import Settings

CHANNEL_NAME = "widget"
SOCKETIO_PATH = "/socket.io"
ASSETS_DIR = Path(__file__).resolve().parent.parent / "widget_assets"
WIDGET_SCRIPT = ASSETS_DIR / "widget.js"
# Fetched by scripts/setup.sh from the npm registry (git-ignored).
VENDOR_DIR = ASSETS_DIR / "vendor"
SOCKET_IO_CLIENT = VENDOR_DIR / "socket.io.min.js"
RASA_WEBCHAT_BUNDLE = VENDOR_DIR / "rasa-webchat.js"
NOT_CONFIGURED = "the website widget is off: set WIDGET_SIGNING_SECRET to turn it on"
CLIENT_MISSING = "the socket.io client is not installed: run scripts/setup.sh"


def widget_status(settings: Settings) -> str:
    """One line for `make run`: is the widget on, and where is its script."""
    if not settings.widget_signing_secret:
        return "widget: off — set WIDGET_SIGNING_SECRET"
    script = f"http://localhost:{settings.rasa_port}/webhooks/widget/widget.js"
    if not SOCKET_IO_CLIENT.is_file():
        return f"widget: on — script {script} (but {CLIENT_MISSING})"
    return f"widget: on — script {script}"
