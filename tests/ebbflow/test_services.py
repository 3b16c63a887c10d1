from ebbflow.model import ServiceKey
from ebbflow.services import format_service_key, member_filters, parse_service_key, service_key

COMPOSE = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}


def test_identity_precedence() -> None:
    swarm = {"com.docker.swarm.service.name": "api", "ebbflow.service": "x"}
    assert service_key({**COMPOSE, **swarm}, "c") == ServiceKey("compose", "web", "shop")
    assert service_key(swarm, "c") == ServiceKey("swarm", "api")
    assert service_key({"ebbflow.service": "x"}, "c") == ServiceKey("label", "x")
    assert service_key({}, "lonely") == ServiceKey("container", "lonely")
    # half a compose identity is not one
    assert service_key({"com.docker.compose.project": "shop"}, "c").kind == "container"


def test_key_text_round_trips() -> None:
    for key in (ServiceKey("compose", "web", "shop"), ServiceKey("label", "x")):
        assert parse_service_key(format_service_key(key)) == key


def test_filters_select_both_compose_labels() -> None:
    assert member_filters(ServiceKey("compose", "web", "shop")) == {
        "label": ["com.docker.compose.project=shop", "com.docker.compose.service=web"]
    }


def test_the_defining_replica_is_never_a_copy_nor_a_guest() -> None:
    from ebbflow.services import defining

    compose = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
    made = [
        ("v1", {**compose, "com.docker.compose.config-hash": "a"}, 1.0),
        (
            "clone",
            {**compose, "com.docker.compose.config-hash": "a", "ebbflow.created-by": "x"},
            3.0,
        ),
        ("guest", {**compose, "aliyun.scale": "9"}, 4.0),  # compose labels by hand, later
        ("v2", {**compose, "com.docker.compose.config-hash": "b"}, 2.0),  # the redeploy
    ]

    def pick(names: set[str]) -> str:
        chosen = defining([m for m in made if m[0] in names], lambda m: m[1], lambda m: m[2])
        return chosen[0]

    assert pick({"v1", "clone", "guest", "v2"}) == "v2"  # the newest compose made
    assert pick({"v1", "clone"}) == "v1"  # never ebbflow's own copy
    assert pick({"clone", "guest"}) == "guest"  # nothing compose made: who started it
    assert pick({"clone"}) == "clone"  # only copies left


def test_without_compose_the_founder_defines_and_compose_guests_are_set_apart() -> None:
    from ebbflow.services import defining, guests

    label = {"ebbflow.service": "q"}
    made = [("founder", label, 1.0), ("joiner", {**label, "aliyun.scale": "9"}, 2.0)]
    assert defining(made, lambda m: m[1], lambda m: m[2])[0] == "founder"
    compose = {"com.docker.compose.project": "shop", "com.docker.compose.service": "web"}
    v1 = ("v1", {**compose, "com.docker.compose.config-hash": "a"}, 1.0)
    copy = ("copy", {**v1[1], "ebbflow.created-by": "scale-out"}, 2.0)
    guest = ("guest", compose, 3.0)
    assert [g[0] for g in guests([v1, copy, guest], lambda m: m[1])] == ["guest"]
    assert guests([copy, guest], lambda m: m[1]) == []  # nothing compose made: no guests
