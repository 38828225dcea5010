"""Case reports: one alert with its enrichment, timeline, actions taken and open checklist, as JSON, Markdown
or one self-contained HTML file.

In the layering (… → alerting → enrich → respond → report → cli) this stage reads the state store, the
enrichment sections, the response journal and the rule; nothing before it imports from here.

Modules:

``model``      the report as one JSON-ready dict, built from the stores (:func:`build_report`)
``markdown``   the dict as Markdown; every value from findings and logs is a code span
``svg``        the CPU line chart and the timeline as inline SVG, built as XML trees (text escaped)
``html``       the dict as one HTML file: Jinja2 with autoescaping, inline CSS and SVG, no script, no CDN
"""

from minerwatch.report.model import REPORT_VERSION, build_report

__all__ = ["REPORT_VERSION", "build_report"]
