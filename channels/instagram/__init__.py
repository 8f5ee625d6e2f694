"""The Instagram DM channel: config.py, state.py, outbound.py (Graph API sender), inbound.py (webhook).
credentials.yml names `channels.instagram.InstagramInput`; the README's "Channels" section says what it does."""
from channels.instagram.config import instagram_status
from channels.instagram.inbound import InstagramInput
from channels.instagram.outbound import InstagramOutput

__all__ = ["InstagramInput", "InstagramOutput", "instagram_status"]
