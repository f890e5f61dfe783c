"""Server-rendered pages for organisations, served by `commonground serve` beside the API.

See docs/web.md: pages, sessions, CSRF and the security headers.
"""
