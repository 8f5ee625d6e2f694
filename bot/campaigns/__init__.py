"""Campaigns: a message with personal fields and buttons, or a one-question poll, sent to an audience through
the outbox (bot/outbox/) with a stable holdout, and their results against that holdout."""
