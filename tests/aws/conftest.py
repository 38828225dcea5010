"""moto's server and its three-account organization, shared with the respond and posture tests
(``tests/respond/respond_env.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "respond"))

from respond_env import aws, calls, moto_url, org  # noqa: E402, F401
