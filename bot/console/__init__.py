"""The merchant console: accounts and sign-in (accounts.py), the web pages (web.py and the page modules)."""
