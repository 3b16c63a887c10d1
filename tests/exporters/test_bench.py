from ebbflow.exporters.bench import bench_pipeline


async def test_the_pipeline_bench_measures_every_output() -> None:
    figures = await bench_pipeline(None, 1)  # type: ignore[arg-type]  (it needs no context)
    for name in (
        "influxdb_line_protocol",
        "kafka_line_protocol",
        "kafka_json",
        "remote_write",
        "metrics_100k_series",
    ):
        assert figures[name]["samples_per_s"] > 0, name
    served = figures["metrics_100k_served_gzip"]
    assert served["bytes"] > 0 and served["runs"] == 3
