"""A faithful reference of Kubernetes' HPA (autoscaling/v2, default behaviour) for CPU
utilisation, under the replay model (replay.py): what `ebbflow replay` and the benchmark in
benchmarks/replay compare ebbflow's decisions with.

What it follows, from the HPA controller (replica_calculator.go, horizontal.go):
- a sync every 15 s; the metric is the mean CPU utilisation of ready pods over the last
  sync period (metrics-server's window);
- tolerance 0.1: |ratio − 1| ≤ 0.1 keeps the current count; otherwise
  desired = ceil(ratio × ready pods);
- scaling up while pods are still starting: those pods count as 0 % and the ratio is
  recomputed; if that flips or falls within tolerance, no change;
- scale-down stabilisation 300 s: the highest recommendation of the last 300 s;
- scale-up policies 100 % and 4 pods per 15 s, the larger wins; scale-down 100 % per 15 s;
- min/max replicas.
"""

from __future__ import annotations

import math
from collections import deque


class HPA:
    def __init__(
        self,
        target: float = 70.0,
        min_replicas: int = 1,
        max_replicas: int = 10,
        tolerance: float = 0.1,
        sync: float = 15.0,
        stabilization: float = 300.0,
    ) -> None:
        self.target, self.tolerance, self.sync = target, tolerance, sync
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.stabilization = stabilization
        self.samples: deque[tuple[float, float]] = deque()  # (t, cpu of ready pods)
        self.recommendations: deque[tuple[float, int]] = deque()
        self.next_sync: float | None = None

    def _calculate(self, utilisation: float, ready: int, total: int) -> int:
        ratio = utilisation / self.target
        unready = total - ready
        if not (unready > 0 and ratio > 1.0):
            if abs(1.0 - ratio) <= self.tolerance:
                return total
            return math.ceil(ratio * ready)
        new_ratio = utilisation * ready / (self.target * total)  # starting pods at 0 %
        if abs(1.0 - new_ratio) <= self.tolerance or new_ratio < 1.0:
            return total
        return max(total, math.ceil(new_ratio * total))

    def observe(
        self, t: float, cpu_percent: float | None, ready: int, total: int, demand: float
    ) -> list[tuple[int, str]]:
        if cpu_percent is not None:
            self.samples.append((t, cpu_percent))
        while self.samples and self.samples[0][0] <= t - self.sync:
            self.samples.popleft()
        if self.next_sync is None:
            self.next_sync = t
        if t < self.next_sync:
            return []
        self.next_sync = t + self.sync
        if not self.samples or ready == 0:
            return []
        utilisation = sum(v for _, v in self.samples) / len(self.samples)
        desired = self._calculate(utilisation, ready, total)
        self.recommendations.append((t, desired))
        while self.recommendations[0][0] <= t - self.stabilization:
            self.recommendations.popleft()
        if desired < total:  # scale-down stabilisation: the highest recent recommendation
            desired = min(total, max(r for _, r in self.recommendations))
        desired = min(desired, max(2 * total, total + 4))  # scale-up policies per period
        desired = max(self.min_replicas, min(self.max_replicas, desired))
        if desired == total:
            return []
        return [
            (desired, f"hpa: {total}→{desired}, cpu {utilisation:.1f}% vs target {self.target:g}%")
        ]
