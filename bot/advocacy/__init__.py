"""Advocacy: shoppers who bring friends (referral codes, links, friend offers, fraud rules, merchant decisions)."""
