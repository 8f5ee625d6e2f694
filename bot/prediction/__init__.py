"""Repeat-purchase prediction: each customer's probability of an order in the next 90 days, with reasons.

history.py (orders as numpy arrays), bgnbd.py (the BG/NBD model), model.py (the classifier on top and the
baselines), backtest.py (AUC, Brier, calibration), reasons.py (the merchant's sentence), service.py (the
store: read orders, refit, store and read scores). README "Repeat-purchase prediction" explains the model.
"""
