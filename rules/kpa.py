"""A reference of Knative's Pod Autoscaler (KPA) at its documented defaults, under the
replay model (replay.py), for `ebbflow replay` and benchmarks/replay to compare with.

Sources: knative/serving `config/core/configmaps/autoscaler.yaml` (the defaults) and
`pkg/autoscaler/scaling/autoscaler.go` (`Scale`):
- a decision every 2 s (the autoscaler's tick);
- the metric is the service's total load, KPA's concurrency: the requests in flight,
  queued ones included (the queue-proxy and the activator count them), so it sees demand
  past what the replicas serve; here the demand in cores. It is averaged per second over
  a 60 s stable window and a 6 s panic window (`panic-window-percentage: 10`), over the
  seconds with a replica ready (none: no metric);
- the target per replica is its capacity × `container-concurrency-target-percentage: 70`
  (here the policy's CPU target: one replica serves one core);
- desired = ⌈average / target⌉ for each window, clamped to
  [⌊ready / max-scale-down-rate 2⌋, ⌈ready × max-scale-up-rate 1000⌉];
- panic: entered when the panic window's desired count is at least
  `panic-threshold-percentage: 200` % of the ready count; while panicking, the count is the
  larger of the two windows' and never goes down; panic ends once it has not been over the
  threshold for a whole stable window (60 s);
- `scale-down-delay: 0s`; min and max replicas as the policy's (KPA's own minimum is 0,
  scale to zero, which the replay model does not have).
"""

from __future__ import annotations

import math
from collections import deque

TICK = 2.0  # seconds between decisions
STABLE_WINDOW = 60.0
PANIC_WINDOW = 6.0  # 10 % of the stable window
PANIC_THRESHOLD = 2.0  # 200 %
MAX_SCALE_UP_RATE = 1000.0
MAX_SCALE_DOWN_RATE = 2.0


class KPA:
    def __init__(self, target: float = 70.0, min_replicas: int = 1, max_replicas: int = 10) -> None:
        self.target = target
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.load: deque[tuple[float, float]] = deque()  # (t, cores in use)
        self.next_tick: float | None = None
        self.panic_since: float | None = None  # the last time it was over the threshold
        self.max_panic_pods = 0

    def _average(self, t: float, window: float) -> float | None:
        points = [v for at, v in self.load if at > t - window]
        return sum(points) / len(points) if points else None

    def observe(
        self, t: float, cpu_percent: float | None, ready: int, total: int, demand: float
    ) -> list[tuple[int, str]]:
        if cpu_percent is not None:
            self.load.append((t, demand))
        while self.load and self.load[0][0] <= t - STABLE_WINDOW:
            self.load.popleft()
        if self.next_tick is None:
            self.next_tick = t
        if t < self.next_tick:
            return []
        self.next_tick = t + TICK
        stable, panic = self._average(t, STABLE_WINDOW), self._average(t, PANIC_WINDOW)
        if stable is None or panic is None:
            return []
        per_replica = self.target / 100  # cores a replica serves at the target
        ready_pods = max(1, ready)
        up_limit = math.ceil(MAX_SCALE_UP_RATE * ready_pods)
        down_limit = math.floor(ready_pods / MAX_SCALE_DOWN_RATE)
        wanted_stable = math.ceil(stable / per_replica - 1e-9)
        wanted_panic = math.ceil(panic / per_replica - 1e-9)
        over = wanted_panic / ready_pods >= PANIC_THRESHOLD
        if over:
            self.panic_since = t
        elif self.panic_since is not None and t - self.panic_since > STABLE_WINDOW:
            self.panic_since, self.max_panic_pods = None, 0
        desired = min(max(wanted_stable, down_limit), up_limit)
        mode = "stable"
        if self.panic_since is not None:
            mode = "panic"
            desired = max(desired, min(max(wanted_panic, down_limit), up_limit))
            self.max_panic_pods = max(self.max_panic_pods, desired)
            desired = self.max_panic_pods  # no scale-down while panicking
        desired = max(self.min_replicas, min(self.max_replicas, desired))
        if desired == total:
            return []
        return [
            (
                desired,
                f"kpa ({mode}): {total}→{desired}, load {stable:.2f} cores over "
                f"{STABLE_WINDOW:g}s, {panic:.2f} over {PANIC_WINDOW:g}s",
            )
        ]
