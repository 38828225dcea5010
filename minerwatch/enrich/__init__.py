"""Enrichment: everything that adds context to an alert once it exists.

In the layering (catalog → rules → lang → compile → sources → engine → alerting → enrich → cli) this stage comes
after alerting: it may read rules, sources and alerts, and nothing before it imports from here. A failing
enrichment degrades an alert, it never drops it.

Modules:

``iocs``
    indicator sets (mining-pool domains, IPs/CIDRs, stratum ports) built from a rule, the bundled domain list
    and IOC files, with fast exact matching for hunting and triage.
"""
