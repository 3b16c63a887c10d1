from ebbflow.bus import Bus
from ebbflow.exporters.webhook import WebhookConfig, WebhookOutput
from ebbflow.exporters.webhook.alerts import alert_for, group_key, notification
from ebbflow.model import (
    ActionResult,
    ContainerInfo,
    Decision,
    HealingStep,
    HealthChange,
    NodeHealthChange,
    PolicyProblem,
    ServiceKey,
)
from tests.conftest import VirtualClock

WEB = ServiceKey("compose", "web", "shop")


def config(**extra: object) -> WebhookConfig:
    return WebhookConfig(targets=[{"url": "http://127.0.0.1:1/hook"}], **extra)  # type: ignore[arg-type]


def test_a_decision_is_a_one_off_alert() -> None:
    alert = alert_for(Decision(WEB, 2, 3, "cpu avg 91 > max 80", 1700000000.0), 300)
    assert alert is not None and alert.event and not alert.resolved
    assert dict(alert.labels) == {
        "alertname": "EbbflowScaled",
        "service": "shop/web",
        "direction": "out",
        "replicas": "3",
        "origin": "policy",
        "severity": "info",
    }
    assert alert.annotations["description"] == "cpu avg 91 > max 80"
    body = alert.alertmanager()
    assert body["startsAt"] == "2023-11-14T22:13:20.000Z"
    assert body["endsAt"] == "2023-11-14T22:18:20.000Z"  # ends by itself after event_ttl


def test_states_fire_and_resolve_with_the_same_labels() -> None:
    firing = alert_for(PolicyProblem(WEB, ("max_cpu: 'abc' is not a number",), 10.0), 300)
    fixed = alert_for(PolicyProblem(WEB, (), 20.0), 300)
    assert firing is not None and fixed is not None
    assert firing.fingerprint == fixed.fingerprint
    assert (firing.status, fixed.status) == ("firing", "resolved")
    info = ContainerInfo("c1", "shop-web-1", "img")
    sick = alert_for(HealthChange(info, WEB, False, "timeout", "no answer in 2s", 30.0), 300)
    well = alert_for(HealthChange(info, WEB, True, "ok", "", 40.0), 300)
    assert sick is not None and well is not None
    assert sick.labels["container"] == "shop-web-1" and sick.fingerprint == well.fingerprint
    assert well.webhook()["status"] == "resolved"


def test_healing_steps_are_events_and_giving_up_is_a_state() -> None:
    restarted = alert_for(
        HealingStep(
            WEB,
            "shop-web-1",
            "restart",
            "exited with code 1",
            2,
            True,
            "restarted",
            5.0,
            next_delay=40.0,
        ),
        300,
    )
    assert restarted is not None and restarted.event
    assert dict(restarted.labels) == {
        "alertname": "EbbflowContainerRestarted",
        "service": "shop/web",
        "container": "shop-web-1",
        "severity": "info",
    }
    assert restarted.annotations["next_delay_seconds"] == "40"
    failed = alert_for(
        HealingStep(WEB, "shop-web-1", "replace", "x", 3, False, "no image", 6.0), 300
    )
    assert failed is not None and failed.labels["alertname"] == "EbbflowActionFailed"
    assert failed.labels["action"] == "replace" and failed.annotations["description"] == "no image"
    refused = HealingStep(WEB, "shop-web-1", "restart", "x", 1, False, "not done: paused", 6.5,
                          refused=True)  # fmt: skip
    assert alert_for(refused, 300) is None  # never attempted, as a refused scaling action
    gave_up = alert_for(HealingStep(WEB, "shop-web-1", "give_up", "exited", 4, True, "", 7.0), 300)
    back = alert_for(HealingStep(WEB, "shop-web-1", "recovered", "ok", 0, True, "", 9.0), 300)
    assert gave_up is not None and back is not None and not gave_up.event
    assert gave_up.labels["severity"] == "critical" and gave_up.fingerprint == back.fingerprint
    assert (gave_up.status, back.status) == ("firing", "resolved")
    dry = HealingStep(WEB, "shop-web-1", "restart", "x", 1, True, "dry run", 8.0, dry_run=True)
    assert alert_for(dry, 300, dry_run_alerts=False) is None


def test_a_node_at_fault_is_a_state_and_its_moves_are_events() -> None:
    down = alert_for(NodeHealthChange("n2", False, "engine not answering", 10.0), 300)
    up = alert_for(NodeHealthChange("n2", True, "engine fault cleared", 20.0), 300)
    assert down is not None and up is not None and not down.event
    assert dict(down.labels) == {
        "alertname": "EbbflowNodeUnhealthy",
        "node": "n2",
        "severity": "critical",
    }
    assert down.fingerprint == up.fingerprint and up.resolved
    moved = alert_for(
        HealingStep(WEB, "shop-web-2", "migrate", "node n2 down", 0, True, "on n1", 11.0), 300
    )
    assert moved is not None and moved.event
    assert moved.labels["alertname"] == "EbbflowContainerMigrated"
    drained = alert_for(
        HealingStep(ServiceKey("node", "n2"), "n2", "drain", "pressure", 0, True, "", 12.0), 300
    )
    assert drained is not None
    assert dict(drained.labels) == {
        "alertname": "EbbflowNodeDrained",
        "node": "n2",
        "severity": "info",
    }


def test_notification_is_alertmanagers_webhook_body() -> None:
    a = alert_for(PolicyProblem(WEB, ("bad",), 10.0), 300)
    assert a is not None
    body = notification(
        "ebbflow", {"alertname": "EbbflowPolicyInvalid", "service": "shop/web"}, [a]
    )
    assert body["version"] == "4" and body["status"] == "firing"
    assert body["groupKey"] == group_key(body["groupLabels"])
    assert body["groupKey"] == '{}:{alertname="EbbflowPolicyInvalid", service="shop/web"}'
    assert body["commonLabels"]["severity"] == "warning"
    assert body["alerts"][0]["endsAt"] == "0001-01-01T00:00:00Z"


def test_grouping_and_deduplication_on_a_virtual_clock(clock: VirtualClock) -> None:
    out = WebhookOutput(Bus(), config(group_wait=5, repeat_interval=60), clock)
    problem = alert_for(PolicyProblem(WEB, ("bad",), clock.now), 300)
    assert problem is not None
    out.accept(problem)
    out.accept(problem)  # the same state twice within the group: one alert
    for to in (2, 3):  # two decisions: two alerts, never merged
        decision = alert_for(Decision(WEB, to - 1, to, "r", clock.now), 300)
        assert decision is not None
        out.accept(decision)
    clock.advance(4)
    out.flush_due()
    assert not out.targets[0].queue  # still gathering
    clock.advance(1)
    out.flush_due()
    sent = [n.webhook for n in out.targets[0].queue]
    assert [len(n["alerts"]) for n in sent] == [1, 2]  # grouped by alertname and service
    clock.advance(30)
    out.accept(problem)  # unchanged within repeat_interval: not again
    clock.advance(5)
    out.flush_due()
    assert len(out.targets[0].queue) == 2 and out.deduplicated == 1
    fixed = alert_for(PolicyProblem(WEB, (), clock.now), 300)
    assert fixed is not None
    out.accept(fixed)
    clock.advance(5)
    out.flush_due()
    assert out.targets[0].queue[-1].webhook["status"] == "resolved"
    never_fired = alert_for(PolicyProblem(ServiceKey("compose", "db", "shop"), (), clock.now), 300)
    assert never_fired is not None
    out.accept(never_fired)
    assert not out.pending  # nothing announced, nothing to resolve


def test_a_signature_covers_its_time_so_an_old_request_is_refused() -> None:
    from ebbflow.exporters.webhook.delivery import signature, verify

    body = b'{"alerts": []}'
    header = signature("s3cret", body, 1_700_000_000)
    assert header.startswith("t=1700000000,v1=")
    assert verify("s3cret", header, body, now=1_700_000_100)
    assert not verify("s3cret", header, body, now=1_700_000_400)  # replayed 400 s later
    assert not verify("s3cret", header, body + b" ", now=1_700_000_100)  # another body
    assert not verify("other", header, body, now=1_700_000_100)
    forged = header.replace("t=1700000000", "t=1700000390")  # a new time, the old HMAC
    assert not verify("s3cret", forged, body, now=1_700_000_400)


def test_a_scaling_action_that_failed_alerts_and_one_refused_unattempted_does_not() -> None:
    decision = Decision(WEB, 1, 2, "cpu 90 > 80", 1.0)
    failed = alert_for(ActionResult(decision, False, "engine: 500 Server Error", 2.0), 300)
    assert failed is not None and failed.labels["alertname"] == "EbbflowActionFailed"
    assert failed.annotations["description"] == "engine: 500 Server Error"
    refused = ActionResult(
        decision, False, "not done: ownership changed since the decision", 2.0, refused=True
    )
    assert refused.outcome == "refused" and alert_for(refused, 300) is None
    assert ActionResult(decision, True, "started", 2.0).outcome == "ok"
