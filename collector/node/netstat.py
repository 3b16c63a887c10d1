"""node_exporter's netstat collector: /proc/net/netstat, snmp and snmp6, its default fields."""

from __future__ import annotations

import re

from .source import Paths, Row

FIELDS = re.compile(  # --collector.netstat.fields
    r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)"
    r"|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)"
    r"|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)"
    r"|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$"
)
SNMP6_PROTOCOL = re.compile(r"^(Ip6|Icmp6|Udp6|UdpLite6)(.*)$")


def _paired(text: str) -> dict[tuple[str, str], str]:
    """`Proto: a b` then `Proto: 1 2` line pairs → {(Proto, a): 1, ...}."""
    stats: dict[tuple[str, str], str] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        protocol, _, keys = names.partition(":")
        for key, value in zip(keys.split(), values.partition(":")[2].split(), strict=False):
            stats[(protocol, key)] = value
    return stats


def collect(paths: Paths) -> list[Row]:
    stats: dict[tuple[str, str], str] = {}
    for name in ("netstat", "snmp"):
        stats.update(_paired((paths.proc / "net" / name).read_text()))
    try:
        for line in (paths.proc / "net" / "snmp6").read_text().splitlines():
            key, _, value = line.partition(" ")
            match = SNMP6_PROTOCOL.match(key)
            if match:
                stats[(match.group(1), match.group(2))] = value.strip()
    except OSError:
        pass  # no IPv6
    rows = []
    for (protocol, key), value in stats.items():
        joined = f"{protocol}_{key}"
        if FIELDS.match(joined):
            help_text = f"Statistic {protocol}{key}."
            rows.append(Row(f"node_netstat_{joined}", float(value), "untyped", help_text))
    return rows
