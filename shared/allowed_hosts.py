"""``global.allowed_hosts``: the only hosts a backup, a restore or a probe may connect to.

An entry is a host name, which matches itself (compared without case or a trailing
dot), or an address or network in CIDR notation (``10.0.0.0/8``, ``fd00::/8``,
``192.0.2.7``). A host not listed by name is resolved when the work starts, and every
address it resolves to must fall in a listed network; a PostgreSQL tool then connects
to the address that was checked (libpq ``hostaddr``), so a DNS answer that changes
between the check and the connection cannot send it elsewhere. No entries: no limit.

Refusals say only that the host is not allowed, whether it failed to resolve or
resolved outside the list, so the check cannot be used to probe the worker's DNS.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass, replace

from shared.engines.base import Target
from shared.engines.options import uri_hosts
from shared.errors import DumpError

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAME = re.compile(r"^[A-Za-z0-9_]([A-Za-z0-9_.-]{0,252})\.?\Z")


class HostNotAllowed(DumpError):
    """A database's host is outside ``global.allowed_hosts`` (or does not resolve)."""

    def __init__(self, host: str) -> None:
        super().__init__(f"host {host!r} is not in global.allowed_hosts")
        self.host = host


def entry_problem(entry: object) -> str | None:
    """Return why ``entry`` cannot be an ``allowed_hosts`` entry, or ``None``."""
    if not isinstance(entry, str) or not entry:
        return "must be a host name, an address or a network (CIDR)"
    if "/" in entry or ":" in entry or entry.replace(".", "").isdigit():
        try:
            ipaddress.ip_network(entry, strict=False)
        except ValueError:
            return f"{entry!r} is not a valid address or network (CIDR)"
        return None
    return None if _NAME.match(entry) else f"{entry!r} is not a valid host name"


def _address(host: str) -> Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        return address.ipv4_mapped
    return address


def _name(host: str) -> str:
    return host.lower().rstrip(".")


@dataclass(frozen=True)
class AllowedHosts:
    """The parsed list; :meth:`check` is the one question the rest of the code asks."""

    names: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()

    @classmethod
    def of(cls, entries: Iterable[str]) -> AllowedHosts:
        """Parse entries already validated with :func:`entry_problem`."""
        names: set[str] = set()
        networks: list[Network] = []
        for entry in entries:
            if _address(entry.split("/", 1)[0]) is not None:
                networks.append(ipaddress.ip_network(entry, strict=False))
            else:
                names.add(_name(entry))
        return cls(frozenset(names), tuple(networks))

    @property
    def restricts(self) -> bool:
        return bool(self.names or self.networks)

    def covers(self, address: Address) -> bool:
        return any(address.version == net.version and address in net for net in self.networks)

    def literal_verdict(self, host: str) -> bool | None:
        """Judge ``host`` without DNS: listed name or address literal; ``None`` if unknown."""
        if not self.restricts or _name(host) in self.names:
            return True
        address = _address(host)
        return None if address is None else self.covers(address)

    def check(self, host: str, port: int) -> str | None:
        """Return the address to connect to, or ``None`` to connect to ``host`` as it is.

        Raise :class:`HostNotAllowed` when ``host`` is outside the list, does not
        resolve, or resolves to any address outside the listed networks.
        """
        verdict = self.literal_verdict(host)
        if verdict is True:
            return None
        if verdict is False:
            raise HostNotAllowed(host)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            log.warning("allowed_hosts: %s does not resolve: %s", host, exc)
            raise HostNotAllowed(host) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        outside = [a for a in addresses
                   if (address := _address(a)) is None or not self.covers(address)]
        if outside or not addresses:
            log.warning("allowed_hosts: %s resolves to %s, outside the allowed networks",
                        host, ", ".join(outside) or "nothing")
            raise HostNotAllowed(host)
        return addresses[0]


def hosts_of(target: Target) -> list[str]:
    """Return every host ``target`` connects to first: its ``host``, or its uri's hosts."""
    uri = target.options.get("uri")
    return uri_hosts(str(uri)) if uri else [target.host]


def reachable(target: Target, allowed: AllowedHosts) -> Target:
    """Return ``target``, pinned to its checked address; raise :class:`HostNotAllowed`.

    A ``mongodb+srv://`` uri names a DNS record that lists the servers: it is allowed
    only when that name is listed (its servers are then the operator's to trust).
    """
    if not allowed.restricts:
        return target
    uri = str(target.options.get("uri") or "")
    if uri.startswith("mongodb+srv://"):
        for host in uri_hosts(uri):
            if _name(host) not in allowed.names:
                raise HostNotAllowed(host)
        return target
    pinned = [allowed.check(host, target.port) for host in hosts_of(target)]
    if target.engine == "postgres" and pinned[0] is not None:
        return replace(target, hostaddr=pinned[0])
    return target


def refusal(target: Target, allowed: AllowedHosts) -> str | None:
    """Return why ``target`` may not be registered, or ``None`` (the API's question)."""
    try:
        reachable(target, allowed)
    except HostNotAllowed as exc:
        return exc.message
    return None
