"""IOC hunting across the fleet: "scan other instances for similar IOCs", "hunt for similar activity across
account".

In the layering (catalog → rules → lang → compile → sources → engine → alerting → enrich → hunt → cli) this
stage comes after enrichment: it uses the IOC sets of :mod:`minerwatch.enrich.iocs`, the readers of
:mod:`minerwatch.sources` and the throttling and state store of :mod:`minerwatch.alerting`.

Modules:

``sweep``
    :func:`hunt` — the whole sweep over flow logs, Resolver query logs and GuardDuty findings, entities built
    at the end.
``flows``
    the flow-log sweep: DuckDB over the files (bulk), the per-record reader (reference and fallback).
``dns``, ``findings``
    the Resolver query and GuardDuty sweeps.
``mapping``
    ENIs and private addresses tied to instances from findings, CloudTrail and Resolver queries.
``model``
    entities, matches and statistics, with their JSON form; ``output`` renders JSON and CSV.
``alerts``
    hunt hits as alerts in the state store, through a hunting rule's throttle.
``rule_tests``
    a hunting rule's fixtures replayed through the hunt and its alerts.
"""

from minerwatch.hunt.model import Entity, HuntResult, HuntStats, Match, SourceStats
from minerwatch.hunt.sweep import HuntOptions, hunt

__all__ = ["Entity", "HuntOptions", "HuntResult", "HuntStats", "Match", "SourceStats", "hunt"]
