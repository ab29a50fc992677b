"""Where the proctor may connect when it talks to a target (the SSRF guard).

A target URL is untrusted. The host is resolved once, every address it resolves to is checked,
and the connection goes to a checked address (:func:`pin`: the URL's host replaced by the
address, ``Host`` and TLS SNI kept as the name), so a name that answers a public address to
the check and a private one to the connection (DNS rebinding) gets nowhere.

Refused always: link-local (cloud metadata at 169.254.169.254 and fe80::/10), multicast,
unspecified, reserved, and the metadata addresses some clouds put elsewhere. Refused unless
private targets are allowed (``PROCTOR_ALLOW_PRIVATE_TARGETS``, on for laptops, off for a
public deployment): every address that is not globally reachable: loopback, RFC 1918,
carrier-grade NAT 100.64.0.0/10, benchmarking, documentation and protocol-assignment ranges,
unique-local IPv6; an IPv6 address carrying an IPv4 one (mapped, 6to4, NAT64, Teredo) is
judged by the IPv4 address too.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import httpx

__all__ = ["IP", "EgressRefused", "ResolveFailed", "pin", "resolve_checked", "verdict"]

IP = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud metadata endpoints outside link-local (Alibaba Cloud; AWS's IPv6 IMDS).
METADATA = frozenset(ipaddress.ip_address(a) for a in ("100.100.100.200", "fd00:ec2::254"))
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
# special-purpose ranges Python's is_global still counts as global
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(n)
    for n in ("192.0.0.0/24", "192.88.99.0/24", "64:ff9b::/96", "64:ff9b:1::/48", "100::/64", "2001::/23",
              "2001:db8::/32", "2002::/16")
)  # fmt: skip


class EgressRefused(Exception):
    """The destination is one a target may not have."""


class ResolveFailed(Exception):
    """The name does not resolve."""


def _embedded_v4(ip: IP) -> ipaddress.IPv4Address | None:
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def verdict(ip: IP, allow_private: bool) -> str | None:
    """Why ``ip`` is refused, or None when a target may have it."""
    for addr in filter(None, (ip, _embedded_v4(ip))):
        if addr in METADATA:
            return f"{ip} is a cloud metadata address"
        reserved = addr.is_reserved if addr.version == 4 else addr.is_site_local  # v6 ::/8 holds ::1 and mapped
        if addr.is_link_local or addr.is_multicast or addr.is_unspecified or reserved:
            return f"{ip} is a link-local/reserved address"
        public = addr.is_global and not addr.is_private and not any(addr in n for n in _NOT_PUBLIC)
        if not allow_private and not public:
            return (f"{ip} is not a public address (private, loopback, carrier-grade NAT or another "
                    "special-purpose range; private targets are not allowed on this proctor)")
    return None


async def resolve_checked(host: str, port: int, allow_private: bool) -> IP:
    """The address to connect to for ``host``: every address it resolves to must pass
    :func:`verdict` (one refused address refuses the host), the first is used."""
    try:
        ips: list[IP] = [ipaddress.ip_address(host.strip("[]"))]
    except ValueError:
        ips = await _resolve(host, port)
    for ip in ips:
        why = verdict(ip, allow_private)
        if why:
            raise EgressRefused(f"refusing to contact {host}: {why}")
    return ips[0]


async def _resolve(host: str, port: int) -> list[IP]:
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as e:
        raise ResolveFailed(f"cannot resolve {host}: {e}") from e
    ips = list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos))
    if not ips:
        raise ResolveFailed(f"cannot resolve {host}: no address")
    return ips


def pin(request: httpx.Request, ip: IP) -> httpx.Request:
    """``request`` sent to ``ip``: the URL's host becomes the address, the ``Host`` header
    keeps the name, and TLS verifies and sends SNI for the name."""
    host = request.url.host
    try:
        ipaddress.ip_address(host.strip("[]"))
        return request  # already an address: nothing to pin
    except ValueError:
        pass
    request.url = request.url.copy_with(host=str(ip))
    request.headers["Host"] = request.headers.get("Host") or host
    request.extensions = {**request.extensions, "sni_hostname": host}
    return request
