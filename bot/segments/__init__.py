"""Segments: saved filters over customers (tier, points and their expiry, recency, frequency, spend, the
repeat-purchase prediction, channels and consent, feedback, referrals, reviews, quiz answers).

conditions.py holds the condition kinds (a registry: one class per kind; add one with @register),
filters.py a filter (conditions ANDed) and its JSON form, facts.py what reason lines are written from,
built_in.py the segments every store starts with, service.py the use cases: `resolve(session, ref)` and
`member_ids(session, filter)` for any caller that acts on a segment (campaigns), `count`, `members`,
saving and listing. Order conditions read customer_order_stats, kept by triggers on orders (migration 0020).
"""
