"""The records every part of the benchmark reads: traffic.py's events as they sit on
leadflow.events (Avro single-object, keyed by lead id), and the lifecycle records the lifecycle
core makes of them (what sits on leadflow.lifecycle)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable
from datetime import datetime, timedelta, timezone

from services.bench.traffic import generate_events
from services.common.avro_codec import AvroCodec, event_to_avro
from services.common.envelope import Event, parse_event
from services.common.kafka import lead_key
from services.lifecycle.domain import LeadLog

MEAN_GAP_S = 2.0


@dataclass
class Dataset:
    seed: int
    events: list[Event]
    messages: list[tuple[bytes, bytes]]            # (key, event_envelope message)
    lifecycle: list[tuple[bytes, bytes]] | None = None   # (key, lifecycle_record message)

    def head(self, n: int) -> "Dataset":
        """The first n events (a prefix of the log: same leads in flight, same mix)."""
        if n >= len(self.messages):
            return self
        lifecycle = None
        if self.lifecycle is not None and len(self.lifecycle) == len(self.messages):
            lifecycle = self.lifecycle[:n]   # no duplicates: one lifecycle record per event, in order
        return Dataset(self.seed, self.events[:n], self.messages[:n], lifecycle)

    @property
    def leads(self) -> int:
        return len({e.lead_id for e in self.events})

    @property
    def payload_bytes(self) -> float:
        return sum(len(v) for _, v in self.messages) / max(1, len(self.messages))


def traffic_start(count: int, now: datetime | None = None) -> datetime:
    """Event time of the first event, so that the last one is about now (the SLA monitor judges
    clocks against the wall clock): whole hours, so a run in the same hour sees the same times."""
    now = (now or datetime.now(timezone.utc)).replace(minute=0, second=0, microsecond=0)
    return now - timedelta(seconds=count * MEAN_GAP_S)


def build_dataset(count: int, seed: int = 7, start: datetime | None = None, lead_prefix: str = "L") -> Dataset:
    start = start or traffic_start(count)
    codec = AvroCodec("event_envelope")
    events = [parse_event(obj) for obj in generate_events(count, seed=seed, start=start, lead_prefix=lead_prefix,
                                                          mean_gap_seconds=MEAN_GAP_S)]
    encode = codec.encode
    messages = [(lead_key(e.lead_id), encode(event_to_avro(e))) for e in events]
    return Dataset(seed, events, messages)


def lifecycle_step() -> Callable[[int, bytes], bytes | None]:
    """`step(offset, message)`: the lifecycle record of one leadflow.events message, made by the
    service's own decode, state machine and encoder (`core.service_codec`), one lead log per step
    function; None for an event that gets no version (a duplicate). Also the Faust peer's work."""
    from services.bench.core import service_codec

    _name, decode, encode = service_codec(AvroCodec("event_envelope"), AvroCodec("lifecycle_record"))
    apply = LeadLog().apply

    def step(offset: int, message: bytes) -> bytes | None:
        d = decode(offset, message)
        if d.event is None:
            raise ValueError(f"bench record at offset {offset} is unreadable: {d.error}")
        t = apply(d.event)
        return encode(t, d) if t.version is not None else None

    return step


def lifecycle_records(dataset: Dataset) -> list[tuple[bytes, bytes]]:
    """The leadflow.lifecycle records of the dataset, as the service's own code makes them."""
    if dataset.lifecycle is None:
        step = lifecycle_step()
        out: list[tuple[bytes, bytes]] = []
        for offset, (key, message) in enumerate(dataset.messages):
            record = step(offset, message)
            if record is not None:
                out.append((key, record))
        dataset.lifecycle = out
    return dataset.lifecycle
