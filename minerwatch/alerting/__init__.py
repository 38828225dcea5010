"""Allowlists, event-time throttling, alert records, the SQLite state store and outputs."""
