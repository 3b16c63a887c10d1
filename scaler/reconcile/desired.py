"""A service's desired replica count on a plain engine, the way Swarm mode keeps a
service's tasks: ebbflow's last decision for it that was carried out, else the count its
labels declare (`aliyun.scale`, `ebbflow.scale.initial_replicas`); a declared count that
changes while ebbflow watches wins over older decisions; a manual scale-in by someone else
is followed within the policy's bounds."""

from __future__ import annotations

from dataclasses import dataclass, field

from ebbflow.model import ServiceKey
from ebbflow.policy import Policy


@dataclass
class Tracked:
    """One service as the reconciler keeps it: its desired count and the grace period."""

    key: ServiceKey
    policy: Policy | None = None  # the catalog's; None: none or invalid
    declared: int | None = None
    decided: int | None = None  # the target of its last decision carried out
    operator: int | None = None  # the count someone else left it at by hand, if later
    below_min_said: bool = False
    off_since: float | None = None  # off its count, with nothing else acting, since then
    tries: int = 0  # reconcile decisions for the current mismatch
    reported: tuple[int, int] | None = None  # (running, desired) last decided on
    configuration: str = ""  # the defining replica's (services.configuration)
    roll_blocked: str = ""  # a configuration whose copies exited at once: not rolled onto
    roll_reported: int | None = None  # outdated copies last rolled (or reported, dry run)
    persisted: int | None = None  # the desired count last written to the state file
    seen: set[str] = field(default_factory=set)  # ids of replicas seen: a start is a restart

    def desired(self) -> int | None:
        if self.policy is None:
            return None
        if self.operator is not None:  # a manual scale-in, within the policy's bounds
            return max(self.policy.min_replicas, min(self.policy.max_replicas, self.operator))
        if not self.policy.rules:
            return self.declared  # a fixed count: nothing else decides it
        target = self.decided if self.decided is not None else self.declared
        if target is None:
            return None
        return max(self.policy.min_replicas, min(self.policy.max_replicas, target))

    def follow_policy(self, policy: Policy | None) -> bool:
        """The catalog's policy for it; True when the declared count changed (a new
        declaration overrides older decisions and a manual scale-in)."""
        self.policy = policy
        declared = policy.initial_replicas if policy else None
        changed = declared != self.declared and self.declared is not None
        if changed:
            self.decided = self.operator = None
        self.declared = declared
        return changed
