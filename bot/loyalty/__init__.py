"""Loyalty: program configuration, ledger, tiers and the summaries the bot reports."""
