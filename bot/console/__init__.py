"""The merchant console, one package: its app plumbing (app.py: templates, static files, the guard, routes),
what pages share (page.py), one module per page (pages/), merchant accounts and sign-in rules (accounts.py),
the numbers behind the charts (insights.py), SVG charts (charts.py), templates/ and static/."""
