"""Notification settings from ``minerwatch.yaml``: destinations, routing, retry policy, secret references.

```yaml
retry: {max_attempts: 8, base_delay: 2s, max_delay: 5m, jitter: full}
console_url: "https://minerwatch.example.com/alerts/{alert_id}"    # optional link in messages
destinations:
  - name: secops-slack
    type: slack
    url_env: SLACK_WEBHOOK_URL             # secrets: *_env (environment variable) or *_file (a file), never inline
    route: {severities: [critical, high]}
  - name: oncall
    type: pagerduty
    routing_key_file: /run/secrets/pd_routing_key
    route: {priorities: [P1]}
```

Other top-level keys of the file belong to other parts of MinerWatch and are left alone. The config holds only the
*names* of environment variables and files, never secret values: a secret is read when a message is sent, so
``repr``, logs and error messages of the config cannot leak it.
"""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from minerwatch.durations import parse_duration
from minerwatch.errors import ConfigError
from minerwatch.notify import CONFIG_ENV, DEFAULT_CONFIG, find_config  # noqa: F401 (importable from here too)
from minerwatch.rules.model import SEVERITIES, Severity
from minerwatch.yamlfile import parse_yaml


def _duration(value: Any) -> Any:
    """``30``, ``2.5``, ``"30s"``, ``"5m"``, ``"1h"`` → seconds."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a text like 30s, 5m, 1h")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        seconds = parse_duration(value, default_unit="s")
        if seconds is not None:
            return seconds
    raise ValueError(f"not a duration: {value!r} (use seconds, or 500ms, 30s, 5m, 1h, 1d)")


Seconds = Annotated[float, BeforeValidator(_duration), Field(ge=0)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class SecretError(Exception):
    """A secret reference cannot be resolved (the message names the variable or file, never a value)."""


class SecretRef(_Model):
    """Where a secret comes from: an environment variable or a file. Holds no secret value."""

    env: str | None = None
    file: str | None = None

    def resolve(self) -> str:
        if self.env:
            value = os.environ.get(self.env)
            if not value:
                raise SecretError(f"environment variable {self.env} is not set")
            return value.strip()
        if self.file:
            try:
                value = Path(self.file).read_text(encoding="utf-8").strip()
            except (OSError, UnicodeDecodeError) as exc:
                raise SecretError(f"cannot read secret file {self.file}: {exc.__class__.__name__}") from None
            if not value:
                raise SecretError(f"secret file {self.file} is empty")
            return value
        raise SecretError("no secret configured")


class RetryPolicy(_Model):
    """Exponential backoff: attempt n waits up to min(max_delay, base_delay · 2^(n-1)); ``full`` jitter draws
    uniformly below that, ``equal`` between half and all of it, ``none`` waits exactly that."""

    max_attempts: int = Field(8, ge=1, le=100)
    base_delay: Seconds = 2.0
    max_delay: Seconds = 300.0
    jitter: Literal["full", "equal", "none"] = "full"

    def delay(self, attempts: int, rand: float) -> float:
        """Seconds to wait after ``attempts`` failed attempts; ``rand`` is uniform in [0, 1)."""
        cap = min(self.max_delay, self.base_delay * (2 ** max(0, attempts - 1)))
        if self.jitter == "full":
            return cap * rand
        if self.jitter == "equal":
            return cap / 2 + cap / 2 * rand
        return cap


class Route(_Model):
    """Which alerts a destination gets. Each given list must match; an empty list matches everything."""

    severities: list[Severity] = Field(default_factory=list)
    min_severity: Severity | None = None
    priorities: list[str] = Field(default_factory=list)
    rules: list[str] = Field(default_factory=list)
    """Rule ids; shell-style patterns such as ``aws-guardduty-*`` are accepted."""

    def matches(self, record: dict[str, Any]) -> bool:
        severity = str(record.get("severity") or "").lower()
        if self.severities and severity not in self.severities:
            return False
        if self.min_severity is not None:
            rank = SEVERITIES.index(severity) if severity in SEVERITIES else -1  # type: ignore[arg-type]
            if rank < SEVERITIES.index(self.min_severity):
                return False
        priority = str(record.get("priority") or "")
        if self.priorities and priority.upper() not in {p.upper() for p in self.priorities}:
            return False
        rule_id = str(record.get("rule_id") or "")
        return not self.rules or any(fnmatch.fnmatchcase(rule_id, pattern) for pattern in self.rules)


_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class DestinationConfig(_Model):
    name: str = Field(pattern=_NAME)
    route: Route = Field(default_factory=Route)
    enabled: bool = True
    timeout: Seconds = 10.0
    retry: RetryPolicy | None = None
    """Overrides the top-level retry policy for this destination."""
    updates: bool = False
    """Send something when an already notified alert gets more events."""
    status_changes: bool = False
    """Send something when an alert is acknowledged or closed."""

    SECRETS: ClassVar[dict[str, tuple[str, bool]]] = {}
    """YAML name → (model field, required). ``<name>_env`` / ``<name>_file`` become a ``SecretRef``."""
    INLINE_OK: ClassVar[frozenset[str]] = frozenset()
    """YAML names whose value may also be written inline (then it is not treated as a secret)."""

    @model_validator(mode="before")
    @classmethod
    def _secret_refs(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        data = dict(data)
        for name, (target, required) in cls.SECRETS.items():
            if isinstance(data.get(target), SecretRef):
                continue
            env, file = data.pop(f"{name}_env", None), data.pop(f"{name}_file", None)
            inline = data.get(name) is not None and name in cls.INLINE_OK
            if data.get(name) is not None and not inline:
                raise ValueError(f"'{name}' is a secret: use {name}_env or {name}_file, never the value itself")
            if sum(x is not None for x in (env, file)) + inline > 1:
                raise ValueError(f"give only one of {name}, {name}_env, {name}_file")
            if env is None and file is None:
                if required and not inline:
                    raise ValueError(f"{name}_env or {name}_file is required")
                continue
            data[target] = SecretRef(
                env=str(env) if env is not None else None, file=str(file) if file is not None else None
            )
        return data


class SlackDestination(DestinationConfig):
    """Slack incoming webhook. The webhook URL is itself the secret."""

    type: Literal["slack"]
    url: SecretRef
    max_actions: int = Field(3, ge=0, le=10)
    max_evidence: int = Field(5, ge=1, le=10)
    SECRETS: ClassVar[dict[str, tuple[str, bool]]] = {"url": ("url", True)}


class WebhookDestination(DestinationConfig):
    """Generic HTTPS webhook: POST the alert record, signed with HMAC-SHA256."""

    type: Literal["webhook"]
    url: str | None = None
    """A URL without secrets in it may be written inline; otherwise use url_env / url_file."""
    url_ref: SecretRef | None = None
    secret: SecretRef
    signature_header: str = "X-MinerWatch-Signature"
    headers: dict[str, str] = Field(default_factory=dict)
    verify_tls: bool = True
    updates: bool = True
    status_changes: bool = True
    SECRETS: ClassVar[dict[str, tuple[str, bool]]] = {"url": ("url_ref", True), "secret": ("secret", True)}
    INLINE_OK: ClassVar[frozenset[str]] = frozenset({"url"})

    def resolve_url(self) -> str:
        return self.url_ref.resolve() if self.url_ref is not None else str(self.url)


PD_SEVERITY = {"critical": "critical", "high": "error", "medium": "warning", "low": "info", "informational": "info"}
PD_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class PagerDutyDestination(DestinationConfig):
    """PagerDuty Events API v2: trigger, re-trigger with the same dedup_key, acknowledge, resolve."""

    type: Literal["pagerduty"]
    routing_key: SecretRef
    url: str = PD_EVENTS_URL
    severity_map: dict[str, Literal["critical", "error", "warning", "info"]] = Field(
        default_factory=lambda: dict(PD_SEVERITY)
    )
    source: str | None = None
    """payload.source; default: the alert's instance id, else its account."""
    updates: bool = True
    status_changes: bool = True

    SECRETS: ClassVar[dict[str, tuple[str, bool]]] = {"routing_key": ("routing_key", True)}


class SnsDestination(DestinationConfig):
    """Amazon SNS through boto3 (credentials from the usual AWS chain, never from this file)."""

    type: Literal["sns"]
    topic_arn: str = Field(pattern=r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}(\.fifo)?$")
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    message_group_id: str = "minerwatch"
    """FIFO topics only."""
    format: Literal["json", "text"] = "json"

    @property
    def fifo(self) -> bool:
        return self.topic_arn.endswith(".fifo")

    @property
    def region_name(self) -> str:
        return self.region or self.topic_arn.split(":")[3]


class SecurityHubDestination(DestinationConfig):
    """AWS Security Hub through boto3: each alert is an ASFF finding (``BatchImportFindings``), its workflow status
    follows acknowledge / close (``BatchUpdateFindings``). Credentials from the usual AWS chain."""

    type: Literal["securityhub"]
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None
    product_arn: str | None = Field(None, pattern=r"^arn:aws[a-z-]*:securityhub:[a-z0-9-]+:\d{12}:product/.+$")
    """Default: the account's own product, ``arn:aws:securityhub:<region>:<account>:product/<account>/default``."""
    batch_size: int = Field(100, ge=1, le=100)
    """Findings per ``BatchImportFindings`` call (100 at most)."""
    updates: bool = True
    status_changes: bool = True


class EmailDestination(DestinationConfig):
    """Plain-text email over SMTP."""

    type: Literal["email"]
    host: str
    port: int | None = None
    security: Literal["starttls", "ssl", "none"] = "starttls"
    username: str | None = None
    password: SecretRef | None = None
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)
    subject_prefix: str = "[MinerWatch]"

    SECRETS: ClassVar[dict[str, tuple[str, bool]]] = {"password": ("password", False)}

    @model_validator(mode="after")
    def _login(self) -> EmailDestination:
        if self.username and self.password is None:
            raise ValueError("'username' needs password_env or password_file")
        return self

    @property
    def smtp_port(self) -> int:
        return self.port or {"ssl": 465, "starttls": 587, "none": 25}[self.security]


Destination = Annotated[
    SlackDestination
    | WebhookDestination
    | PagerDutyDestination
    | SnsDestination
    | EmailDestination
    | SecurityHubDestination,
    Field(discriminator="type"),
]


class NotifyConfig(_Model):
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    destinations: list[Destination] = Field(default_factory=list)
    console_url: str | None = None
    """Link template for an alert in messages, with ``{alert_id}``."""
    rule_paths: list[str] = Field(default_factory=list)
    """Extra rule documents or folders, used to show their recommended actions; shipped rules are always known."""
    path: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _unique_names(self) -> NotifyConfig:
        seen: set[str] = set()
        for d in self.destinations:
            if d.name in seen:
                raise ValueError(f"destination name {d.name!r} is used twice")
            seen.add(d.name)
        return self

    def destination(self, name: str) -> DestinationConfig | None:
        return next((d for d in self.destinations if d.name == name), None)

    def retry_for(self, dest: DestinationConfig) -> RetryPolicy:
        return dest.retry or self.retry

    def alert_link(self, alert_id: str) -> str | None:
        return self.console_url.replace("{alert_id}", alert_id) if self.console_url else None


AnyDestination = (
    SlackDestination | WebhookDestination | PagerDutyDestination | SnsDestination | EmailDestination
    | SecurityHubDestination
)
NOTIFY_KEYS = ("retry", "destinations", "console_url", "rule_paths")


def redact_url(url: str) -> str:
    """``scheme://host[:port]/…``: webhook paths and queries carry tokens, user info carries passwords."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<url>"
    tail = "/…" if (parts.path not in ("", "/") or parts.query) else ""
    return f"{parts.scheme or '?'}://{host}{port}{tail}"


def _secret_pieces(secret: str) -> list[str]:
    """A secret and, for a URL, the parts of it a server might echo back (path, query, each query value, long path
    segments, user name and password), each also as the server may have decoded it."""
    pieces = [secret]
    if "://" in secret:
        try:
            parts = urlsplit(secret)
            username, password = parts.username, parts.password
        except ValueError:
            return pieces
        pieces += [parts.path + ("?" + parts.query if parts.query else ""), parts.path, parts.query, parts.fragment]
        pieces += [seg for seg in parts.path.split("/") if len(seg) >= 8]
        pieces += [value for _, value in parse_qsl(parts.query, keep_blank_values=True)]
        pieces += [raw.partition("=")[2] for raw in parts.query.split("&")]
        pieces += [p for p in (username, password) if p]
        if "@" in parts.netloc:
            pieces.append(parts.netloc.rpartition("@")[0])  # user:password as written
    pieces += [unquote(p) for p in pieces] + [quote(p, safe="") for p in pieces]
    return [p for p in dict.fromkeys(pieces) if len(p) >= 4 and p != "/"]


def scrub(text: str, secrets: list[str]) -> str:
    """Replace every known secret value — and the path, query and long segments of a secret URL — in ``text``."""
    for secret in secrets:
        if not secret:
            continue
        for piece in sorted(_secret_pieces(secret), key=len, reverse=True):
            if piece in text:
                text = text.replace(piece, redact_url(piece) if piece == secret and "://" in piece else "***")
    return text


# -- loading ------------------------------------------------------------------------------------------


def _key_node(node: yaml.Node | None, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value in (key, f"{key}_env", f"{key}_file"):
                return v
    return None


def _node_at(root: yaml.Node | None, loc: tuple[Any, ...]) -> yaml.Node | None:
    node = root
    for part in loc:
        if isinstance(node, yaml.MappingNode):
            nxt = _key_node(node, str(part))
            if nxt is not None:
                node = nxt
            # else: a discriminator tag ("slack") or a validator name, not a YAML key
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and 0 <= part < len(node.value):
            node = node.value[part]
    return node


def _error_message(err: dict[str, Any]) -> str:
    tags = {"slack", "webhook", "pagerduty", "sns", "email", "securityhub"}
    loc = [str(p) for p in err.get("loc", ()) if str(p) not in tags]
    where = ".".join(loc)
    msg = str(err.get("msg", "invalid"))
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "extra_forbidden":
        msg = "unknown setting"
    elif err.get("type") == "union_tag_invalid":
        msg = "'type' must be one of slack, webhook, pagerduty, sns, email"
    elif err.get("type") == "union_tag_not_found":
        msg = "each destination needs a 'type': slack, webhook, pagerduty, sns or email"
    return f"{where}: {msg}" if where else msg


def _line(node: yaml.Node | None) -> int | None:
    return node.start_mark.line + 1 if node is not None else None


def _col(node: yaml.Node | None) -> int | None:
    return node.start_mark.column + 1 if node is not None else None


def _check_unique_names(data: dict[str, Any], root: yaml.Node | None, file: str) -> None:
    dests, nodes = data.get("destinations"), _node_at(root, ("destinations",))
    if not isinstance(dests, list) or not isinstance(nodes, yaml.SequenceNode):
        return
    seen: dict[str, int | None] = {}
    for raw, node in zip(dests, nodes.value, strict=False):
        name = raw.get("name") if isinstance(raw, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            raise ConfigError(
                f"destination name {name!r} is used twice (first at line {seen[name]})", file=file, line=_line(node)
            )
        seen[name] = _line(node)


def parse_config(text: str, file: str = "<config>") -> NotifyConfig:
    data, root = parse_yaml(text, file)
    if data is None:
        return NotifyConfig(path=file)
    if not isinstance(data, dict):
        raise ConfigError("minerwatch.yaml is a mapping of settings", file=file, line=1)
    mine = {k: v for k, v in data.items() if k in NOTIFY_KEYS}
    _check_unique_names(mine, root, file)
    try:
        config = NotifyConfig.model_validate(mine)
    except ValidationError as exc:
        err = exc.errors()[0]
        node = _node_at(root, tuple(err.get("loc", ())))
        # A validator's message names the offending key first ('url' is a secret ...): point at that key.
        named = re.match(r"^(?:Value error, )?'?([a-z_]+)'? ", str(err.get("msg", "")))
        if named and (inner := _key_node(node, named.group(1))) is not None:
            node = inner
        raise ConfigError(_error_message(dict(err)), file=file, line=_line(node), col=_col(node)) from None
    return config.model_copy(update={"path": file})


def load_config(path: str | Path) -> NotifyConfig:
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config: {exc.__class__.__name__}: {exc.strerror or exc}", file=file) from None
    return parse_config(text, file)
