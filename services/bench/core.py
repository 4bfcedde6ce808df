"""Part 1: the lifecycle core alone, no I/O, one process: decode the leadflow.events records, apply
each event to its lead (`apply_event` with event_id dedup), encode the leadflow.lifecycle record.

Three ways of doing the same work, which must give the same bytes:
- `service`: what services/lifecycle runs: per round of up to `max_records` consumer records
  (built before timing, as aiokafka builds them) one `batch.decode_partition` with its
  `wire.EnvelopeDecoder` (a `Decoded` per record), then per record the domain (`LeadLog.apply`)
  and the lifecycle record as `batch.plan_round` makes it (`wire.LifecycleEncoder.splice`, else
  `encode`). This is the headline `core_events_per_s`.
- `codec`: the general-purpose path (AvroCodec/fastavro both ways), what replay or a Faust user
  with the codec would write.
- `batch`: the same wire reader and splice in one loop with no per-record objects
  (services/bench/fastcore.py): what the service's per-record structure costs.

Rates are events per second of CPU time of this one process (`time.process_time`), the best of a
few repeats: on a shared machine, wall time also counts the time other programs held the core.
The wall-clock rate is reported beside it.
"""
from __future__ import annotations

import cProfile
import gc
import io
import pstats
import time
from typing import Any, Callable, NamedTuple, Sequence

from services.bench.fastcore import ABLATIONS, BatchCore
from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.runtime import tune_gc
from services.lifecycle.batch import Decoded, decode_partition, decode_record, lifecycle_record
from services.lifecycle.domain import LeadLog
from services.lifecycle.service import LifecycleOptions
from services.lifecycle import wire as lifecycle_wire
from services.lifecycle.wire import EnvelopeDecoder, LifecycleEncoder


def service_codec(in_codec: AvroCodec, out_codec: AvroCodec) -> tuple[str, Callable, Callable]:
    """(name, decode(offset, message) -> Decoded, encode(transition, Decoded) -> bytes) as the
    lifecycle service in this tree does it: `batch.decode_record` with its wire decoder, and the
    lifecycle record as `batch.plan_round` makes it."""
    decoder = EnvelopeDecoder(in_codec)
    encoder = LifecycleEncoder(out_codec, in_codec)
    splice, encode_record = encoder.splice, encoder.encode

    def decode(offset: int, message: bytes) -> Decoded:
        return decode_record(decoder, offset, None, message)

    def encode(t, d: Decoded) -> bytes:
        value = d.value
        return splice(t, value) or encode_record(t, d.envelope, value)

    return ("wire" if decoder.fast and encoder.fast else "codec"), decode, encode


class _Record(NamedTuple):
    """What the service reads of an aiokafka ConsumerRecord."""
    offset: int
    key: bytes | None
    value: bytes


_rounds_cache: dict[int, tuple[Sequence[bytes], list[list[_Record]]]] = {}


def service_rounds(messages: Sequence[bytes]) -> list[list[_Record]]:
    """`messages` as the service gets them: consumer records (aiokafka builds them, outside the
    service path, so they are built once here, before any timing), in rounds of at most
    `max_records` (one getmany; the bench's log is one partition)."""
    cached = _rounds_cache.get(id(messages))
    if cached is not None and cached[0] is messages:
        return cached[1]
    size = LifecycleOptions().max_records
    records = [_Record(offset, None, m) for offset, m in enumerate(messages)]
    rounds = [records[i:i + size] for i in range(0, len(records), size)]
    _rounds_cache.clear()
    _rounds_cache[id(messages)] = (messages, rounds)
    return rounds


def make_variants(in_codec: AvroCodec, out_codec: AvroCodec) -> dict[str, Callable[[Sequence[bytes]], list[bytes]]]:
    def service(messages: Sequence[bytes]) -> list[bytes]:
        # What service._plan and batch.plan_round do per round: the partition's records decoded by
        # one decode_partition call, then per record the domain step (here LeadLog.apply: dedup +
        # state machine) and the splice, else encode with the envelope, inline as plan_round has it.
        rounds = service_rounds(messages)
        log = LeadLog()
        decoder = EnvelopeDecoder(in_codec)
        encoder = LifecycleEncoder(out_codec, in_codec)
        splice, encode_record, apply = encoder.splice, encoder.encode, log.apply
        out = []
        append = out.append
        for records in rounds:
            for d in decode_partition(decoder, records):
                t = apply(d.event)
                if t.version is not None:
                    value = d.value
                    append(splice(t, value) or encode_record(t, d.envelope, value))
        return out

    def codec(messages: Sequence[bytes]) -> list[bytes]:
        log = LeadLog()
        decode, encode, apply = in_codec.decode, out_codec.encode, log.apply
        out = []
        append = out.append
        for message in messages:
            envelope = decode(message)
            t = apply(event_from_avro(envelope))
            if t.version is not None:
                append(encode(lifecycle_record(t, envelope)))
        return out

    def batch(messages: Sequence[bytes]) -> list[bytes]:
        return BatchCore(in_codec, out_codec).run(messages)

    return {"service": service, "codec": codec, "batch": batch}


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    gc.collect()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    result = fn()
    return time.process_time() - cpu0, time.perf_counter() - wall0, result


def ablation(messages: Sequence[bytes], in_codec: AvroCodec, out_codec: AvroCodec, repeats: int) -> dict[str, Any]:
    """CPU microseconds per event of the batch loop with each ablation (ABLATIONS) in turn (runs
    interleaved, best of `repeats`): what the domain costs beside decoding and encoding."""
    names = ["all on", *ABLATIONS]
    best = {name: float("inf") for name in names}
    for _ in range(repeats):
        for name in names:
            core = BatchCore(in_codec, out_codec, ablate=() if name == "all on" else (name,))
            cpu, _w, _ = _timed(lambda: core.run(messages))
            best[name] = min(best[name], cpu)
    n = len(messages)
    out: dict[str, Any] = {name: round(best[name] / n * 1e6, 3) for name in names}
    out["what"] = dict(ABLATIONS)
    return out


def stage_breakdown(messages: Sequence[bytes], in_codec: AvroCodec, out_codec: AvroCodec) -> dict[str, float]:
    """CPU microseconds per event of each step of the service path, timed one step at a time."""
    n = len(messages)
    _name, _decode, encode = service_codec(in_codec, out_codec)
    rounds = service_rounds(messages)
    decoder = EnvelopeDecoder(in_codec)
    cpu, _w, decoded = _timed(lambda: [d for records in rounds for d in decode_partition(decoder, records)])
    out = {"decode_partition": cpu}
    log = LeadLog()
    cpu, _w, transitions = _timed(lambda: [log.apply(d.event) for d in decoded])
    out["apply_event_with_dedup"] = cpu
    cpu, _w, _ = _timed(lambda: [encode(t, d) for t, d in zip(transitions, decoded) if t.version is not None])
    out["encode_lifecycle_record"] = cpu
    codec_decode = in_codec.decode
    cpu, _w, envelopes = _timed(lambda: [codec_decode(m) for m in messages])
    out["fastavro_decode (codec path)"] = cpu
    cpu, _w, _ = _timed(lambda: [event_from_avro(e) for e in envelopes])
    out["event_from_avro (codec path)"] = cpu
    codec_encode = out_codec.encode
    cpu, _w, _ = _timed(lambda: [codec_encode(lifecycle_record(t, e)) for t, e in zip(transitions, envelopes)
                                 if t.version is not None])
    out["fastavro_encode (codec path)"] = cpu
    return {k: round(v / n * 1e6, 3) for k, v in out.items()}


def profile(fn: Callable[[], Any], top: int = 12) -> list[dict[str, Any]]:
    """cProfile of one run: the functions with the most own time, as shares of the total."""
    prof = cProfile.Profile()
    prof.enable()
    fn()
    prof.disable()
    stats = pstats.Stats(prof, stream=io.StringIO())
    total = stats.total_tt or 1.0
    rows = []
    for (filename, line, name), (_cc, ncalls, tottime, cumtime, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        short = filename.split("/services/", 1)[-1] if "/services/" in filename else filename.rsplit("/", 1)[-1]
        rows.append({"function": f"{short}:{line}({name})", "calls": ncalls,
                     "own_share": round(tottime / total, 3), "cumulative_share": round(cumtime / total, 3)})
    rows.sort(key=lambda r: r["own_share"], reverse=True)
    return rows[:top]


def measure_core(messages: Sequence[bytes], repeats: int = 3, with_profile: bool = True) -> dict[str, Any]:
    """Run every variant `repeats` times over `messages`; check they agree byte for byte."""
    previous_gc = tune_gc()   # as the lifecycle service runs (services/common/runtime.py)
    try:
        return _measure_core(messages, repeats, with_profile)
    finally:
        gc.set_threshold(*previous_gc)


def _measure_core(messages: Sequence[bytes], repeats: int, with_profile: bool) -> dict[str, Any]:
    in_codec, out_codec = AvroCodec("event_envelope"), AvroCodec("lifecycle_record")
    variants = make_variants(in_codec, out_codec)
    service_rounds(messages)   # the consumer records, built before any timing
    n = len(messages)
    results: dict[str, dict[str, Any]] = {}
    outputs: dict[str, list[bytes]] = {}
    for name, fn in variants.items():
        best_cpu = best_wall = float("inf")
        for _ in range(repeats):
            cpu, wall, out = _timed(lambda: fn(messages))
            best_cpu, best_wall = min(best_cpu, cpu), min(best_wall, wall)
            outputs[name] = out
        results[name] = {
            "events_per_cpu_s": round(n / best_cpu, 1) if best_cpu > 0 else None,
            "events_per_wall_s": round(n / best_wall, 1) if best_wall > 0 else None,
            "us_per_event_cpu": round(best_cpu / n * 1e6, 3),
        }
    reference = outputs["service"]
    identical = {name: out == reference for name, out in outputs.items()}
    doc: dict[str, Any] = {
        "service_path": service_codec(in_codec, out_codec)[0],
        # the mypyc build of make install (services/lifecycle/compiled_guard.py), or the .py sources
        "compiled_build": not (lifecycle_wire.__file__ or "").endswith(".py"),
        "gc_thresholds": list(gc.get_threshold()),
        "events": n,
        "records_out": len(reference),
        "repeats": repeats,
        "variants": results,
        "identical_output": identical,
        "stage_us_per_event": stage_breakdown(messages, in_codec, out_codec),
    }
    base = results["service"]["events_per_cpu_s"]
    if base:
        doc["speedup_vs_service"] = {name: round(r["events_per_cpu_s"] / base, 3) for name, r in results.items()
                                     if r["events_per_cpu_s"]}
    doc["batch_ablation_us_per_event"] = ablation(messages, in_codec, out_codec, repeats)
    if with_profile:
        doc["profile_service"] = profile(lambda: variants["service"](messages))
        doc["profile_batch"] = profile(lambda: variants["batch"](messages))
    return doc
