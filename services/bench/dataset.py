"""The records every part of the benchmark reads: traffic.py's events as they sit on
leadflow.events (Avro single-object, keyed by lead id), and the lifecycle records the lifecycle
core makes of them (what sits on leadflow.lifecycle)."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from services.bench.traffic import generate_events
from services.common.avro_codec import AvroCodec, event_from_avro, event_to_avro
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


def lifecycle_records(dataset: Dataset) -> list[tuple[bytes, bytes]]:
    """The leadflow.lifecycle records of the dataset, as the service's own code makes them."""
    if dataset.lifecycle is None:
        from services.bench.core import service_codec

        in_codec, out_codec = AvroCodec("event_envelope"), AvroCodec("lifecycle_record")
        _name, decode, encode = service_codec(in_codec, out_codec)
        log = LeadLog()
        out: list[tuple[bytes, bytes]] = []
        for key, message in dataset.messages:
            envelope = decode(message)
            t = log.apply(event_from_avro(envelope))
            if t.version is not None:
                out.append((key, encode(t, envelope, message)))
        dataset.lifecycle = out
    return dataset.lifecycle
