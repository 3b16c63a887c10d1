"""Webhooks to a real HTTP receiver (down for a while, then back) and to a real
Alertmanager (Debian's), which also forwards its own webhook body for comparison."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from ebbflow.bus import Bus
from ebbflow.exporters.webhook import WebhookConfig, WebhookOutput
from ebbflow.model import ContainerInfo, Decision, HealthChange, PolicyProblem, ServiceKey
from tests.conftest import free_port, served
from tests.receiver import SECRET, Receiver, until

pytestmark = pytest.mark.integration

WEB = ServiceKey("compose", "web", "shop")


def fast_config(*targets: dict[str, str]) -> WebhookConfig:
    return WebhookConfig(
        targets=targets,  # type: ignore[arg-type]
        group_wait=0.1,
        backoff_initial=0.1,
        backoff_max=0.5,
        timeout=2,
    )


async def test_a_receiver_down_for_a_while_gets_every_alert_once_signed() -> None:
    receiver = Receiver(free_port())  # not listening yet: connection refused
    bus = Bus()
    out = WebhookOutput(
        bus, fast_config({"url": f"http://127.0.0.1:{receiver.port}/hook", "secret": SECRET})
    )
    task = asyncio.create_task(out.run())
    info = ContainerInfo("c1", "shop-web-1", "img")
    try:
        bus.publish(PolicyProblem(WEB, ("max_cpu: 'abc' is not a number",), 1.0))
        await asyncio.sleep(0.3)
        bus.publish(Decision(WEB, 1, 2, "cpu avg 91 > max 80", 2.0))
        await asyncio.sleep(0.3)
        bus.publish(HealthChange(info, WEB, False, "timeout", "no answer", 3.0))
        await asyncio.sleep(0.3)
        bus.publish(HealthChange(info, WEB, True, "ok", "", 4.0))
        await until(lambda: out.targets[0].retries >= 3)
        assert not out.targets[0].up
        await receiver.start()
        await until(lambda: out.targets[0].sent == 4 and not out.targets[0].queue)
        await asyncio.sleep(0.5)  # a duplicate would arrive now
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await receiver.stop()
    got = receiver.bodies["/hook"]
    assert receiver.bad_signatures == 0
    assert [(b["groupLabels"]["alertname"], b["status"]) for b in got] == [
        ("EbbflowPolicyInvalid", "firing"),
        ("EbbflowScaled", "firing"),
        ("EbbflowContainerUnhealthy", "firing"),
        ("EbbflowContainerUnhealthy", "resolved"),
    ]
    assert got[1]["alerts"][0]["annotations"]["description"] == "cpu avg 91 > max 80"


def alertmanager_config(home: Path, receiver_port: int) -> Path:
    config = home / "alertmanager.yml"
    config.write_text(
        f"""
route:
  receiver: test
  group_by: [alertname, service]
  group_wait: 100ms
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: test
    webhook_configs:
      - url: http://127.0.0.1:{receiver_port}/alertmanager
        send_resolved: true
"""
    )
    return config


def am_alerts(base: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{base}/api/v2/alerts", timeout=5) as resp:
        alerts: list[dict[str, Any]] = json.loads(resp.read())
    return alerts


async def test_alertmanager_takes_the_alerts_and_its_webhook_body_matches_ours(
    tmp_path: Path,
) -> None:
    receiver = Receiver(free_port())
    await receiver.start()
    am_port = free_port()
    base = f"http://127.0.0.1:{am_port}"
    argv = [
        "prometheus-alertmanager",
        f"--config.file={alertmanager_config(tmp_path, receiver.port)}",
        f"--storage.path={tmp_path / 'am'}",
        f"--web.listen-address=127.0.0.1:{am_port}",
        "--cluster.listen-address=",
        "--log.level=error",
    ]
    bus = Bus()
    out = WebhookOutput(
        bus,
        fast_config(
            {"url": base, "kind": "alertmanager"},
            {"url": f"http://127.0.0.1:{receiver.port}/direct"},
        ),
    )
    try:
        with served(argv, f"{base}/-/ready"):
            task = asyncio.create_task(out.run())
            try:
                bus.publish(PolicyProblem(WEB, ("max_cpu: 'abc' is not a number",), 1.0))
                await until(lambda: "/alertmanager" in receiver.bodies, 30)
                listed = await asyncio.to_thread(am_alerts, base)
                assert [a["labels"]["alertname"] for a in listed] == ["EbbflowPolicyInvalid"]
                assert listed[0]["labels"]["service"] == "shop/web"
                assert listed[0]["status"]["state"] == "active"

                bus.publish(PolicyProblem(WEB, (), 2.0))  # fixed
                await until(
                    lambda: any(
                        b["status"] == "resolved" for b in receiver.bodies["/alertmanager"]
                    ),
                    30,
                )
                await until(lambda: len(receiver.bodies.get("/direct", [])) == 2)
            finally:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
    finally:
        await receiver.stop()
    assert out.targets[0].dropped["rejected"] == 0  # Alertmanager accepted every alert
    theirs = receiver.bodies["/alertmanager"][0]
    ours = receiver.bodies["/direct"][0]
    assert set(ours) == set(theirs)
    assert set(ours["alerts"][0]) == set(theirs["alerts"][0])
    for key in ("version", "status", "groupKey", "groupLabels", "commonLabels"):
        assert ours[key] == theirs[key], key  # the receiver's name is each one's own
    assert [b["status"] for b in receiver.bodies["/direct"]] == ["firing", "resolved"]
