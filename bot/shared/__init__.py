"""Helpers every layer may use — domain services, the web app, the console, the CLI, channels and actions:
text (`text.py`), amounts and budgets (`amounts.py`), streaming CSV exports (`csv_stream.py`). This package
imports nothing else of the project (tests/unit/test_import_graph.py holds it to that)."""
