from __future__ import annotations

import gc

from services.common.runtime import STREAM_GC_THRESHOLDS, tune_gc


def test_tune_gc_sets_the_stream_thresholds_and_returns_the_previous_ones():
    before = gc.get_threshold()
    try:
        assert tune_gc() == before
        assert gc.get_threshold() == STREAM_GC_THRESHOLDS
        assert STREAM_GC_THRESHOLDS[0] > 700          # fewer young collections than CPython's default
        assert tune_gc((700, 10, 10)) == STREAM_GC_THRESHOLDS
    finally:
        gc.set_threshold(*before)
