"""Proactive messages, one outbox for all of them: policy.py (quiet hours, the cap per 30 days) and service.py
(enqueue once per occasion, route what is due to the shopper's best chat, the senders' reports, the console's
lists). The web app's scheduler routes; each channel's sender sends (channels/*/outbox.py, notices.py)."""
