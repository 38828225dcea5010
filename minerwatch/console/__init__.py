"""The triage console (``minerwatch serve``): the alert queue, the case page and response approvals in a browser.

It sits above ``alerting``, ``enrich``, ``respond`` and ``report`` and calls them; it holds no copy of their logic.

Modules:

``store``   the console's tables in the state store (users, sessions, comments, approvals …) and the queue query
``auth``    scrypt password hashes, sessions, API tokens, login rate limiting
``case``    actions on a case: status, comments, assignment, false positive → allowlist entry, checklist, response
``views``   what pages show: the case view, rules with lint and fixture results, health
``web``     the FastAPI application: authentication, roles, CSRF, security headers
``pages``   server-rendered HTML pages (Jinja2, autoescaped; one static script, no inline script or style)
``api``     the JSON API under /api/ (OpenAPI at /api/openapi.json)
"""
