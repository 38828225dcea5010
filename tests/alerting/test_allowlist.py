from __future__ import annotations

from datetime import UTC, datetime

import pytest

from minerwatch.alerting.allowlist import parse_allowlist
from minerwatch.errors import ConfigError

NOW = datetime(2026, 6, 1, tzinfo=UTC)

DOC = """\
- reason: "Approved blockchain research, TICKET-123"
  expires: 2027-01-01T00:00:00Z
  accountid: "111111111111"
  instance_id: [i-0abc, i-0def]
- reason: dev fleet with documented crypto work
  tags: {Environment: dev, CryptoApproved: "true"}
- reason: old exception
  expires: 2026-01-01T00:00:00Z
  accountid: 222222222222
"""


def test_entries_match_values_lists_and_tags():
    allow = parse_allowlist(DOC, "allow.yaml", NOW)
    assert allow.check({"accountid": "111111111111", "instance_id": "i-0def"}).line == 1
    assert allow.check({"accountid": "111111111111", "instance_id": "i-other"}) is None
    tags = [{"key": "Environment", "value": "dev"}, {"key": "CryptoApproved", "value": "true"}]
    assert allow.check({"accountid": "9", "tags": tags}).reason == "dev fleet with documented crypto work"
    assert allow.check({"accountid": "9", "tags": tags[:1]}) is None  # every listed tag is required


def test_expired_entries_no_longer_apply_and_are_reported():
    allow = parse_allowlist(DOC, "allow.yaml", NOW)
    assert allow.check({"accountid": "222222222222"}) is None  # unquoted YAML number still compares as text
    assert [e.line for e in allow.expired] == [7]


@pytest.mark.parametrize(
    "text, line, fragment",
    [
        ("- accountid: '1'\n", 1, "'reason'"),
        ("- reason: ok\n  accountid: '1'\n- reason: x\n  expires: soon\n  accountid: '2'\n", 3, "ISO 8601"),
        ("- reason: everything\n", 1, "matches everything"),
        ("reason: not a list\n", 1, "YAML list"),
        ("- reason: x\n  accountid: [1\n", 3, "invalid YAML"),
    ],
)
def test_bad_allowlists_name_file_and_line(text, line, fragment):
    with pytest.raises(ConfigError) as info:
        parse_allowlist(text, "allow.yaml", NOW)
    assert info.value.file == "allow.yaml" and info.value.line == line
    assert fragment in info.value.message
