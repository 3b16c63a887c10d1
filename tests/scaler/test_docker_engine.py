"""The engine actuator's ordering of a service's replicas, without an engine."""

import random

from ebbflow.scaler.clone import clone_request
from ebbflow.scaler.docker_engine import Member, age_order, sibling_marks


def test_siblings_marks_print_apart_and_in_order() -> None:
    """Marks a float step of 1e-6 apart printed alike in about one scale-out by 3 in 11,
    and the newest was then chosen by listing order (a scale-in took _2 before _3)."""
    pick = random.Random(7)
    for _ in range(20_000):
        now = 1.78e9 + pick.random() * 1e7
        printed = [
            clone_request({"Config": {"Labels": {}}}, n, "scale-out", at)["Labels"][
                "ebbflow.made-at"
            ]
            for n, at in enumerate(sibling_marks(4, now), start=2)
        ]
        assert len(set(printed)) == 4 and [float(p) for p in printed] == sorted(map(float, printed))
        assert abs(float(printed[0]) - now) <= 1e-6


def member(name: str, made_at: str | None, created: str = "2026-12-04T10:00:00.5Z") -> Member:
    labels = {"ebbflow.made-at": made_at} if made_at is not None else {}
    return Member("n1", {"Id": name, "Name": f"/{name}", "Created": created,
                         "Config": {"Labels": labels}, "State": {"Running": True}})  # fmt: skip


def test_replicas_of_one_moment_are_ordered_by_number() -> None:
    """However they are listed: the oldest first, and a tie in time is broken by number."""
    first = member("web_1", None, "2026-12-04T09:00:00Z")
    made = [member(f"web_{n}", "1796374800.000001") for n in (4, 2, 3)]
    ordered = sorted([made[0], first, *made[1:]], key=age_order)
    assert [m.name for m in ordered] == ["web_1", "web_2", "web_3", "web_4"]
