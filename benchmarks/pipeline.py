"""The output pipeline's figures against its goals: `ebbflow bench pipeline`, in a table.

    .venv/bin/python benchmarks/pipeline.py [--cycles 9]

Goals: ≥ 200,000 samples/s per core serialized for InfluxDB line protocol and for Kafka;
`/metrics` with 100,000 series served in under 250 ms.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

EBBFLOW = Path(sys.executable).parent / "ebbflow"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--cycles", type=int, default=9)
    args = parser.parse_args()
    out = subprocess.run(
        [str(EBBFLOW), "bench", "pipeline", "--cycles", str(args.cycles), "--json"],
        check=True,
        capture_output=True,
        text=True,
        cwd="/",
    ).stdout
    r = json.loads(out)

    def served(key: str) -> str:
        figures = r[f"metrics_100k_{key}"]
        return f"{figures['median_ms']:.0f} ms (max {figures['max_ms']:.0f})"

    rows = [
        (
            "InfluxDB line protocol",
            f"{r['influxdb_line_protocol']['samples_per_s']:,.0f} samples/s",
            "≥ 200,000",
        ),
        (
            "Kafka, line protocol (keyed by service)",
            f"{r['kafka_line_protocol']['samples_per_s']:,.0f} samples/s",
            "≥ 200,000",
        ),
        ("Kafka, JSON lines", f"{r['kafka_json']['samples_per_s']:,.0f} samples/s", "≥ 200,000"),
        (
            "Prometheus remote write (protobuf + snappy)",
            f"{r['remote_write']['samples_per_s']:,.0f} samples/s",
            "—",
        ),
        (
            "/metrics text, 100k series (ebbflow)",
            f"{r['metrics_100k_series']['median_ms']:.0f} ms",
            "—",
        ),
        (
            "/metrics text, 100k series (prometheus-client)",
            f"{r['metrics_100k_series_prometheus_client']['median_ms']:.0f} ms",
            "—",
        ),
        (
            "/metrics served over HTTP, gzip (as Prometheus asks)",
            served("served_gzip"),
            "< 250 ms",
        ),
        (
            "/metrics served over HTTP, uncompressed",
            served("served_plain"),
            "< 250 ms",
        ),
    ]
    ratio = (
        r["metrics_100k_series_prometheus_client"]["median_ms"]
        / r["metrics_100k_series"]["median_ms"]
    )
    print("| measure | result | goal |\n|---|---:|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    print(f"\nprometheus-client ÷ ebbflow for the /metrics text: {ratio:.1f}×")
    return 0


if __name__ == "__main__":
    sys.exit(main())
