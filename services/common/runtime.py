"""Process settings the stream services share, applied by their `main()` (never at import)."""
from __future__ import annotations

import gc

# CPython collects its youngest generation every 700 container allocations. A lifecycle round
# holds up to 5,000 decoded records at once, so the default runs a collection every few records,
# each walking the young objects, and the full collections walk every cached lead. With 10,000
# the service path costs 7.4 instead of 9.1 µs CPU per event (`leadflow bench --parts core`,
# docs/performance.md). Collections still run: reference cycles are freed, memory stays bounded.
STREAM_GC_THRESHOLDS = (10_000, 10, 10)


def tune_gc(thresholds: tuple[int, int, int] = STREAM_GC_THRESHOLDS) -> tuple[int, int, int]:
    """Set the collector's thresholds; returns the previous ones (to restore them)."""
    previous = gc.get_threshold()
    gc.set_threshold(*thresholds)
    return previous
