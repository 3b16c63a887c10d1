"""node_exporter's timex collector: the kernel's clock discipline, read with adjtimex(2)
(modes 0: read only), scaled as node_exporter scales it."""

from __future__ import annotations

import ctypes
import ctypes.util
from typing import Any

from .source import Paths, Row

TIME_ERROR = 5  # adjtimex's answer while the clock is not synchronised
STA_NANO = 0x2000
PPM16 = 1_000_000.0 * 65536.0  # freq, ppsfreq and stabil: ppm with a 16-bit fraction


class Timex(ctypes.Structure):
    _fields_ = [
        ("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
        ("constant", ctypes.c_long), ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long), ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("padding", ctypes.c_int * 11),
    ]  # fmt: skip


def read_timex() -> tuple[int, Any]:
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    timex = Timex()
    state = libc.adjtimex(ctypes.byref(timex))
    if state < 0:
        raise OSError(ctypes.get_errno(), "adjtimex failed")
    return state, timex


def collect(paths: Paths) -> list[Row]:
    state, t = read_timex()
    divisor = 1e9 if t.status & STA_NANO else 1e6
    values: list[tuple[str, float, str, str]] = [
        ("node_timex_sync_status", float(state != TIME_ERROR), "gauge",
         "Is clock synchronized to a reliable server (1 = yes, 0 = no)."),
        ("node_timex_offset_seconds", t.offset / divisor, "gauge",
         "Time offset in between local system and reference clock."),
        ("node_timex_frequency_adjustment_ratio", 1 + t.freq / PPM16, "gauge",
         "Local clock frequency adjustment."),
        ("node_timex_maxerror_seconds", t.maxerror / 1e6, "gauge", "Maximum error in seconds."),
        ("node_timex_estimated_error_seconds", t.esterror / 1e6, "gauge",
         "Estimated error in seconds."),
        ("node_timex_status", float(t.status), "gauge", "Value of the status array bits."),
        ("node_timex_loop_time_constant", float(t.constant), "gauge",
         "Phase-locked loop time constant."),
        ("node_timex_tick_seconds", t.tick / 1e6, "gauge", "Seconds between clock ticks."),
        ("node_timex_pps_frequency_hertz", t.ppsfreq / PPM16, "gauge",
         "Pulse per second frequency."),
        ("node_timex_pps_jitter_seconds", t.jitter / divisor, "gauge", "Pulse per second jitter."),
        ("node_timex_pps_shift_seconds", float(t.shift), "gauge",
         "Pulse per second interval duration."),
        ("node_timex_pps_stability_hertz", t.stabil / PPM16, "gauge",
         "Pulse per second stability, average of recent frequency changes."),
        ("node_timex_pps_jitter_total", float(t.jitcnt), "counter",
         "Pulse per second count of jitter limit exceeded events."),
        ("node_timex_pps_calibration_total", float(t.calcnt), "counter",
         "Pulse per second count of calibration intervals."),
        ("node_timex_pps_error_total", float(t.errcnt), "counter",
         "Pulse per second count of calibration errors."),
        ("node_timex_pps_stability_exceeded_total", float(t.stbcnt), "counter",
         "Pulse per second count of stability limit exceeded events."),
        ("node_timex_tai_offset_seconds", float(t.tai), "gauge",
         "International Atomic Time (TAI) offset."),
    ]  # fmt: skip
    return [Row(name, value, kind, help_text) for name, value, kind, help_text in values]  # type: ignore[arg-type]
