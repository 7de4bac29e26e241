"""Which hosts a repository URL may name: the mirror job clones it from inside the platform (SSRF).

Only globally routable unicast addresses pass, judged after decoding what a client would decode:
every IPv4 spelling that ``inet_aton`` and the WHATWG URL parser accept (``127.1``, ``0x7f000001``,
``2130706433``, ``0177.0.0.1``, trailing dots, full-width digits through IDNA) and every IPv4
address embedded in an IPv6 one (IPv4-mapped and -compatible, SIIT, NAT64 ``64:ff9b::/96``,
6to4, Teredo). A name is resolved and every address it gives is judged; the check runs when the
repository is added and again each time the mirror is triggered (a name can be re-pointed).

Python's ``ipaddress`` alone is not enough: it calls 100.64.0.0/10 "not private" and, on 3.11,
calls 6to4 and NAT64 addresses embedding 127.0.0.1 global. The ranges below are IANA's
special-purpose registries (RFC 6890 and its updates): none of them is a forge on the Internet.

An internal forge may be legitimate: ``[repositories] allowed_hosts`` names hosts accepted
whatever they resolve to, ``allowed_networks`` ranges accepted for any name resolving into them.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from bot.config import Config

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Resolver = Callable[[str], Awaitable[list[str]]]

# IANA IPv4 special-purpose address registry, plus multicast and the reserved 240/4.
_V4_NOT_GLOBAL = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (CGN), also 100.100.100.200, a cloud metadata address
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.31.196.0/24",
        "192.52.193.0/24",
        "192.88.99.0/24",  # 6to4 relay anycast (deprecated, RFC 7526)
        "192.168.0.0/16",
        "192.175.48.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
# Only 2000::/3 is global unicast; inside it, these are not.
_V6_GLOBAL_UNICAST = ipaddress.IPv6Network("2000::/3")
_V6_NOT_GLOBAL = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "2001::/23",  # IETF protocol assignments (Teredo 2001::/32 is decoded before this check)
        "2001:db8::/32",
        "3fff::/20",  # documentation (RFC 9637)
    )
)
# Prefixes whose low 32 bits are an IPv4 address a translator or the kernel will reach.
_V4_IN_LOW_BITS = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::ffff:0:0/96",  # IPv4-mapped
        "::/96",  # IPv4-compatible (deprecated; ``::`` and ``::1`` land in 0.0.0.0/8 and are refused)
        "::ffff:0:0:0/96",  # SIIT IPv4-translated (RFC 2765)
        "64:ff9b::/96",  # NAT64 well-known prefix (RFC 6052)
    )
)
_NAT64_LOCAL = ipaddress.IPv6Network("64:ff9b:1::/48")  # local-use NAT64 (RFC 8215): operator-defined layout
_TEREDO = ipaddress.IPv6Network("2001::/32")
_SIXTOFOUR = ipaddress.IPv6Network("2002::/16")

_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_NUMERIC_PART = re.compile(r"(?:0[xX][0-9a-fA-F]*|[0-9]+)")
_LOCAL_NAMES = ("localhost", "localhost.localdomain")


class BadHost(ValueError):
    """The host cannot be read the one way every client would read it."""


def parse_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """The IPv4 address ``host`` spells for ``inet_aton`` and the WHATWG URL parser, else None.

    One to four parts, each decimal, octal (leading 0) or hexadecimal (0x); the last part fills
    the remaining bytes. A host whose last label is numeric but which is no valid address is
    :class:`BadHost`: WHATWG refuses it and resolvers disagree on it.
    """
    parts = host.rstrip(".").split(".")
    if not parts or not _NUMERIC_PART.fullmatch(parts[-1]):
        return None
    if len(parts) > 4 or not all(_NUMERIC_PART.fullmatch(p) for p in parts):
        raise BadHost(host)
    values = []
    for part in parts:
        if part[:2].lower() == "0x":
            if not part[2:]:
                raise BadHost(host)  # a bare "0x": WHATWG reads 0, inet_aton refuses it
            values.append(int(part[2:], 16))
        elif len(part) > 1 and part[0] == "0":
            if not set(part) <= set("01234567"):
                raise BadHost(host)
            values.append(int(part, 8))
        else:
            values.append(int(part))
    *head, last = values
    if any(v > 255 for v in head) or last >= 256 ** (4 - len(head)):
        raise BadHost(host)
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address a packet to ``address`` may really go to (empty if none)."""
    if any(address in net for net in _V4_IN_LOW_BITS):
        return [ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)]
    if address in _TEREDO:
        teredo = address.teredo
        assert teredo is not None
        return list(teredo)  # the server and the (de-obfuscated) client
    if address in _SIXTOFOUR:
        sixtofour = address.sixtofour
        assert sixtofour is not None
        return [sixtofour]
    return []


def is_public(address: IPAddress) -> bool:
    """Globally routable unicast, embedded addresses included."""
    if isinstance(address, ipaddress.IPv4Address):
        return address.is_global and not any(address in net for net in _V4_NOT_GLOBAL)
    if address.scope_id or address in _NAT64_LOCAL:
        return False
    embedded = embedded_ipv4(address)
    if embedded:
        return all(is_public(inner) for inner in embedded)
    return address in _V6_GLOBAL_UNICAST and not any(address in net for net in _V6_NOT_GLOBAL)


def normalise_host(host: str) -> str | IPAddress:
    """The address a URL's host spells, or its name in ASCII lower case without trailing dots.

    Raises :class:`BadHost` for what no forge's URL needs: percent signs, zone ids, characters
    outside a DNS name, a numeric last label that is no address.
    """
    if not host or "%" in host:
        raise BadHost(host)
    if ":" in host:
        try:
            v6 = ipaddress.IPv6Address(host)
        except ValueError:
            raise BadHost(host) from None
        return v6
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")  # NFKC: full-width digits and dots become ASCII
        except UnicodeError:
            raise BadHost(host) from None
    host = host.lower().rstrip(".")
    v4 = parse_ipv4(host)
    if v4 is not None:
        return v4
    if len(host) > 253 or not all(_LABEL.fullmatch(label) for label in host.split(".")):
        raise BadHost(host)
    return host


async def system_resolver(host: str) -> list[str]:
    """Every address the system resolver gives for ``host`` (in a thread: getaddrinfo blocks)."""
    infos = await asyncio.to_thread(socket.getaddrinfo, host, 443, proto=socket.IPPROTO_TCP)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class Verdict:
    """``reason``: ``ok``, ``bad_host``, ``port``, ``local_name``, ``internal``, ``unresolved`` or ``bad_url``."""

    reason: str
    host: str
    address: str = ""

    @property
    def ok(self) -> bool:
        return self.reason == "ok"


def _host_matches(name: str, patterns: Iterable[str]) -> bool:
    for pattern in patterns:
        pattern = pattern.lower().rstrip(".")
        if pattern.startswith("*.") and name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
            return True
        if name == pattern:
            return True
    return False


@dataclass(frozen=True)
class AddressPolicy:
    allowed_hosts: tuple[str, ...] = ()
    allowed_networks: tuple[IPNetwork, ...] = ()
    allowed_ports: tuple[int, ...] = (443,)
    timeout_seconds: float = 3.0
    resolver: Resolver = field(default=system_resolver, compare=False)

    def _address_ok(self, address: IPAddress) -> bool:
        if any(address.version == net.version and address in net for net in self.allowed_networks):
            return True
        return is_public(address)

    async def check_url(self, url: str) -> Verdict:
        parts = urlsplit(url)
        try:
            port = parts.port or 443
        except ValueError:
            return Verdict("bad_host", parts.netloc)
        return await self.check_host(parts.hostname or "", port)

    async def check_host(self, host: str, port: int = 443) -> Verdict:
        try:
            target = normalise_host(host)
        except BadHost:
            return Verdict("bad_host", host)
        shown = str(target)
        if isinstance(target, str) and _host_matches(target, self.allowed_hosts):
            return Verdict("ok", shown)  # the platform team vouches for it, whatever it resolves to
        if port not in self.allowed_ports:
            return Verdict("port", f"{shown}:{port}")
        if not isinstance(target, str):
            return Verdict("ok" if self._address_ok(target) else "internal", shown, shown)
        if target in _LOCAL_NAMES or target.endswith(".localhost"):
            return Verdict("local_name", shown)  # RFC 6761: never asked of DNS
        try:
            found = await asyncio.wait_for(self.resolver(target), timeout=self.timeout_seconds)
            addresses = [ipaddress.ip_address(a) for a in found]
        except (OSError, UnicodeError, ValueError, TimeoutError):
            return Verdict("unresolved", shown)
        if not addresses:
            return Verdict("unresolved", shown)
        for address in addresses:
            if not self._address_ok(address):
                return Verdict("internal", shown, str(address))
        return Verdict("ok", shown)


def policy_from_config(config: Config, resolver: Resolver = system_resolver) -> AddressPolicy:
    repositories = config.repositories
    return AddressPolicy(
        allowed_hosts=tuple(repositories.allowed_hosts) + tuple(config.platform.allowed_repo_hosts),
        allowed_networks=tuple(ipaddress.ip_network(n) for n in repositories.allowed_networks),
        allowed_ports=tuple(repositories.allowed_ports),
        timeout_seconds=repositories.resolve_timeout_seconds,
        resolver=resolver,
    )


class AddressRefused(Exception):
    """A repository's address failed the policy when it was about to be used."""

    def __init__(self, verdict: Verdict) -> None:
        super().__init__(verdict.reason)
        self.verdict = verdict
