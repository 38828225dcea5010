"""Fixtures from ``respond_env`` (moto's server, a launched instance, its alert)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from respond_env import aws, calls, incident, moto_url  # noqa: E402, F401
