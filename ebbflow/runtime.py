"""The Python runtime set up for a long life: what `ebbflow run` changes in the garbage
collector and in glibc's allocator, each measured (benchmarks/README.md, "Where an idle
`ebbflow run` spends its time").

Only `ebbflow run` calls these: a test process builds many apps and keeps the defaults.
"""

from __future__ import annotations

import ctypes
import gc

# What start-up built (modules, configuration, parts, the first inventory) is kept for the
# whole life: some 75,000 objects that every full collection walked again (67-72 ms every
# minute or so at 100 containers: a tenth of the idle CPU, and as long a stall of the
# loop). Once start-up has settled they are moved out of the collector's sight
# (`gc.freeze`, as the gc docs advise for long-running servers).
SETTLED_AFTER = 30.0
# The young generation is collected every 10,000 allocations rather than 700: what a
# cycle allocates is freed by reference counts, and collecting it every few seconds cost
# 0.2-0.3 ms a second for nothing.
YOUNG_THRESHOLD = 10_000

# glibc's mallopt parameters (malloc.h).
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
# A buffer this large or larger is mapped, and given back when freed. glibc's own
# threshold rises to the largest buffer freed so far, after which each scrape's 7 MB text
# (1,000 containers) was taken from the heap and kept there.
MMAP_THRESHOLD = 128 * 1024
# The worker threads (the collection cycle, a scrape's gzip) share two arenas instead of
# one each, which kept the freed memory of the last gzip.
ARENAS = 2


def tune_collector() -> None:
    gc.set_threshold(YOUNG_THRESHOLD, *gc.get_threshold()[1:])


def settled() -> None:
    """Start-up is over: what it built is frozen out of the collector's sight."""
    gc.freeze()


def tune_allocator() -> bool:
    """Big buffers mapped and given back, and two arenas. True when glibc took both (on
    another C library there is no `mallopt`, and nothing changes)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENAS))
