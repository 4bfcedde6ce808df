"""After a fault run, from outside: PostgreSQL and the topics against what was accepted and what
`leadflow replay` says the accepted events mean.

- lost: an accepted event_id not in lead_events, or a stored (lead_id, version) never published
  on leadflow.lifecycle;
- duplicated: an event_id stored more than once, a (lead_id, version) published more than once,
  or an event stored that was never accepted;
- out of order: a lead whose stored versions do not follow its accepted order, or a
  (lead_id, version) published after a later version of its lead;
- mismatches: clocks and judged windows in sla_clocks / sla_windows whose final outcome differs
  from `leadflow replay --until <until>` over the accepted events (sla, lead_id, scope, outcome,
  started_at, due_at, stopped_at, attempts/required; windows: count, target, fit_share; the
  `corrected` flag is left out: whether a breach was declared before its stop arrived depends on
  processing time by nature);
- false pages: a clock whose final outcome is `met` with a `breached` record on leadflow.sla and
  no `corrected` record after it (in the clock's partition order).
"""
from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import asyncpg
from aiokafka import TopicPartition

from services.common.avro_codec import AvroCodec, AvroCodecError
from services.common.config import Settings
from services.common.kafka import make_consumer
from services.common.timefmt import format_utc
from tests.faults.lifecycle_harness import topic_partitions

COMPARED = ("sla", "lead_id", "scope", "outcome", "started_at", "due_at", "stopped_at", "attempts", "required",
            "window_start", "window_end", "count", "target", "fit_share")


async def next_record_offsets(settings: Settings, topic: str, tail: int = 200) -> dict[int, int]:
    """Per partition, the offset after its last committed record (a transaction's commit marker
    takes an offset of its own, so the end offset is one further when the last write was one)."""
    consumer = make_consumer(settings, None, isolation_level="read_committed")
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in sorted(await topic_partitions(consumer, topic))]
        ends = await consumer.end_offsets(tps)
        out = {}
        for tp in tps:
            out[tp.partition] = 0
            if ends[tp] == 0:
                continue
            consumer.assign([tp])
            consumer.seek(tp, max(0, ends[tp] - tail))
            while await consumer.position(tp) < ends[tp]:
                for records in (await consumer.getmany(tp, timeout_ms=500)).values():
                    if records:
                        out[tp.partition] = records[-1].offset + 1
        return out
    finally:
        await consumer.stop()


async def query(settings: Settings, sql: str, *args):
    conn = await asyncpg.connect(settings.postgres_dsn.reveal(), timeout=5)
    try:
        await conn.execute(f'SET search_path TO "{settings.postgres_schema}"')
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def progress(settings: Settings) -> tuple[int, int]:
    """(events stored by the lifecycle, lifecycle records applied by the SLA monitor)."""
    rows = await query(settings, """SELECT
        (SELECT count(*) FROM lead_events) AS stored,
        (SELECT coalesce(sum(next_offset), 0) FROM sla_input_offsets) AS applied""")
    return int(rows[0]["stored"]), int(rows[0]["applied"])


@dataclass
class CheckResult:
    accepted: int = 0
    stored: int = 0
    published: int = 0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    mismatches: int = 0
    false_pages: int = 0
    clocks: int = 0
    windows: int = 0
    poison_injected: int = 0
    poison_set_aside: int = 0
    dlq_expected: int = 0
    dlq_found: int = 0
    examples: dict[str, list] = field(default_factory=dict)

    def example(self, kind: str, item) -> None:
        bucket = self.examples.setdefault(kind, [])
        if len(bucket) < 5:
            bucket.append(item)


def check_events(result: CheckResult, accepted_order: dict[str, list[str]], rows, lifecycle_records) -> None:
    accepted = {eid for ids in accepted_order.values() for eid in ids}
    result.accepted = len(accepted)
    result.stored = len(rows)
    stored_count = Counter(r["event_id"] for r in rows)
    for eid in accepted - stored_count.keys():
        result.lost += 1
        result.example("lost", eid)
    for eid, n in stored_count.items():
        if n > 1:
            result.duplicated += n - 1
            result.example("stored twice", eid)
        if eid not in accepted:
            result.duplicated += 1
            result.example("stored, never accepted", eid)
    by_lead: dict[str, list] = defaultdict(list)
    for r in rows:
        by_lead[r["lead_id"]].append((r["version"], r["event_id"]))
    for lead, ids in accepted_order.items():
        stored = [eid for _, eid in sorted(by_lead.get(lead, []))]
        if [e for e in stored if e in accepted] != [e for e in ids if e in stored_count]:
            result.out_of_order += 1
            result.example("stored out of order", lead)

    codec = AvroCodec("lifecycle_record")
    stored_keys = {(r["lead_id"], r["version"]) for r in rows}
    published: Counter = Counter()
    last_version: dict[str, int] = {}
    for partition, offset, key, value in sorted(lifecycle_records, key=lambda x: (x[0], x[1])):
        try:
            rec = codec.decode(value)
        except (AvroCodecError, TypeError, ValueError):
            continue   # a poison record the suite injected: checked with the poison
        k = (rec["lead_id"], rec["version"])
        published[k] += 1
        if published[k] > 1:
            result.duplicated += 1
            result.example("published twice", k)
        elif rec["version"] < last_version.get(rec["lead_id"], 0):
            result.out_of_order += 1
            result.example("published out of order", k)
        last_version[rec["lead_id"]] = max(rec["version"], last_version.get(rec["lead_id"], 0))
    result.published = sum(published.values())
    for k in stored_keys - published.keys():
        result.lost += 1
        result.example("stored, never published", k)


def replay_lines(events_jsonl: Path, policy: Path, until: datetime) -> list[dict]:
    leadflow = Path(sys.executable).parent / "leadflow"
    argv = [str(leadflow)] if leadflow.exists() else [sys.executable, "-m", "services.cli"]
    proc = subprocess.run([*argv, "replay", str(events_jsonl), "--policy", str(policy), "--until", format_utc(until)],
                          capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"leadflow replay failed ({proc.returncode}): {proc.stderr[-2000:]}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def live_lines(clock_rows, window_rows) -> list[dict]:
    from services.sla_monitor.domain import Clock, Window

    lines = [Clock.from_snapshot(json.loads(r["snapshot"])).outcome_line() for r in clock_rows]
    lines += [Window.from_snapshot(json.loads(r["snapshot"])).outcome_line() for r in window_rows
              if r["outcome"] is not None]
    return lines


def _identity(line: dict) -> tuple:
    return (line["sla"], line.get("lead_id"), json.dumps(line.get("scope") or {}, sort_keys=True),
            line.get("window_start") or line.get("started_at"))


def _compared(line: dict) -> str:
    return json.dumps({k: line.get(k) for k in COMPARED}, sort_keys=True)


def check_outcomes(result: CheckResult, live: list[dict], replay: list[dict]) -> None:
    result.clocks = sum(1 for line in live if "window_start" not in line)
    result.windows = len(live) - result.clocks
    mine: dict[tuple, Counter] = defaultdict(Counter)
    theirs: dict[tuple, Counter] = defaultdict(Counter)
    for line in live:
        mine[_identity(line)][_compared(line)] += 1
    for line in replay:
        theirs[_identity(line)][_compared(line)] += 1
    for key in mine.keys() | theirs.keys():
        a, b = mine.get(key, Counter()), theirs.get(key, Counter())
        if a != b:
            differ = max(sum((a - b).values()), sum((b - a).values()))
            result.mismatches += differ
            result.example("outcome mismatch", {"live": list(a), "replay": list(b)})


def check_pages(result: CheckResult, sla_records, final_outcome: dict[str, str]) -> None:
    codec = AvroCodec("sla_outcome")
    kinds: dict[str, list[str]] = defaultdict(list)
    for partition, offset, key, value in sorted(sla_records, key=lambda x: (x[0], x[1])):
        rec = codec.decode(value)
        if rec.get("clock_id"):
            kinds[rec["clock_id"]].append(rec["kind"])
    for clock_id, ks in kinds.items():
        if final_outcome.get(clock_id) != "met" or "breached" not in ks:
            continue
        if "corrected" not in ks[ks.index("breached"):]:
            result.false_pages += 1
            result.example("breach page for a met clock", clock_id)
