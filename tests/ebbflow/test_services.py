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
