"""AWS access for every command that calls AWS: one boto3 session (profile, region, optionally an assumed role)
and clients that honour ``AWS_ENDPOINT_URL``.

An assumed role's credentials are refreshed by botocore before they expire (a new ``AssumeRole`` in the
advisory window before the expiry), so a long ``watch`` keeps reading an account through its role.

Calls go through :meth:`Aws.invoke` by API operation name (``CreateSecurityGroup``), so that every call the tool
makes can be printed, audited and turned into an IAM policy from the same description. Endpoints are left to
botocore, which reads ``AWS_ENDPOINT_URL`` and ``AWS_ENDPOINT_URL_<SERVICE>`` itself; ``endpoint_url`` overrides
both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import boto3
import botocore.exceptions
import botocore.session
from botocore import xform_name
from botocore.config import Config
from botocore.credentials import CredentialProvider, RefreshableCredentials

from minerwatch.errors import MinerWatchError

READ_PREFIXES = ("Describe", "Get", "List", "Head")
"""Operations with these prefixes only read; everything else may change something."""

DEFAULT_REGION = "us-east-1"


def is_read(operation: str) -> bool:
    return operation.startswith(READ_PREFIXES)


class AwsError(MinerWatchError):
    """An AWS call failed (or could not be made): the API's error code, the operation and its request id."""

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        operation: str | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.operation = operation
        self.request_id = request_id

    def format(self) -> str:
        # Not about a file: no "<input>:" location in front.
        return self.message


def request_id(response: dict[str, Any]) -> str | None:
    """The AWS request id of a response (``ResponseMetadata.RequestId``, else the request-id headers)."""
    meta = response.get("ResponseMetadata") or {}
    rid = meta.get("RequestId")
    if rid:
        return str(rid)
    headers = meta.get("HTTPHeaders") or {}
    for name in ("x-amzn-requestid", "x-amz-request-id"):
        if headers.get(name):
            return str(headers[name])
    return None


class _Fixed(CredentialProvider):
    """Hands botocore the refreshing credentials of an assumed role, ahead of every other provider."""

    METHOD = "assume-role"

    def __init__(self, credentials: RefreshableCredentials) -> None:
        super().__init__()
        self._credentials = credentials

    def load(self) -> RefreshableCredentials:
        return self._credentials


def _session_name(actor: str) -> str:
    # RoleSessionName allows [\w+=,.@-], 2 to 64 characters.
    name = "minerwatch-" + re.sub(r"[^\w+=,.@-]", "-", actor or "unknown")
    return name[:64]


@dataclass
class Aws:
    """A boto3 session with the options of the command line; clients are created once per (service, region)."""

    region: str | None = None
    profile: str | None = None
    role_arn: str | None = None
    external_id: str | None = None
    actor: str = "unknown"
    endpoint_url: str | None = None
    session_name: str | None = None
    """RoleSessionName for ``role_arn`` (default: ``minerwatch-<actor>``)."""
    _session: Any = field(default=None, init=False, repr=False)
    _clients: dict[tuple[str, str], Any] = field(default_factory=dict, init=False, repr=False)
    _identity: dict[str, Any] | None = field(default=None, init=False, repr=False)
    assume_request_id: str | None = field(default=None, init=False)

    def _config(self) -> Config:
        return Config(retries={"mode": "standard", "max_attempts": 5}, user_agent_extra="minerwatch")

    @property
    def session(self) -> Any:
        if self._session is None:
            try:
                base = boto3.Session(profile_name=self.profile, region_name=self.region)
            except botocore.exceptions.ProfileNotFound as exc:
                raise AwsError(f"AWS profile not found: {exc}") from None
            self.region = self.region or base.region_name or DEFAULT_REGION
            if self.role_arn:
                session_name = self.session_name or _session_name(self.actor)
                params: dict[str, Any] = {"RoleArn": self.role_arn, "RoleSessionName": session_name}
                if self.external_id:
                    params["ExternalId"] = self.external_id
                sts = base.client("sts", region_name=self.region, endpoint_url=self.endpoint_url, config=self._config())

                def assume() -> dict[str, str]:
                    assumed = call_api(sts, "AssumeRole", params)
                    self.assume_request_id = request_id(assumed)
                    creds = assumed["Credentials"]
                    expiry = creds["Expiration"]
                    return {
                        "access_key": creds["AccessKeyId"],
                        "secret_key": creds["SecretAccessKey"],
                        "token": creds["SessionToken"],
                        "expiry_time": expiry.isoformat() if isinstance(expiry, datetime) else str(expiry),
                    }

                # The first AssumeRole happens here, so that a refusal is raised now; botocore calls `assume`
                # again when the credentials come near their expiry.
                credentials = RefreshableCredentials.create_from_metadata(
                    assume(), refresh_using=assume, method="assume-role"
                )
                core = botocore.session.get_session()
                core.get_component("credential_provider").insert_before("env", _Fixed(credentials))
                base = boto3.Session(botocore_session=core, region_name=self.region)
            self._session = base
        return self._session

    def client(self, service: str, region: str | None = None) -> Any:
        session = self.session
        region = region or self.region or DEFAULT_REGION
        key = (service, region)
        if key not in self._clients:
            self._clients[key] = session.client(
                service, region_name=region, endpoint_url=self.endpoint_url, config=self._config()
            )
        return self._clients[key]

    def invoke(self, service: str, operation: str, params: dict[str, Any], region: str | None = None) -> dict[str, Any]:
        """Call ``operation`` (the API name) of ``service``; raises :class:`AwsError` on any failure."""
        return call_api(self.client(service, region), operation, params)

    def identity(self) -> dict[str, Any]:
        """``sts:GetCallerIdentity`` of the effective credentials (cached)."""
        if self._identity is None:
            self._identity = self.invoke("sts", "GetCallerIdentity", {})
        return self._identity

    @property
    def account_id(self) -> str:
        return str(self.identity().get("Account") or "")


def call_api(client: Any, operation: str, params: dict[str, Any]) -> dict[str, Any]:
    try:
        return dict(getattr(client, xform_name(operation))(**params))
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error") or {}
        raise AwsError(
            f"{operation}: {err.get('Code', 'Error')}: {err.get('Message', str(exc))}",
            code=str(err.get("Code") or "Error"),
            operation=operation,
            request_id=request_id(exc.response),
        ) from None
    except botocore.exceptions.NoCredentialsError:
        raise AwsError(
            f"{operation}: no AWS credentials (set a profile with --profile, or AWS_ACCESS_KEY_ID / "
            "AWS_SECRET_ACCESS_KEY, or run where an instance role is available)",
            code="NoCredentials",
            operation=operation,
        ) from None
    except botocore.exceptions.BotoCoreError as exc:
        raise AwsError(f"{operation}: {exc}", code=type(exc).__name__, operation=operation) from None
