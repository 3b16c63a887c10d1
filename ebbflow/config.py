"""Configuration: YAML file, then `EBBFLOW_*` environment overrides, validated into frozen models.

Each plugin validates its own section with its own model (see `ebbflow.plugins`), so the
core only knows the shape of the top level.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

ENV_PREFIX = "EBBFLOW_"


class ConfigError(ValueError):
    """A configuration value is wrong; the message names where."""


def _comma_separated(value: object) -> object:
    return tuple(v.strip() for v in value.split(",")) if isinstance(value, str) else value


# A list that a config file or an environment variable may also give as "a:1, b:2".
CommaList = Annotated[tuple[str, ...], BeforeValidator(_comma_separated)]


class FrozenModel(BaseModel):
    # NaN and ±inf are never a setting: a rate, a target or a timeout of inf would turn
    # into an exception (or a loop that never ends) far from where it was written.
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


def describe_validation_error(err: ValidationError, where: str) -> list[str]:
    """One readable line per problem, each naming the field and the offending value."""
    lines = []
    for problem in err.errors():
        field = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        value = problem.get("input")
        shown = "" if isinstance(value, dict) else f" (got {value!r})"
        lines.append(f"{where}: {field}: {problem['msg']}{shown}")
    return lines


def validate(model: type[FrozenModel], data: Mapping[str, Any], where: str) -> Any:
    try:
        return model.model_validate(dict(data))
    except ValidationError as err:
        raise ConfigError("; ".join(describe_validation_error(err, where))) from None


NODE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class PressureLimits(FrozenModel):
    """Node metrics past which a node takes no new work and its containers move away.

    They judge the machine ebbflow runs on (the `node` input), so they apply to the nodes
    whose engine is on this machine (a `unix://` address)."""

    memory_percent: float | None = Field(None, gt=0, le=100, description="Memory in use.")
    cpu_percent: float | None = Field(None, gt=0, le=100, description="CPU busy, all cores.")
    for_seconds: float = Field(
        30.0, ge=0, description="How long a limit must stay passed before it counts."
    )

    @property
    def any(self) -> bool:
        return self.memory_percent is not None or self.cpu_percent is not None


class DockerLimits(FrozenModel):
    """Bounds on what ebbflow reads from an engine: a container's labels are anyone's to
    write, and every instance on the engine reads them."""

    max_event_bytes: int = Field(
        262_144,
        ge=4096,
        description="One event line; a longer one is skipped and counted, and its container "
        "inspected instead.",
    )
    max_inspect_bytes: int = Field(
        4_194_304, ge=65_536, description="One container's inspect answer; past it, skipped."
    )
    max_list_bytes: int = Field(
        67_108_864, ge=65_536, description="One container listing (every container's labels)."
    )
    max_label_bytes: int = Field(
        16_384,
        ge=256,
        description="One label's key and value; a longer label is left out and named as an "
        "error (a policy or probe label: the service is left alone).",
    )
    max_labels_bytes: int = Field(
        262_144, ge=1024, description="All of a container's labels; what is past it is left out."
    )


class EngineTLS(FrozenModel):
    """TLS to engines at tcp:// addresses, as Docker's own client does it (`--tlsverify`,
    DOCKER_CERT_PATH): one folder with the CA, this client's certificate and its key."""

    cert_path: Path = Field(description="A folder with ca.pem, cert.pem and key.pem.")
    verify: bool = Field(
        True,
        description="Check the engine's certificate against ca.pem and its address (off: "
        "encrypted, unchecked, like docker --tls without --tlsverify).",
    )

    @model_validator(mode="after")
    def _files_exist(self) -> EngineTLS:
        for name in ("ca.pem", "cert.pem", "key.pem"):
            if not (self.cert_path / name).is_file():
                raise ValueError(f"cert_path: no {name} in {self.cert_path}")
        return self


class DockerConfig(FrozenModel):
    host: str | None = Field(
        None, description="Engine address; default: DOCKER_HOST, then the local socket."
    )
    tls: EngineTLS | None = Field(
        None,
        description="TLS to tcp:// engines; without it, DOCKER_TLS_VERIFY=1 and "
        "DOCKER_CERT_PATH are honoured as by the docker CLI.",
    )
    timeout: float = Field(10.0, gt=0, description="Seconds allowed for one Docker API call.")
    nodes: dict[str, str] = Field(
        default_factory=dict,
        description="Engines by node name, each a DOCKER_HOST-style address; "
        "empty: one engine, at `host`.",
    )
    node_check_interval: float = Field(
        2.0, gt=0, description="Seconds between checks that each node's engine answers."
    )
    node_failures: int = Field(
        3, ge=1, description="Checks in a row an engine must fail before its node is down."
    )
    pressure: PressureLimits = PressureLimits()
    limits: DockerLimits = DockerLimits()

    @field_validator("nodes")
    @classmethod
    def _node_names(cls, nodes: dict[str, str]) -> dict[str, str]:
        for name, address in nodes.items():
            if not NODE_NAME.match(name):
                raise ValueError(f"node name {name!r}: letters, digits, '_', '.', '-' only")
            if not address:
                raise ValueError(f"node {name!r}: no engine address")
        return nodes


class PolicySelector(FrozenModel):
    service: str | None = Field(None, description="`project/name` or `name`; globs allowed.")
    labels: dict[str, str] = Field(default_factory=dict)


class ConfiguredPolicy(FrozenModel):
    """A policy from the YAML config, for services whose labels cannot be changed."""

    selector: PolicySelector
    labels: dict[str, str] = Field(min_length=1, description="Policy labels, as on a container.")

    def matches(self, service: str, service_name: str, labels: Mapping[str, str]) -> bool:
        pattern = self.selector.service
        if pattern is not None and not (
            fnmatch.fnmatchcase(service, pattern) or fnmatch.fnmatchcase(service_name, pattern)
        ):
            return False
        return all(labels.get(k) == v for k, v in self.selector.labels.items())


class RulesConfig(FrozenModel):
    default_cooldown: float = Field(60.0, ge=0)
    default_window: float = Field(30.0, gt=0)
    default_max_instances: int = Field(10, ge=1)
    policies: tuple[ConfiguredPolicy, ...] = Field(
        (), description="Policies for services selected by name or labels; first match wins."
    )


class HealingPolicy(FrozenModel):
    """How a failing container is recovered: restarts with exponential backoff (a crash-loop
    backoff), at most `budget` of them in `window`; past it one replacement, then ebbflow
    gives up and alerts."""

    action: Literal["restart", "none"] = "restart"
    backoff: float = Field(10.0, gt=0, description="Seconds before the first restart.")
    backoff_max: float = Field(300.0, gt=0, description="The backoff doubles up to this.")
    budget: int = Field(5, ge=0, description="Restarts per window before replacing.")
    window: float = Field(600.0, gt=0, description="Seconds a restart counts against the budget.")

    def delay(self, earlier_steps: int) -> float:
        # Past 2**64 every backoff is at its max, and larger powers overflow a float.
        return float(min(self.backoff * 2 ** min(earlier_steps, 64), self.backoff_max))


class HealingConfig(HealingPolicy):
    enabled: bool = Field(True, description="Recover failing containers at all.")


def _enable(*plugins: str) -> dict[str, dict[str, Any] | bool]:
    return {name: {} for name in plugins}


DEFAULT_INPUTS = _enable("containers", "node", "probes", "scrape")
DEFAULT_OUTPUTS = _enable("prometheus")


class ReconcileConfig(FrozenModel):
    """Keeping plain-engine services at their desired replica count."""

    enabled: bool = Field(True, description="Reconcile replica counts at all.")
    interval: float = Field(2.0, gt=0, description="Seconds between checks of every count.")
    grace: float = Field(
        10.0,
        ge=0,
        description="Seconds a count must stay off its desired value, with nothing else "
        "acting on the service, before ebbflow acts.",
    )
    redeploy_window: float = Field(
        30.0,
        ge=0,
        description="Seconds a replica removed or stopped by someone else is held before "
        "it counts as a manual scale-in (or, with every replica gone, a retirement): a new "
        "configuration of the service started within it makes it part of a redeploy, and "
        "the desired count stays. Cover compose's stop timeouts.",
    )
    fight_window: float = Field(
        60.0,
        gt=0,
        description="A replica ebbflow made that someone else removes within this many "
        "seconds of its creation, twice, is a fight: ebbflow pauses the service.",
    )


PROJECT_LABELS = ("com.docker.compose.project", "com.docker.stack.namespace")


class ScopeConfig(FrozenModel):
    """What this instance may act on. Outside it ebbflow still monitors (metrics, probes,
    policies shown) but never scales, heals or reconciles."""

    projects: tuple[str, ...] = Field(
        (), description="Globs on the compose project or Swarm stack; empty: any."
    )
    labels: dict[str, str] = Field(
        default_factory=dict, description="Labels a container must all carry, with values."
    )

    @property
    def everything(self) -> bool:
        return not self.projects and not self.labels

    def covers(self, labels: Mapping[str, str]) -> bool:
        if self.projects:
            project = next((labels[k] for k in PROJECT_LABELS if k in labels), None)
            if project is None or not any(fnmatch.fnmatchcase(project, p) for p in self.projects):
                return False
        return all(labels.get(k) == v for k, v in self.labels.items())

    def describe(self) -> str:
        parts = [f"projects {', '.join(self.projects)}"] if self.projects else []
        parts += [f"{k}={v}" for k, v in sorted(self.labels.items())]
        return " and ".join(parts) or "everything"


class LeaseConfig(FrozenModel):
    """Leadership among instances on the same engine and scope (ebbflow/lease.py)."""

    enabled: bool = Field(True, description="Hold a lease before acting (off: always act).")
    name: str = Field(
        "",
        pattern=r"^[A-Za-z0-9_.-]*$",
        description="Instances of one scope and name exclude each other; default: the scope.",
    )
    backend: Literal["engine", "swarm", "kafka"] = Field(
        "engine",
        description="Where the lease is kept: lock objects on the engine (one host), a "
        "Swarm config object in the Swarm's raft store (deciders on several nodes; "
        "ebbflow/lease_swarm.py), or none: the Kafka input's consumer group gives each "
        "decider the services of its partitions (ebbflow/partitions.py; needs inputs.kafka).",
    )
    period: float = Field(5.0, ge=1, description="Seconds of one lease epoch (engine).")
    grace: float = Field(
        1.0, ge=0, description="Seconds into an epoch before taking it over (engine)."
    )
    ttl: float = Field(
        30.0,
        ge=3,
        description="Seconds a Swarm lease lasts unrenewed before a standby takes it (swarm); "
        "renewed every ttl/6, it rides out a raft election (12 s measured on the lab).",
    )


class SupervisionConfig(FrozenModel):
    """How a crashed component is restarted (README: "Failure behaviour")."""

    backoff_initial: float = Field(1.0, gt=0, description="Seconds before the first restart.")
    backoff_max: float = Field(60.0, gt=0, description="The backoff doubles up to this.")
    reset_after: float = Field(
        60.0, gt=0, description="Seconds a component must run before its backoff starts over."
    )
    max_restarts: int = Field(
        10, ge=0, description="Crashes in a row (each within reset_after) before giving up."
    )


Role = Literal["all", "agent", "decider"]


class AppConfig(FrozenModel):
    role: Role = Field(
        "all",
        description="agent: the inputs that collect on this node, and the outputs (it "
        "publishes; no decision, no state file, no lease); decider: the inputs that receive "
        "pushed samples (remote write), the decision side and the outputs; all: everything.",
    )
    interval: float = Field(1.0, gt=0, description="Default collection interval, seconds.")
    state: Path = Field(Path("ebbflow.db"), description="SQLite file for decisions and cooldowns.")
    dry_run: bool = False
    log_level: str = "INFO"
    bus_capacity: int = Field(1024, ge=1)
    docker: DockerConfig = DockerConfig()
    rules: RulesConfig = RulesConfig()
    inputs: dict[str, dict[str, Any] | bool] = Field(default_factory=lambda: dict(DEFAULT_INPUTS))
    outputs: dict[str, dict[str, Any] | bool] = Field(default_factory=lambda: dict(DEFAULT_OUTPUTS))
    healing: HealingConfig = HealingConfig()
    reconcile: ReconcileConfig = ReconcileConfig()
    actuators: tuple[str, ...] = Field(
        ("docker", "swarm"),
        description="Actuator plugins; each service goes to the first that drives its kind.",
    )
    max_actions_per_minute: int = Field(
        30, ge=1, description="All actions together, scaling and healing: a storm brake."
    )
    supervision: SupervisionConfig = SupervisionConfig()
    container_labels: tuple[str, ...] = Field(
        (),
        description="Container labels exported on every container series as "
        "container_label_<key> (cAdvisor's naming), beside the compose and swarm ones; none "
        "by default. Environment variables never.",
    )
    scope: ScopeConfig = ScopeConfig()
    lease: LeaseConfig = LeaseConfig()


def env_overrides(environ: Mapping[str, str], sections: Iterable[str]) -> dict[str, Any]:
    """`EBBFLOW_OUTPUTS__PROMETHEUS__LISTEN=…` → {"outputs": {"prometheus": {"listen": …}}}.

    Values are read as YAML scalars, so `2`, `true` and `null` mean what they look like.
    Only variables naming a top-level key in `sections` count: the environment is shared
    with other tools (and ebbflow's own scripts), so `EBBFLOW_TEST_IMAGE` is not config.
    A wrong name below a known key is still an error.
    """
    known = set(sections)
    tree: dict[str, Any] = {}
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX):
            continue
        path = [part.lower() for part in key[len(ENV_PREFIX) :].split("__") if part]
        if not path or path[0] not in known:
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"environment: {key} nests under a value that is not a section")
        try:
            node[path[-1]] = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            node[path[-1]] = raw
    return tree


def merge(base: dict[str, Any], override: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in override.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


MAX_CONFIG_FILE = 4 << 20  # bytes: a config is kilobytes; more is a wrong path


def read_bounded(path: Path, limit: int, where: str) -> bytes:
    """A file the operator names, read up to `limit` bytes (a path to a device or a log
    file never fills the memory): larger is a ConfigError naming it, as is one that
    cannot be read."""
    try:
        with path.open("rb") as handle:
            data = handle.read(limit + 1)
    except OSError as err:
        raise ConfigError(f"{where}: cannot read {path}: {err.strerror or err}") from None
    if len(data) > limit:
        raise ConfigError(f"{where}: {path} is larger than {limit} bytes")
    return data


def load_config(
    path: Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> AppConfig:
    """Defaults, then the file, the environment and command-line overrides; the last word
    wins. Plugin sections merge like the rest: `inputs: {containers: false}` turns off that
    one input and keeps the other defaults (it used to replace the whole set)."""
    data: dict[str, Any] = {"inputs": dict(DEFAULT_INPUTS), "outputs": dict(DEFAULT_OUTPUTS)}
    where = "defaults"
    if path is not None:
        where = str(path)
        text = read_bounded(path, MAX_CONFIG_FILE, "config")
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError as err:
            raise ConfigError(f"{path}: not valid YAML: {err}") from None
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = merge(data, loaded)
    environ = os.environ if environ is None else environ
    data = merge(data, env_overrides(environ, AppConfig.model_fields))
    data = merge(data, overrides or {})
    config: AppConfig = validate(AppConfig, data, where)
    return config
