"""Hosted mode: who may do what, and the defences of a server that strangers can reach.

- :mod:`.users`: accounts and roles (viewer < member < admin) in the store's locked JSON file;
- :mod:`.passwords`: argon2 hashing and the password policy;
- :mod:`.sessions`: sign-in sessions (server-side records, ended at sign-out);
- :mod:`.signin`: the sign-in and sign-out pages (Jinja), Flask-Login on those sessions, Flask-WTF's form tokens;
- :mod:`.throttle`: the sign-in throttle on Flask-Limiter's Redis storage (atomic counts per account and
  address, back-off per account) and the console's query rate;
- :mod:`.checks`: the password checks, queued and bounded per address and machine-wide;
- :mod:`.security`: response headers (CSP, HSTS), the open-mode bind check;
- :mod:`.auth`: the Flask/Dash wiring: sign-in pages, the role each page and callback needs.

Import the module you need (``from app.hosted import auth``).
"""
