"""The engine actuator's ordering of a service's replicas, without an engine."""

import random

from ebbflow.scaler.clone import clone_request
from ebbflow.scaler.docker_engine import Member, age_order, created_at, sibling_marks


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
    labels = {"ebbflow.created-by": "scale-out"}
    if made_at is not None:
        labels["ebbflow.made-at"] = made_at
    return Member("n1", {"Id": name, "Name": f"/{name}", "Created": created,
                         "Config": {"Labels": labels}, "State": {"Running": True}})  # fmt: skip


def founder(name: str, created: str, labels: dict[str, str]) -> Member:
    return Member("n1", {"Id": name, "Name": f"/{name}", "Created": created,
                         "Config": {"Labels": labels}, "State": {"Running": True}})  # fmt: skip


def test_replicas_of_one_moment_are_ordered_by_number() -> None:
    """However they are listed: the oldest first, and a tie in time is broken by number."""
    first = founder("web_1", "2026-12-04T09:00:00Z", {})
    made = [member(f"web_{n}", "1796378400.000001") for n in (4, 2, 3)]
    ordered = sorted([made[0], first, *made[1:]], key=age_order)
    assert [m.name for m in ordered] == ["web_1", "web_2", "web_3", "web_4"]


def test_a_made_at_mark_is_read_only_on_copies_and_only_as_a_finite_time() -> None:
    """The operator's own container keeps its engine's creation time whatever it is
    labelled; a copy whose mark is no finite number falls back to its creation time."""
    marked_founder = founder("web_1", "2026-12-04T09:00:00Z", {"ebbflow.made-at": "9e12"})
    copies = [
        member("web_2", "nan", "2026-12-04T09:10:00Z"),
        member("web_3", "inf", "2026-12-04T09:20:00Z"),
        member("web_4", "1e400", "2026-12-04T09:30:00Z"),
        member("web_5", "soon", "2026-12-04T09:40:00Z"),
        member("web_6", "1796378400.000001"),  # 2026-12-04T10:00:00.000001Z
    ]
    for listed in ([marked_founder, *copies], [*reversed(copies), marked_founder]):
        ordered = sorted(listed, key=age_order)
        assert [m.name for m in ordered] == [f"web_{n}" for n in range(1, 7)]
    assert created_at(copies[0]) == 1796375400.0
