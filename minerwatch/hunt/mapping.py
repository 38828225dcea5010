"""Which instance an ENI or a private address belongs to, from the logs a hunt reads.

Flow records of version 3 and later name the instance themselves; the default format (version 2) names only
the ENI, and Resolver queries from outside an instance only an address. The hunt ties them back to instances
with what other records say:

``guardduty``   a finding's ``resource.instanceDetails.networkInterfaces`` (ENI id, private addresses)
``cloudtrail``  ``RunInstances`` responses (each instance's ENIs and private addresses) and
                ``AttachNetworkInterface`` requests
``dns``         a Resolver query's ``srcids.instance`` with its ``srcaddr``

An ENI is tied to an instance only when every record agrees on which; an address only when exactly one
instance of the account used it (addresses are reused, ENI ids are not), and ENIs win over addresses.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class InstanceMap:
    _eni: dict[str, tuple[str, str] | None] = field(default_factory=dict)
    """ENI → (instance, how), or None when records disagree."""
    _ip: dict[tuple[str | None, str], dict[str, str]] = field(default_factory=dict)
    """(account, address) → {instance: how}."""

    def add_eni(self, eni: Any, instance: Any, how: str) -> None:
        if not (isinstance(eni, str) and eni.startswith("eni-") and _is_instance(instance)):
            return
        have = self._eni.get(eni, ())
        if have == ():
            self._eni[eni] = (instance, how)
        elif have is not None and have[0] != instance:
            self._eni[eni] = None

    def add_address(self, account: Any, address: Any, instance: Any, how: str) -> None:
        if not (isinstance(address, str) and address and _is_instance(instance)):
            return
        acct = account if isinstance(account, str) else None
        self._ip.setdefault((acct, address), {}).setdefault(instance, how)

    def for_eni(self, eni: str | None) -> tuple[str, str] | None:
        return self._eni.get(eni) if eni else None

    def for_address(self, account: str | None, address: str | None) -> tuple[str, str] | None:
        if not address:
            return None
        found = self._ip.get((account, address))
        if found is None or len(found) != 1:
            return None
        ((instance, how),) = found.items()
        return instance, how

    def resolve(self, account: str | None, eni: str | None, address: str | None) -> tuple[str, str] | None:
        """(instance, how) for a flow's ENI, else its local address; None when unknown or ambiguous."""
        return self.for_eni(eni) or self.for_address(account, address)

    @property
    def interfaces(self) -> int:
        return sum(1 for v in self._eni.values() if v is not None)

    @property
    def addresses(self) -> int:
        return sum(1 for v in self._ip.values() if len(v) == 1)

    # -- what records say ----------------------------------------------------------------------------------

    def add_finding(self, doc: dict[str, Any]) -> None:
        """A GuardDuty finding's instance and its network interfaces."""
        details = _obj(_obj(doc.get("resource")).get("instanceDetails"))
        instance = details.get("instanceId")
        if not _is_instance(instance):
            return
        account = doc.get("accountId")
        for nic in _objs(details.get("networkInterfaces")):
            self.add_eni(nic.get("networkInterfaceId"), instance, "guardduty")
            for ip in _nic_addresses(nic, "privateIpAddresses"):
                self.add_address(account, ip, instance, "guardduty")

    def add_cloudtrail(self, doc: dict[str, Any], account: str | None) -> None:
        """``RunInstances`` responses and ``AttachNetworkInterface`` requests."""
        name = doc.get("eventName")
        if name == "RunInstances":
            response = _obj(doc.get("responseElements"))
            for inst in _objs(_obj(response.get("instancesSet")).get("items")):
                instance = inst.get("instanceId")
                self.add_address(account, inst.get("privateIpAddress"), instance, "cloudtrail")
                for nic in _objs(_obj(inst.get("networkInterfaceSet")).get("items")):
                    self.add_eni(nic.get("networkInterfaceId"), instance, "cloudtrail")
                    for ip in _nic_addresses(nic, "privateIpAddressesSet"):
                        self.add_address(account, ip, instance, "cloudtrail")
        elif name == "AttachNetworkInterface" and not doc.get("errorCode"):
            request = _obj(doc.get("requestParameters"))
            self.add_eni(request.get("networkInterfaceId"), request.get("instanceId"), "cloudtrail")

    def add_query(self, account: str | None, srcaddr: str | None, instance: str | None) -> None:
        """A Resolver query: its source address belongs to the instance that sent it."""
        self.add_address(account, srcaddr, instance, "dns")


def _is_instance(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("i-")


def _obj(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _objs(value: Any) -> Iterable[dict[str, Any]]:
    if isinstance(value, list):
        return [v for v in value if isinstance(v, dict)]
    return []


def _nic_addresses(nic: dict[str, Any], list_key: str) -> list[str]:
    """The primary private address and the listed ones (GuardDuty: ``privateIpAddresses``; CloudTrail:
    ``privateIpAddressesSet.item``)."""
    out = [nic.get("privateIpAddress")]
    listed = nic.get(list_key)
    if isinstance(listed, dict):
        listed = listed.get("item") or listed.get("items")
    out += [a.get("privateIpAddress") for a in _objs(listed)]
    return [a for a in dict.fromkeys(out) if isinstance(a, str) and a]
