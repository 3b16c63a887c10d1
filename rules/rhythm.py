"""Peaks that recur: a service whose load comes back in short peaks, again and again,
keeps the capacity it ordered for them from one to the next, and only while they recur.

Following each short peak is the worst of both: capacity ordered for it arrives as it
ends (at start-ups near its length), is given back, and is ordered again at the next one,
two reversals a peak. HPA avoids that by holding its highest recommendation for 5 minutes
on every load, which costs replica seconds wherever the load has no peaks. Here the hold
is as long as the peaks' own rhythm, and there is none without one.

A peak is a short run of points well above the base load, or saturated (the replicas
near 100 % hide how far above it is). The base is the median of the last RHYTHM_BASE
seconds and its noise the median absolute deviation around it: a peak is a minority of
the points, so neither moves with it, and a noisy load never passes for peaks. Once a
peak has come back within RECUR_GAP of the one before, the peaks are a rhythm until one
fails to come within RECUR_SLACK times the rhythm's longest gap: meanwhile what the
highest of them needs is held (ServiceState.rhythm_need, gate stage 5).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from .window import RingWindow

# Seconds of load whose median is the base: several periods of the peaks held, so they
# stay a minority of its points.
RHYTHM_BASE = 300.0
PEAK_RISE = 0.3  # a peak's points are at least 30 % above the base...
PEAK_NOISE_Z = 4.0  # ... and 4 robust σ: a normal point passes one time in 30,000
MAD_SIGMA = 1.4826  # σ per median absolute deviation, for normal noise
PEAK_MIN_SECONDS = 2.0  # a peak lasts: one noisy reading (or a burst of them) is not one
PEAK_QUIET = 5.0  # seconds below the threshold that end a peak
# A peak is short: at most this long, or this many start-ups. A longer one is a change of
# load (a square wave's level), which capacity ordered for it serves: it is followed.
PEAK_LONGEST = 120.0
PEAK_LONGEST_STARTUPS = 3.0
# Peaks recur when RECUR_PEAKS of them each came within RECUR_GAP of the one before:
# more often than the one reversal per 10 minutes a steady service may make. Two, not
# three: a hold that turns out wrong costs 1.5 gaps of capacity once, and on every
# recurring trace of benchmarks/replay waiting for a third peak cost two more reversals
# and a peak's violations (at 2-60 s start-ups).
RECUR_GAP = 600.0
RECUR_PEAKS = 2
RECUR_SLACK = 1.5  # the hold spans 1.5 × the longest gap: a late peak is still expected
KEPT_PEAKS = 8


@dataclass
class Rhythm:
    """The peaks of one rule's load (replicas at target, per evaluation)."""

    peaks: list[tuple[float, float]] = field(default_factory=list)  # (start, end), newest last
    started: float | None = None  # the peak under way: its first point above
    last_above: float = 0.0  # ... and its last

    def observe(self, window: RingWindow, now: float, horizon: float, saturated: bool) -> None:
        """Add the window's newest point; `saturated`: the replicas are near 100 %, so the
        point shows less than the load (a peak's height is hidden from a service that
        cannot start capacity within it), and counts as above the base."""
        _, values = window.since(now - RHYTHM_BASE)
        if values.size < 10:
            return
        base = float(np.median(values))
        noise = MAD_SIGMA * float(np.median(np.abs(values - base)))
        threshold = base + max(PEAK_RISE * base, PEAK_NOISE_Z * noise)
        if values[-1] > threshold or saturated:
            if self.started is None:
                self.started = now
            self.last_above = now
            return
        if self.started is None or now - self.last_above < PEAK_QUIET:
            return
        longest = max(PEAK_LONGEST, PEAK_LONGEST_STARTUPS * horizon)
        if PEAK_MIN_SECONDS <= self.last_above - self.started <= longest:
            self.peaks = [*self.peaks[-(KEPT_PEAKS - 1) :], (self.started, self.last_above)]
        self.started = None

    def hold(self, now: float) -> float:
        """Seconds the hold spans while the peaks recur; 0 when they do not. The run is
        the newest peaks each within RECUR_GAP of the one before; its longest gap sets
        the span, so a rhythm that varies is held across its slowest beat."""
        starts = [start for start, _ in self.peaks]
        run, longest = 1, 0.0
        for before, after in reversed(list(itertools.pairwise(starts))):
            if after - before > RECUR_GAP:
                break
            run, longest = run + 1, max(longest, after - before)
        if run < RECUR_PEAKS or now - starts[-1] > RECUR_SLACK * longest:
            return 0.0
        return RECUR_SLACK * longest
