"""Probes stay inside their container.

A probe label may only name the container's own addresses: `container` (its address), one
of its networks' addresses, or, for a host-network container on this machine's engine,
the node's loopback (for one of a remote engine, that engine's host). Anything else is
refused with a named error and never sent: otherwise a label could make ebbflow probe the
host's own loopback or any address it reaches, and `body_regex` would answer questions
about what is served there. An operator may widen this for trusted cases in config
(`inputs.probes.allowed_targets`: addresses, networks or host names), never by a label.
This holds for containers outside the scope alike.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from urllib.parse import urlsplit

from ebbflow.model import ContainerInfo

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def allowed(url: str, info: ContainerInfo, trusted: Sequence[str] = ()) -> str | None:
    """None when the URL stays inside the container (or the operator trusts its host);
    else why not, naming the host."""
    host = urlsplit(url).hostname or ""
    if host == "container":
        return None
    local_host_network = info.network_mode == "host" and info.address == "127.0.0.1"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        ip = None
    if ip is not None and (str(ip) in info.addresses or (local_host_network and ip.is_loopback)):
        return None
    if ip is None and host == "localhost" and local_host_network:
        return None
    if _trusted(host, ip, trusted):
        return None
    own = ", ".join(("container", *info.addresses)) if info.addresses else "container"
    return (
        f"host {host} is not this container's own address ({own}): a probe stays inside "
        "its container (an operator may trust more in inputs.probes.allowed_targets)"
    )


def _trusted(
    host: str, ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, trusted: Sequence[str]
) -> bool:
    for entry in trusted:
        if entry == host:
            return True
        if ip is None:
            continue
        try:
            if ip in ipaddress.ip_network(entry, strict=False):
                return True
        except ValueError:
            continue  # a host name: compared above
    return False
