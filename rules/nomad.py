"""A reference of Nomad Autoscaler's target-value strategy at its documented defaults,
under the replay model (replay.py), for `ebbflow replay` and benchmarks/replay.

Sources: hashicorp/nomad-autoscaler `agent/config/config.go` (default evaluation interval
10 s, default policy cooldown 5 min), `policy/policy.go` (default query window 1 min) and
`plugins/builtin/strategy/target-value/plugin.go`:
- every 10 s, the metric is the mean CPU of the running (here: ready) replicas over the
  last minute;
- factor = metric / target; within a threshold of 0.01 of 1 nothing happens;
- otherwise the new count is ⌈count × factor⌉, count being the group's count (replicas
  still starting included);
- after any scaling action the policy cools down for 5 min, in both directions;
- min and max replicas as the policy's.
"""

from __future__ import annotations

import math
from collections import deque

EVALUATION_INTERVAL = 10.0
QUERY_WINDOW = 60.0
COOLDOWN = 300.0
THRESHOLD = 0.01


class NomadTargetValue:
    def __init__(self, target: float = 70.0, min_replicas: int = 1, max_replicas: int = 10) -> None:
        self.target = target
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.samples: deque[tuple[float, float]] = deque()
        self.next_evaluation: float | None = None
        self.cooldown_until = -math.inf

    def observe(
        self, t: float, cpu_percent: float | None, ready: int, total: int, demand: float
    ) -> list[tuple[int, str]]:
        if cpu_percent is not None:
            self.samples.append((t, cpu_percent))
        while self.samples and self.samples[0][0] <= t - QUERY_WINDOW:
            self.samples.popleft()
        if self.next_evaluation is None:
            self.next_evaluation = t
        if t < self.next_evaluation:
            return []
        self.next_evaluation = t + EVALUATION_INTERVAL
        if t < self.cooldown_until or not self.samples:
            return []
        metric = sum(v for _, v in self.samples) / len(self.samples)
        factor = metric / self.target
        if 1 - THRESHOLD < factor < 1 + THRESHOLD:
            return []
        desired = math.ceil(total * factor - 1e-9)
        desired = max(self.min_replicas, min(self.max_replicas, desired))
        if desired == total:
            return []
        self.cooldown_until = t + COOLDOWN
        return [
            (
                desired,
                f"nomad target-value: {total}→{desired}, cpu {metric:.1f}% over "
                f"{QUERY_WINDOW:g}s vs target {self.target:g}%",
            )
        ]
