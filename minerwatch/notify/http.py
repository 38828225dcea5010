"""One small HTTP client for the HTTP destinations: timeouts, no redirects, failures sorted into retry or park.

Retried (transient): timeouts, connection errors, 408, 425, 429 and 5xx (``Retry-After`` is honoured).
Parked at once (permanent): other 4xx and redirects — the request itself is wrong, resending will not help.
Error messages name the URL only as ``scheme://host:port/…``: webhook paths and queries carry tokens.
"""

from __future__ import annotations

import email.utils
import logging
import re
import time

import httpx

from minerwatch import __version__
from minerwatch.notify.base import DeliveryError, clean, cut
from minerwatch.notify.config import redact_url

USER_AGENT = f"MinerWatch/{__version__}"


class _RedactUrls(logging.Filter):
    """httpx logs every request with its full URL at INFO; a webhook URL is a secret. Keep the log line, drop
    the secret parts of any URL in it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_url(str(a)) if isinstance(a, httpx.URL) or (isinstance(a, str) and "://" in a) else a
                for a in record.args
            )
        elif isinstance(record.msg, str) and "://" in record.msg:
            record.msg = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), record.msg)
        return True


_URL_IN_TEXT = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s\"'<>]+")
for _name in ("httpx", "httpcore"):
    if not any(isinstance(f, _RedactUrls) for f in logging.getLogger(_name).filters):
        logging.getLogger(_name).addFilter(_RedactUrls())
_TRANSIENT_STATUS = {408, 425, 429}


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HttpClient:
    def __init__(self, timeout: float, verify: bool = True) -> None:
        self.timeout = timeout
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout),
            follow_redirects=False,
            verify=verify,
            headers={"User-Agent": USER_AGENT},
        )

    def post(self, url: str, content: bytes, headers: dict[str, str] | None = None) -> httpx.Response:
        """POST ``content``; return the 2xx response or raise ``DeliveryError``."""
        where = redact_url(url)
        try:
            resp = self._client.post(url, content=content, headers=headers or {})
        except httpx.TimeoutException as exc:
            raise DeliveryError(f"{where}: timed out after {self.timeout:g}s ({exc.__class__.__name__})") from None
        except httpx.TransportError as exc:
            raise DeliveryError(f"{where}: connection failed ({exc.__class__.__name__})") from None
        except httpx.HTTPError as exc:  # invalid URL and friends: the configuration is wrong
            raise DeliveryError(f"{where}: {exc.__class__.__name__}", transient=False) from None
        if 200 <= resp.status_code < 300:
            return resp
        body = cut(clean(resp.text), 200) if resp.content else ""
        message = f"{where}: HTTP {resp.status_code}" + (f": {body}" if body else "")
        if resp.status_code in _TRANSIENT_STATUS or resp.status_code >= 500:
            raise DeliveryError(message, retry_after=_retry_after(resp.headers.get("Retry-After")))
        if 300 <= resp.status_code < 400:
            message += " (redirects are not followed; fix the URL)"
        raise DeliveryError(message, transient=False)

    def close(self) -> None:
        self._client.close()
