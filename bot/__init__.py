"""Rapport core: settings, loyalty store and services, CLI (`python -m bot`)."""
