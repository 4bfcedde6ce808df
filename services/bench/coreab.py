"""One run of the core's service path in a process of its own, for A/B runs of two builds:

    python -m services.bench.coreab [EVENTS] [REPEATS]          # the compiled build, if fresh
    LEADFLOW_COMPILED=0 python -m services.bench.coreab ...      # the .py sources

Prints one JSON line: whether the compiled build ran, events per CPU-second (best of REPEATS,
under the service's gc setting) and a hash of the output records, which two builds must share.
Run the two alternately, several times: on a shared machine a single pair says little.
"""
from __future__ import annotations

import gc
import hashlib
import json
import sys
import time

from services.bench.core import make_variants, service_rounds
from services.bench.dataset import build_dataset
from services.common.avro_codec import AvroCodec
from services.common.runtime import tune_gc
from services.lifecycle import wire


def main(argv: list[str]) -> None:
    events = int(argv[0]) if argv else 200_000
    repeats = int(argv[1]) if len(argv) > 1 else 5
    messages = [m for _key, m in build_dataset(events, seed=7).messages[:events]]
    tune_gc()
    service = make_variants(AvroCodec("event_envelope"), AvroCodec("lifecycle_record"))["service"]
    service_rounds(messages)   # the consumer records, built before timing
    best, out = float("inf"), []
    for _ in range(repeats):
        gc.collect()
        cpu0 = time.process_time()
        out = service(messages)
        best = min(best, time.process_time() - cpu0)
    print(json.dumps({"compiled": not (wire.__file__ or "").endswith(".py"), "events": events,
                      "events_per_cpu_s": round(events / best), "us_per_event": round(best / events * 1e6, 3),
                      "output_sha256": hashlib.sha256(b"".join(out)).hexdigest()[:16]}))


if __name__ == "__main__":
    main(sys.argv[1:])
