"""The lifecycle core over whole batches, with no per-record objects: leadflow.events messages in,
leadflow.lifecycle records out, through the unchanged domain (`machine.advance`).

This was the benchmark's prototype of the optimisations in docs/performance.md; its decoder and
encoder now are the service's own (`services/lifecycle/wire.py`: `EnvelopeDecoder.read`,
`LifecycleEncoder.splice`), so there is one implementation of the codec fast paths. What is left
here is only the loop: per message the wire reader, the event-id dedup, the state machine
(`advance`, as `LeadLog.apply` runs it), the splice.
Beside the service variant (`services/bench/core.py`, which runs `batch.decode_partition` per round
and so holds a `Decoded` per record of the round, as the service does) it shows what the service's
per-record structure costs.

Anything the fast path does not read (another schema version, a long string, a NUL, a corrupt
body) goes through the Avro codec per event, so the result is always the same.
"""
from __future__ import annotations

from typing import Callable, Iterable

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.envelope import Event
from services.lifecycle.batch import lifecycle_record
from services.lifecycle.domain.machine import StateFields, advance
from services.lifecycle.wire import EPOCH, EnvelopeDecoder, LifecycleEncoder

# Ablations: name -> what turning it off means (the codec's own techniques are measured in the
# service's code now, see docs/performance.md; only the domain can still be swapped out here).
ABLATIONS: dict[str, str] = {
    "no_domain": "the state machine replaced by a constant: what decoding and encoding cost alone",
}


def _no_domain():
    fixed = advance(None, Event("x", "x", "lead.created", EPOCH, "x", {}))
    return lambda _state, _event: fixed


class BatchCore:
    """`run(messages)` -> one lifecycle record per message that is not a duplicate, in order.
    Holds the lead states (as StateFields) and seen event ids like `LeadLog`."""

    def __init__(self, in_codec: AvroCodec | None = None, out_codec: AvroCodec | None = None,
                 ablate: Iterable[str] = ()) -> None:
        """`ablate` ("no_domain") skips the state machine and gives wrong records: for measuring only."""
        unknown = set(ablate) - set(ABLATIONS)
        if unknown:
            raise ValueError(f"unknown ablation(s) {sorted(unknown)}; known: {sorted(ABLATIONS)}")
        self.ablate = frozenset(ablate)
        self.in_codec = in_codec or AvroCodec("event_envelope")
        self.out_codec = out_codec or AvroCodec("lifecycle_record")
        self.decoder = EnvelopeDecoder(self.in_codec)
        self.encoder = LifecycleEncoder(self.out_codec, self.in_codec)
        self.states: dict[str, StateFields] = {}
        self.seen_event_ids: set[str] = set()
        self.slow_path = 0       # messages that went through the per-event codec path
        self.fast = self.decoder.fast and self.encoder.fast

    def run(self, messages: Iterable[bytes]) -> list[bytes]:
        states = self.states
        get_state = states.get
        seen = self.seen_event_ids
        seen_add = seen.add
        read = self.decoder.read
        splice = self.encoder.splice
        apply = _no_domain() if "no_domain" in self.ablate else advance
        out: list[bytes] = []
        append = out.append
        slow = self._slow
        for m in messages:
            got = read(m)
            if got is None:
                slow(m, append)
                continue
            event = got[0]
            event_id = event.event_id
            if event_id in seen:
                continue  # a duplicate: stored apart, never published
            seen_add(event_id)
            lead_id = event.lead_id
            state, t = apply(get_state(lead_id), event)
            states[lead_id] = state
            append(splice(t, m) or self.encoder.encode(t, self.decoder.decode(m), m))
        return out

    def _slow(self, message: bytes, append: Callable[[bytes], None]) -> None:
        """The codec's per-event path, for anything the fast path leaves alone."""
        self.slow_path += 1
        envelope = self.in_codec.decode(message)
        event = event_from_avro(envelope)
        if event.event_id in self.seen_event_ids:
            return
        self.seen_event_ids.add(event.event_id)
        state, t = advance(self.states.get(event.lead_id), event)
        self.states[event.lead_id] = state
        append(self.out_codec.encode(lifecycle_record(t, envelope)))
