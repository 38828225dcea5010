"""Enrichment: everything that adds context to an alert once it exists.

In the layering (catalog → rules → lang → compile → sources → engine → alerting → enrich → cli) this stage comes
after alerting: it may read rules, sources and alerts, and nothing before it imports from here. A failing
enrichment degrades an alert, it never drops it.

Modules:

``iocs``
    indicator sets (mining-pool domains, IPs/CIDRs, stratum ports) built from a rule, the bundled domain list
    and IOC files, with fast exact matching for hunting and triage.
``run``
    ``enrich_alert``: reads each log source once, builds every section in isolation and stores them beside
    the alert with the timeline (``docs/enrichment.md``).
``context``, ``sections``
    what the sections share: the alert's instances, window and facts; the section shape, rejects, reading.
``trail``, ``findings``, ``dns``, ``network``, ``cpu``, ``cost``
    one module per source or section: launch context, principal activity and persistence (CloudTrail);
    other GuardDuty findings; pool lookups; pool flows; sustained CPU; cost impact and Cost Explorer.
``timeline``
    every section's evidence merged in time order.
"""
