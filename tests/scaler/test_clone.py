from ebbflow.model import ServiceKey
from ebbflow.scaler.clone import (
    CREATED_BY_LABEL,
    clone_request,
    extra_networks,
    next_free_number,
    replica_name,
    replica_number,
)
from ebbflow.services import configuration

TEMPLATE = {
    "Id": "abcdef123456" + "0" * 52,
    "Name": "/shop_web_1",
    "Config": {
        "Hostname": "abcdef123456",
        "Image": "img:1",
        "Cmd": ["serve"],
        "Env": ["A=1"],
        "Labels": {
            "com.docker.compose.project": "shop",
            "com.docker.compose.service": "web",
            "com.docker.compose.container-number": "1",
            "team": "x",
        },
        "WorkingDir": "/srv",
        "User": "nobody",
        "MacAddress": "02:42:ac:11:00:02",
    },
    "HostConfig": {
        "Binds": ["/data:/data:ro"],
        "NetworkMode": "shop_default",
        "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 3},
        "NanoCpus": 500_000_000,
        "Memory": 67108864,
        "PortBindings": {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8080"}]},
        "Mounts": [{"Type": "volume", "Source": "shared", "Target": "/shared"}],
    },
    "NetworkSettings": {
        "Networks": {
            "shop_default": {"Aliases": ["web", "abcdef123456"], "IPAddress": "172.18.0.2"},
            "shop_back": {"Aliases": ["web"]},
        }
    },
}


def test_clone_keeps_the_service_config() -> None:
    req = clone_request(TEMPLATE, 2)
    assert (req["Image"], req["Cmd"], req["Env"], req["WorkingDir"], req["User"]) == (
        "img:1",
        ["serve"],
        ["A=1"],
        "/srv",
        "nobody",
    )
    host = req["HostConfig"]
    assert host["Binds"] == ["/data:/data:ro"]
    assert host["Mounts"] == TEMPLATE["HostConfig"]["Mounts"]
    assert host["RestartPolicy"] == {"Name": "on-failure", "MaximumRetryCount": 3}
    assert (host["NanoCpus"], host["Memory"], host["NetworkMode"]) == (
        500_000_000,
        67108864,
        "shop_default",
    )
    assert req["Labels"]["team"] == "x"
    assert req["Labels"]["com.docker.compose.container-number"] == "2"
    assert req["Labels"][CREATED_BY_LABEL] == "scale-out"


def test_clone_drops_what_is_per_container() -> None:
    req = clone_request(TEMPLATE, 2)
    assert "Hostname" not in req and "MacAddress" not in req
    assert req["HostConfig"]["PortBindings"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": ""}]
    assert req["NetworkingConfig"] == {"EndpointsConfig": {"shop_default": {"Aliases": ["web"]}}}
    assert TEMPLATE["HostConfig"]["PortBindings"]["80/tcp"][0]["HostPort"] == "8080"  # untouched
    assert extra_networks(TEMPLATE) == {"shop_back": {"Aliases": ["web"]}}


def test_an_explicit_hostname_is_kept() -> None:
    template = {**TEMPLATE, "Config": {**TEMPLATE["Config"], "Hostname": "web"}}
    assert clone_request(template, 2)["Hostname"] == "web"


def test_names_and_numbers() -> None:
    web = ServiceKey("compose", "web", "shop")
    assert replica_name(web, "shop_web_1", 3) == "shop_web_3"
    assert replica_name(web, "shop-web-1", 3) == "shop-web-3"  # compose v2 style kept
    assert replica_name(ServiceKey("label", "api"), "api", 2) == "api_2"
    assert replica_number("x_7", {"com.docker.compose.container-number": "4"}) == 4
    assert replica_number("shop-web-12", {}) == 12
    assert replica_number("solo", {}) is None
    assert next_free_number([1, 2, 4]) == 3
    assert next_free_number([]) == 1


def test_a_copy_on_another_engine_has_its_templates_configuration() -> None:
    """An image built or imported on each engine has another id on each: a copy made on
    another engine is still of its template's configuration (no rollover loop), and a copy
    of that copy too; a template whose image changed is another configuration."""
    template = {**TEMPLATE, "Image": "sha256:" + "1" * 64}
    copy = clone_request(template, 2)
    made = {"Config": copy, "Image": "sha256:" + "2" * 64}  # as the other engine inspects it
    assert configuration(made) == configuration(template)
    again = {"Config": clone_request(made, 3), "Image": "sha256:" + "3" * 64}
    assert configuration(again) == configuration(template)
    rebuilt = {**TEMPLATE, "Image": "sha256:" + "4" * 64}
    assert configuration(rebuilt) != configuration(template)


def test_a_copy_is_marked_when_it_was_made_and_the_mark_is_no_configuration() -> None:
    """Copies made together are created at once: their made-at marks, not the engine's
    creation times, keep them in number order. A copy of a copy carries its own time."""
    first = clone_request(TEMPLATE, 2, "scale-out", 1000.5)
    second = clone_request(TEMPLATE, 3, "scale-out", 1000.500001)
    assert first["Labels"]["ebbflow.made-at"] == "1000.500000"
    assert second["Labels"]["ebbflow.made-at"] == "1000.500001"
    made = {"Config": first, "Image": "sha256:" + "2" * 64}
    assert "ebbflow.made-at" not in clone_request(made, 4)["Labels"]
    assert clone_request(made, 4, "replace", 2000.0)["Labels"]["ebbflow.made-at"] == "2000.000000"
    unmarked = {"Config": {**first, "Labels": {k: v for k, v in first["Labels"].items()
                                              if k != "ebbflow.made-at"}}}  # fmt: skip
    assert configuration({"Config": first}) == configuration(unmarked)
