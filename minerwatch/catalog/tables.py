"""The table catalogue: Devo table names, their flat columns and the column types.

A canonical record (``minerwatch.sources.records.Record``) carries ``flat`` (these columns, typed as declared)
and ``doc`` (the whole record as a JSON object). A query path whose single segment names a flat column reads
the flat column; any other path reads ``doc`` (case-insensitive per segment).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ColType(StrEnum):
    STRING = "string"
    DOUBLE = "double"
    BIGINT = "bigint"
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"  # timezone-aware UTC datetime in Python, TIMESTAMP (UTC, naive) in SQL


@dataclass(frozen=True)
class Table:
    name: str
    columns: dict[str, ColType]
    """Flat columns, lower-case names, in output order."""
    time_column: str = "eventdate"
    order_column: str = "id"
    """Tie-breaker after ``time_column`` for a total order of rows."""

    def column(self, name: str) -> ColType | None:
        return self.columns.get(name.lower())


GUARDDUTY = Table(
    name="cloud.aws.guardduty",
    columns={
        "eventdate": ColType.TIMESTAMP,  # updatedAt, else createdAt
        "accountid": ColType.STRING,
        "region": ColType.STRING,
        "type": ColType.STRING,
        "title": ColType.STRING,
        "description": ColType.STRING,
        "severity": ColType.DOUBLE,
        "id": ColType.STRING,
        "arn": ColType.STRING,
    },
)

_S = ColType.STRING
_B = ColType.BIGINT

CLOUDTRAIL = Table(
    name="cloud.aws.cloudtrail",
    columns={
        "eventdate": ColType.TIMESTAMP,  # eventTime
        "eventname": _S,
        "eventsource": _S,
        "eventtype": _S,  # AwsApiCall, AwsConsoleSignIn, AwsServiceEvent ...
        "accountid": _S,  # recipientAccountId, else userIdentity.accountId
        "region": _S,  # awsRegion
        "sourceip": _S,  # sourceIPAddress
        "useragent": _S,
        "principal_arn": _S,  # userIdentity.arn (the session ARN for an assumed role)
        "principal_type": _S,  # userIdentity.type
        "access_key_id": _S,  # userIdentity.accessKeyId
        "errorcode": _S,
        "eventid": _S,  # eventID
        "readonly": ColType.BOOLEAN,
        "mfa": ColType.BOOLEAN,  # null when the record says nothing about MFA
    },
    order_column="eventid",
)

# Every field AWS documents for VPC flow logs (versions 2-8) and transit gateway flow logs, by its snake_case
# name; the numeric ones are integers. A header may name fields outside this list: they stay in the document.
_VPCFLOW_FIELDS: dict[str, ColType] = {
    "version": _B,
    "account_id": _S,
    "interface_id": _S,
    "srcaddr": _S,
    "dstaddr": _S,
    "srcport": _B,
    "dstport": _B,
    "protocol": _B,
    "packets": _B,
    "bytes": _B,
    "start": _B,  # Unix seconds
    "end": _B,
    "action": _S,
    "log_status": _S,
    "vpc_id": _S,
    "subnet_id": _S,
    "instance_id": _S,
    "tcp_flags": _B,
    "type": _S,
    "pkt_srcaddr": _S,
    "pkt_dstaddr": _S,
    "region": _S,
    "az_id": _S,
    "sublocation_type": _S,
    "sublocation_id": _S,
    "pkt_src_aws_service": _S,
    "pkt_dst_aws_service": _S,
    "flow_direction": _S,
    "traffic_path": _B,
    "ecs_cluster_arn": _S,
    "ecs_cluster_name": _S,
    "ecs_container_instance_arn": _S,
    "ecs_container_instance_id": _S,
    "ecs_container_id": _S,
    "ecs_second_container_id": _S,
    "ecs_service_name": _S,
    "ecs_task_definition_arn": _S,
    "ecs_task_arn": _S,
    "ecs_task_id": _S,
    "reject_reason": _S,
    "resource_id": _S,
    "resource_type": _S,
    "tgw_id": _S,
    "tgw_attachment_id": _S,
    "tgw_src_vpc_account_id": _S,
    "tgw_dst_vpc_account_id": _S,
    "tgw_src_vpc_id": _S,
    "tgw_dst_vpc_id": _S,
    "tgw_src_subnet_id": _S,
    "tgw_dst_subnet_id": _S,
    "tgw_src_eni": _S,
    "tgw_dst_eni": _S,
    "tgw_src_az_id": _S,
    "tgw_dst_az_id": _S,
    "tgw_pair_attachment_id": _S,
    "packets_lost_no_route": _B,
    "packets_lost_blackhole": _B,
    "packets_lost_mtu_exceeded": _B,
    "packets_lost_ttl_expired": _B,
}

VPCFLOW = Table(
    name="cloud.aws.vpcflow",
    columns={
        "eventdate": ColType.TIMESTAMP,  # start (else end), Unix seconds, as UTC
        "accountid": _S,  # account-id
        "nodata": ColType.BOOLEAN,  # log-status NODATA or SKIPDATA: no traffic recorded in this row
        **_VPCFLOW_FIELDS,
    },
    order_column="interface_id",  # flow records carry no unique id: a partial tie-breaker
)

ROUTE53RESOLVER = Table(
    name="cloud.aws.route53resolver",
    columns={
        "eventdate": ColType.TIMESTAMP,  # query_timestamp
        "accountid": _S,  # account_id
        "region": _S,
        "vpc_id": _S,
        "query_name": _S,  # lower case, trailing dot removed
        "query_name_raw": _S,  # as logged
        "query_type": _S,
        "query_class": _S,
        "rcode": _S,
        "srcaddr": _S,
        "srcport": _B,
        "transport": _S,
        "instance_id": _S,  # srcids.instance
        "resolver_endpoint_id": _S,  # srcids.resolver_endpoint
        "firewall_rule_action": _S,
    },
    order_column="query_name",  # query logs carry no unique id: a partial tie-breaker
)

TABLES: dict[str, Table] = {t.name: t for t in (GUARDDUTY, CLOUDTRAIL, VPCFLOW, ROUTE53RESOLVER)}


def get_table(name: str) -> Table | None:
    return TABLES.get(name.lower())
