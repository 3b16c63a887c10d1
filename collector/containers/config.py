"""Options of the containers input."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from ebbflow.config import FrozenModel, Role

# Dynamic housekeeping's longest interval when `max_interval` is not set, by role.
DECIDING_MAX_INTERVAL = 15.0  # role all: this process's catalog knows every policy
AGENT_MAX_INTERVAL = 8.0  # an agent: a decider elsewhere reads what it sends


class ContainersConfig(FrozenModel):
    interval: float | None = Field(None, gt=0, description="Seconds; default: the app interval.")
    timeout: float = Field(5.0, gt=0, description="Seconds allowed for one cycle.")
    max_interval: float | None = Field(
        None,
        ge=0,
        description="Dynamic housekeeping, as cAdvisor's: a container whose CPU, memory, I/O "
        "and network have not changed since its last read is read again after twice as long, "
        "up to this many seconds (cAdvisor's max_housekeeping_interval, 60 s there); one that "
        "changed, one a policy reads and a new one are read every cycle. 0: every container "
        "every cycle. Default: 15 s where this process decides on what it reads (role all: "
        "every policy is known here, so what one reads is read every cycle; a Prometheus "
        "at its default 15 s scrape sees each idle series renewed between two scrapes); "
        "8 s on an agent, under the 10 s a replica's value is fresh for the rules, so a "
        "decider whose policies the agent does not know (a config policy) never reads an "
        "idle replica as unseen.",
    )
    every_cycle_labels: tuple[str, ...] = Field(
        (),
        description="Label keys whose containers are read every cycle whatever their stats do "
        "(e.g. the ones a 1 s dashboard shows).",
    )
    cgroup_root: Path = Path("/sys/fs/cgroup")
    proc_root: Path = Path("/proc")

    def longest_interval(self, role: Role) -> float:
        if self.max_interval is not None:
            return self.max_interval
        return DECIDING_MAX_INTERVAL if role == "all" else AGENT_MAX_INTERVAL
