"""AWS Security Hub through boto3: every alert is one ASFF finding, imported with ``BatchImportFindings``.

- The finding ``Id`` is the alert id, so every version of an alert (more events, a retry, a rerun) updates one
  finding: imports are idempotent.
- Rows go out in batches of up to 100 findings (the API's limit), one call per batch; ``FailedFindings`` fail only
  their own rows (throttling and internal errors are retried by the outbox, invalid input is parked).
- Acknowledging or closing an alert sets the finding's workflow status (``NOTIFIED`` / ``RESOLVED``) with
  ``BatchUpdateFindings``: Security Hub ignores ``Workflow`` in imports of a finding that exists.
- Each finding is validated against the installed botocore's model of ``BatchImportFindings`` before it is sent;
  one that does not validate is parked with the validator's report, and the others of its batch still go.

The finding is written in the account's default product
(``arn:aws:securityhub:<region>:<account>:product/<account>/default``, the account found with
``sts:GetCallerIdentity``) unless the destination names ``product_arn``. boto3's own retries are off: the outbox
does the retrying, with its backoff.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from minerwatch.notify.base import Delivery, DeliveryError, clean, cut, facts, summary_line
from minerwatch.notify.config import SecurityHubDestination
from minerwatch.notify.sns import aws_client

BATCH_LIMIT = 100
TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 1024
FIELD_LIMIT = 2048
WORKFLOW = {"acknowledged": "NOTIFIED", "closed": "RESOLVED"}
LABELS = {"critical": "CRITICAL", "high": "HIGH", "medium": "MEDIUM", "low": "LOW", "informational": "INFORMATIONAL"}
_TRANSIENT_CODES = {"ThrottlingException", "TooManyRequestsException", "InternalException", "LimitExceededException",
                    "ServiceUnavailable", "RequestTimeout", "InternalServerError"}  # fmt: skip
_ACCOUNT = re.compile(r"[0-9]{12}")
_INSTANCE = re.compile(r"i-[0-9a-f]{8,17}")


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def to_asff(record: dict[str, Any], *, product_arn: str, caller_account: str, region: str, now: datetime) -> dict:
    """One alert record → one ASFF finding (every text value cleaned and cut to Security Hub's limits)."""
    f = facts(record)
    partition = product_arn.split(":")[1] if product_arn.count(":") >= 5 else "aws"
    account = f.account if _ACCOUNT.fullmatch(f.account) else caller_account
    where = f.region if re.fullmatch(r"[a-z]{2}(-[a-z]+)+-[0-9]", f.region) else region
    if _INSTANCE.fullmatch(f.instance):
        resource = {
            "Type": "AwsEc2Instance",
            "Id": f"arn:{partition}:ec2:{where}:{account}:instance/{f.instance}",
            "Partition": partition,
            "Region": where,
        }
    else:
        resource = {"Type": "AwsAccount", "Id": f"AWS::::Account:{account}", "Partition": partition, "Region": where}
    mitre = record.get("mitre") if isinstance(record.get("mitre"), dict) else {}
    techniques = [_technique(t) for t in (mitre.get("techniques") or [])]
    techniques = [t for t in techniques if t]
    types = ["Effects/Resource Consumption"] + [cut(f"TTPs/Impact/{t}", 128) for t in techniques[:20]]
    description = f.description or summary_line(f)
    details = [f"{label}: {value}" for label, value in f.evidence]
    if f.types:
        details.append("finding types: " + ", ".join(f"{t} x{n}" for t, n in f.types[:10]))
    if details:
        description = f"{description} ({'; '.join(details)})"
    product_fields = {
        "minerwatch/AlertId": f.alert_id,
        "minerwatch/RuleId": f.rule_id,
        "minerwatch/Priority": f.priority,
        "minerwatch/Status": f.status or "new",
        "minerwatch/EventCount": str(f.count),
        "minerwatch/FindingIds": ",".join(clean(i) for i in record.get("finding_ids") or []),
    }
    first = f.first_seen or _iso(now)
    finding: dict[str, Any] = {
        "SchemaVersion": "2018-10-08",
        "Id": f.alert_id,
        "ProductArn": product_arn,
        "GeneratorId": cut(f.rule_id or "minerwatch", 512),
        "AwsAccountId": account,
        "Types": types,
        "CreatedAt": first,
        "UpdatedAt": _iso(now),
        "FirstObservedAt": first,
        "LastObservedAt": f.last_seen or first,
        "Severity": {"Label": LABELS.get(f.severity, "INFORMATIONAL"), "Original": cut(f.severity, 64)},
        "Title": cut(summary_line(f), TITLE_LIMIT),
        "Description": cut(description, DESCRIPTION_LIMIT),
        "ProductFields": {k: cut(v, FIELD_LIMIT) for k, v in product_fields.items() if v},
        "Resources": [resource],
        "Workflow": {"Status": WORKFLOW.get(f.status, "NEW")},
        "RecordState": "ACTIVE",
    }
    network = _network(record)
    if network:
        finding["Network"] = network
    return finding


def _technique(value: Any) -> str:
    """``{"id": "T1496", "name": "Resource Hijacking"}`` → ``T1496-Resource Hijacking`` (a Types classifier)."""
    if isinstance(value, dict):
        return clean("-".join(str(value[k]) for k in ("id", "name") if value.get(k)))
    return clean(value)


def _network(record: dict[str, Any]) -> dict[str, Any] | None:
    fields = record.get("fields") if isinstance(record.get("fields"), dict) else {}
    lowered = {str(k).lower(): v for k, v in fields.items()}
    out: dict[str, Any] = {}
    ip = lowered.get("mining_pool_ip")
    try:
        if isinstance(ip, str) and ipaddress.ip_address(ip).version == 4:
            out["DestinationIpV4"] = ip
    except ValueError:
        pass
    port = lowered.get("mining_port")
    if type(port) is int and 0 <= port <= 65535:
        out["DestinationPort"] = port
    if out:
        out["Direction"] = "OUT"
    return out or None


@functools.cache
def _input_shape(operation: str) -> Any:
    import botocore.session

    return botocore.session.get_session().get_service_model("securityhub").operation_model(operation).input_shape


def validate(finding: dict[str, Any]) -> str | None:
    """The botocore validator's report for one finding in ``BatchImportFindings``; None when it is valid."""
    from botocore.validate import ParamValidator

    report = ParamValidator().validate({"Findings": [finding]}, _input_shape("BatchImportFindings"))
    return report.generate_report() if report.has_errors() else None


def _client_error(exc: Any, what: str) -> DeliveryError:
    err = exc.response.get("Error", {})
    code = str(err.get("Code", "?"))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    transient = code in _TRANSIENT_CODES or status >= 500 or status in (0, 429) or "Throttl" in code
    return DeliveryError(f"Security Hub {what} {code}: {cut(clean(err.get('Message')), 200)}", transient=transient)


class SecurityHubSender:
    def __init__(self, dest: SecurityHubDestination, clock: Callable[[], datetime] | None = None) -> None:
        self.dest = dest
        self.batch_size = dest.batch_size
        self.clock = clock or (lambda: datetime.now(UTC))
        self._client: Any = None
        self._product: tuple[str, str] | None = None

    def _session_client(self, service: str) -> Any:
        return aws_client(service, self.dest.profile, self.dest.region, self.dest.endpoint_url, self.dest.timeout)

    def hub(self) -> Any:
        if self._client is None:
            self._client = self._session_client("securityhub")
        return self._client

    def product(self) -> tuple[str, str]:
        """(product ARN, caller account)."""
        if self._product is None:
            region = self.hub().meta.region_name
            arn = self.dest.product_arn
            if arn is None:
                sts = self._session_client("sts")
                try:
                    ident = sts.get_caller_identity()
                finally:
                    sts.close()
                account = ident["Account"]
                partition = ident["Arn"].split(":")[1]
                arn = f"arn:{partition}:securityhub:{region}:{account}:product/{account}/default"
            else:
                account = arn.split(":")[4] or arn.rsplit("/", 2)[-2]
            self._product = (arn, account)
        return self._product

    def send(self, delivery: Delivery) -> None:
        error = self.send_batch([delivery])[0]
        if error is not None:
            raise error

    def send_batch(self, deliveries: Sequence[Delivery]) -> list[DeliveryError | None]:
        """Send up to ``batch_size`` rows in one import; one result per row (None: delivered)."""
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError, ProfileNotFound

        results: list[DeliveryError | None] = [None] * len(deliveries)
        try:
            product_arn, account = self.product()
            region = self.hub().meta.region_name
        except ClientError as exc:
            return [_client_error(exc, "GetCallerIdentity")] * len(deliveries)
        except (NoCredentialsError, ProfileNotFound) as exc:
            return [DeliveryError(f"Security Hub: {exc.__class__.__name__}: no usable AWS credentials",
                                  transient=False)] * len(deliveries)  # fmt: skip
        except BotoCoreError as exc:
            return [DeliveryError(f"Security Hub: {exc.__class__.__name__}")] * len(deliveries)
        now = self.clock()
        batch: list[tuple[int, dict[str, Any]]] = []
        for i, d in enumerate(deliveries):
            finding = to_asff(d.record, product_arn=product_arn, caller_account=account, region=region, now=now)
            report = validate(finding)
            if report is not None:
                results[i] = DeliveryError(f"ASFF finding does not validate: {cut(report, 500)}", transient=False)
            else:
                batch.append((i, finding))
        if not batch:
            return results
        try:
            resp = self.hub().batch_import_findings(Findings=[f for _, f in batch])
        except ClientError as exc:
            error = _client_error(exc, "BatchImportFindings")
            for i, _ in batch:
                results[i] = error
            return results
        except BotoCoreError as exc:
            for i, _ in batch:
                results[i] = DeliveryError(f"Security Hub: {exc.__class__.__name__}")
            return results
        failed = {str(x.get("Id")): x for x in resp.get("FailedFindings") or []}
        status_rows: list[tuple[int, str]] = []
        for i, finding in batch:
            bad = failed.get(finding["Id"])
            if bad is not None:
                code = str(bad.get("ErrorCode", "?"))
                message = f"Security Hub refused the finding: {code}: {cut(clean(bad.get('ErrorMessage')), 200)}"
                results[i] = DeliveryError(message, transient=code in _TRANSIENT_CODES)
            elif deliveries[i].event in ("acknowledge", "resolve"):
                status_rows.append((i, finding["Workflow"]["Status"]))
        for status in sorted({s for _, s in status_rows}):
            rows = [i for i, s in status_rows if s == status]
            for i, error in zip(rows, self._set_workflow([deliveries[i].alert_id for i in rows], status, product_arn),
                                strict=True):  # fmt: skip
                results[i] = error
        return results

    def _set_workflow(self, ids: list[str], status: str, product_arn: str) -> list[DeliveryError | None]:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            resp = self.hub().batch_update_findings(
                FindingIdentifiers=[{"Id": i, "ProductArn": product_arn} for i in ids], Workflow={"Status": status}
            )
        except ClientError as exc:
            return [_client_error(exc, "BatchUpdateFindings")] * len(ids)
        except BotoCoreError as exc:
            return [DeliveryError(f"Security Hub: {exc.__class__.__name__}")] * len(ids)
        failed = {}
        for x in resp.get("UnprocessedFindings") or []:
            ident = x.get("FindingIdentifier") or {}
            failed[str(ident.get("Id"))] = x
        out: list[DeliveryError | None] = []
        for i in ids:
            bad = failed.get(i)
            if bad is None:
                out.append(None)
                continue
            code = str(bad.get("ErrorCode", "?"))
            message = f"workflow status not set: {code}: {cut(clean(bad.get('ErrorMessage')), 200)}"
            out.append(DeliveryError(message, transient=code in _TRANSIENT_CODES))
        return out

    def secret_values(self) -> list[str]:
        return []

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
