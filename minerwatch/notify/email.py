"""Plain-text email over SMTP (STARTTLS, implicit TLS, or plain for a local relay).

``Message-ID`` is derived from the idempotency key (``<mw-….v12@domain>``), so a mail system or a reader sees a
duplicate delivery as the same message; ``References`` names the alert so clients thread its mails together.
"""

from __future__ import annotations

import re
import smtplib
import ssl
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

from minerwatch.notify.base import Delivery, DeliveryError, clean, cut, facts, summary_line
from minerwatch.notify.config import EmailDestination, SecretError

SUBJECT_LIMIT = 200


def _domain(sender: str) -> str:
    domain = sender.rsplit("@", 1)[-1].strip(" >") if "@" in sender else "minerwatch.local"
    return re.sub(r"[^A-Za-z0-9.-]", "", domain) or "minerwatch.local"


def message_id(key: str, sender: str) -> str:
    """RFC 5322 ``id-left`` is a dot-atom: ``:`` becomes ``.``."""
    left = re.sub(r"[^A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]", ".", key).strip(".")
    return f"<{left}@{_domain(sender)}>"


def render(
    record: dict[str, Any],
    event: str,
    key: str,
    dest: EmailDestination,
    actions: list[str] | None = None,
    link: str | None = None,
) -> EmailMessage:
    f = facts(record)
    msg = EmailMessage()
    msg["From"] = dest.sender
    msg["To"] = ", ".join(dest.to)
    msg["Subject"] = cut(f"{dest.subject_prefix} {summary_line(f, event)}".strip(), SUBJECT_LIMIT)
    msg["Message-ID"] = message_id(key, dest.sender)
    msg["References"] = message_id(f.alert_id, dest.sender)
    msg["X-MinerWatch-Idempotency-Key"] = key
    lines = [
        summary_line(f, event),
        "",
        f"Severity:    {f.severity} / {f.priority}",
        f"Rule:        {f.rule_name} ({f.rule_id})",
        f"Account:     {f.account}",
        f"Instance:    {f.instance}",
        f"Region:      {f.region}",
        f"First seen:  {f.first_seen}",
        f"Last seen:   {f.last_seen}",
        f"Events:      {f.count}",
        f"Alert:       {f.alert_id} ({f.status})",
    ]
    if link:
        lines.append(f"Link:        {link}")
    if f.title:
        lines += ["", cut(f.title, 1000)]
    if f.description:
        lines += [cut(f.description, 4000)]
    if f.types or f.evidence:
        lines += ["", "Evidence:"]
        lines += [f"  - {cut(t, 300)} x{n}" for t, n in f.types[:10]]
        lines += [f"  - {label}: {cut(value, 500)}" for label, value in f.evidence]
    if actions and event == "trigger":
        lines += ["", "Recommended actions:"] + [f"  {i}. {cut(clean(a), 500)}" for i, a in enumerate(actions[:5], 1)]
    msg.set_content("\n".join(lines) + "\n")
    return msg


class EmailSender:
    def __init__(
        self, dest: EmailDestination, actions: Callable[[str], list[str]], link: Callable[[str], str | None]
    ) -> None:
        self.dest = dest
        self._actions = actions
        self._link = link
        self._secrets: list[str] = []

    def _connect(self) -> smtplib.SMTP:
        d = self.dest
        if d.security == "ssl":
            return smtplib.SMTP_SSL(d.host, d.smtp_port, timeout=d.timeout, context=ssl.create_default_context())
        smtp = smtplib.SMTP(d.host, d.smtp_port, timeout=d.timeout)
        if d.security == "starttls":
            smtp.starttls(context=ssl.create_default_context())
        return smtp

    def send(self, delivery: Delivery) -> None:
        d = self.dest
        password = None
        if d.password is not None:
            try:
                password = d.password.resolve()
            except SecretError as exc:
                raise DeliveryError(f"SMTP password: {exc}", transient=False) from None
            self._secrets = [password]
        msg = render(
            delivery.record,
            delivery.event,
            delivery.key,
            d,
            self._actions(str(delivery.record.get("rule_id"))),
            self._link(delivery.alert_id),
        )
        where = f"smtp://{d.host}:{d.smtp_port}"
        try:
            with self._connect() as smtp:
                if d.username and password is not None:
                    smtp.login(d.username, password)
                # Recipients refused one by one (while others took it) are not retried: that would duplicate it.
                smtp.send_message(msg)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"{where}: login refused ({exc.smtp_code})", transient=False) from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            transient = all(c < 500 for c in codes)
            raise DeliveryError(f"{where}: all recipients refused {codes}", transient=transient) from None
        except smtplib.SMTPResponseException as exc:
            text = exc.smtp_error.decode(errors="replace") if isinstance(exc.smtp_error, bytes) else exc.smtp_error
            message = f"{where}: {exc.smtp_code} {cut(clean(text), 200)}"
            raise DeliveryError(message, transient=exc.smtp_code < 500) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"{where}: {exc}", transient=False) from None
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            raise DeliveryError(f"{where}: {exc.__class__.__name__}") from None

    def secret_values(self) -> list[str]:
        return list(self._secrets)

    def close(self) -> None:
        pass
