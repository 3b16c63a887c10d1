"""node_exporter's sockstat collector: /proc/net/sockstat and sockstat6."""

from __future__ import annotations

import os

from .source import Paths, Row

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def _parse(text: str, ipv6: bool) -> list[Row]:
    rows = []
    for line in text.splitlines():
        protocol, _, rest = line.partition(":")
        words = rest.split()
        pairs = dict(zip(words[::2], words[1::2], strict=False))
        if protocol == "sockets":
            help_text = f"Number of IPv{6 if ipv6 else 4} sockets in use."
            rows.append(Row("node_sockstat_sockets_used", float(pairs["used"]), "gauge", help_text))
            continue
        for key, value in pairs.items():
            help_text = f"Number of {protocol} sockets in state {key}."
            rows.append(Row(f"node_sockstat_{protocol}_{key}", float(value), "gauge", help_text))
            if key == "mem":
                help_text = f"Number of {protocol} sockets in state mem_bytes."
                rows.append(
                    Row(f"node_sockstat_{protocol}_mem_bytes", float(value) * PAGE_SIZE, "gauge",
                        help_text)
                )  # fmt: skip
    return rows


def collect(paths: Paths) -> list[Row]:
    rows = _parse((paths.proc / "net" / "sockstat").read_text(), ipv6=False)
    try:
        six = _parse((paths.proc / "net" / "sockstat6").read_text(), ipv6=True)
    except OSError:
        six = []
    return rows + [r for r in six if r.name != "node_sockstat_sockets_used"]
