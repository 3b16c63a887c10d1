"""A reference of AWS target tracking (Application Auto Scaling, as for an ECS service) at
its documented defaults, under the replay model (replay.py), for `ebbflow replay` and
benchmarks/replay.

Sources: the Application Auto Scaling user guide, "Target tracking scaling policies", and
`TargetTrackingScalingPolicyConfiguration` (ScaleInCooldown, ScaleOutCooldown: 300 s):
- the metric is CloudWatch's 1-minute average of the service's CPU (of the replicas that
  serve: an instance in warm-up does not count);
- the policy's alarms: out when the last 3 datapoints are all above the target, in when
  the last 15 are all below 90 % of it (it scales in only well below target, and slowly);
- the new capacity is proportional, ⌈capacity × metric / target⌉, from the last datapoint;
- scale-out is not held by a cooldown when it asks for more than the capacity already
  ordered (the capacity still starting counts toward it); scale-in waits 300 s after the
  last scale-in and after the last scale-out (a scale-out's cooldown blocks scale-in);
- min and max replicas as the policy's.
"""

from __future__ import annotations

import math

PERIOD = 60.0  # seconds per CloudWatch datapoint
OUT_DATAPOINTS = 3
IN_DATAPOINTS = 15
IN_BELOW = 0.9  # of the target
SCALE_IN_COOLDOWN = 300.0
SCALE_OUT_COOLDOWN = 300.0


class AWSTargetTracking:
    def __init__(self, target: float = 70.0, min_replicas: int = 1, max_replicas: int = 10) -> None:
        self.target = target
        self.min_replicas, self.max_replicas = min_replicas, max_replicas
        self.period_start: float | None = None
        self.period: list[float] = []  # this minute's CPU points
        self.datapoints: list[float] = []  # the closed minutes' averages, newest last
        self.last_out = -math.inf
        self.last_in = -math.inf

    def observe(
        self, t: float, cpu_percent: float | None, ready: int, total: int, demand: float
    ) -> list[tuple[int, str]]:
        if self.period_start is None:
            self.period_start = t
        closed = False
        if t >= self.period_start + PERIOD:
            if self.period:
                self.datapoints = [*self.datapoints[-(IN_DATAPOINTS - 1) :], mean(self.period)]
            self.period, self.period_start, closed = [], t, True
        if cpu_percent is not None:
            self.period.append(cpu_percent)
        if not closed or not self.datapoints:
            return []
        metric = self.datapoints[-1]
        desired = math.ceil(total * metric / self.target - 1e-9)
        desired = max(self.min_replicas, min(self.max_replicas, desired))
        recent = self.datapoints[-OUT_DATAPOINTS:]
        if len(recent) == OUT_DATAPOINTS and min(recent) > self.target and desired > total:
            self.last_out = t
            return [(desired, self._why("out", total, desired, metric))]
        calm = self.datapoints[-IN_DATAPOINTS:]
        if (
            len(calm) == IN_DATAPOINTS
            and max(calm) < IN_BELOW * self.target
            and desired < total
            and t - self.last_in >= SCALE_IN_COOLDOWN
            and t - self.last_out >= SCALE_OUT_COOLDOWN
        ):
            self.last_in = t
            return [(desired, self._why("in", total, desired, metric))]
        return []

    def _why(self, direction: str, total: int, desired: int, metric: float) -> str:
        return (
            f"aws target tracking ({direction}): {total}→{desired}, cpu {metric:.1f}% "
            f"over {PERIOD:g}s vs target {self.target:g}%"
        )


def mean(values: list[float]) -> float:
    return sum(values) / len(values)
