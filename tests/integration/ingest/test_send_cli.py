"""`leadflow send FILE.jsonl` against the running service and the real Kafka: accepted lines are on
the topic in file order, refused ones are printed with their line number, field and reason, and
the exit status says whether anything was refused."""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from services.common.avro_codec import AvroCodec, event_from_avro
from services.common.config import Secret
from services.ingest.auth import hash_key

from ingest_it_helpers import ingest_client, read_topic

pytestmark = pytest.mark.stack

CODEC = AvroCodec("event_envelope")
KEY = "website-cli-key"


def event(i: int, **changes) -> dict:
    return {"event_id": f"cli-{i}", "lead_id": "L-cli", "type": "lead.activity",
            "occurred_at": "2026-11-02T10:00:00Z", "source": "website", "payload": {"kind": "download"}, **changes}


async def leadflow(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return proc.returncode, out.decode(), err.decode()


async def test_send_a_file_with_good_and_bad_lines(settings, tmp_path: Path):
    lines = [json.dumps(event(i)) for i in range(12)]
    lines[3] = json.dumps(event(3, payload={"kind": 7}))          # file line 4
    lines[8] = "{broken"                                          # file line 9
    lines[10] = json.dumps(event(10, source="hubspot"))           # file line 11: not this key's source
    lines.insert(11, "")                                          # a blank line 12; event 11 is on line 13
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n")

    keyed = settings.with_changes(ingest_api_keys=Secret(f"website:{hash_key(KEY)}"))
    async with ingest_client(keyed) as client:
        url = str(client.make_url("/"))
        code, out, err = await leadflow("send", str(path), "--url", url, "--key", KEY, "--batch", "4", "--quiet")
        assert code == 1, (out, err)
        refused = out.strip().splitlines()
        assert refused[0] == "line 4: payload.kind: must be a string, got integer"
        assert refused[1].startswith("line 9: event: the line is not valid JSON")
        assert refused[2] == "line 11: source: must be 'website', the source of the API key"
        assert len(refused) == 3
        assert "12 events, 3 requests: 9 accepted, 3 refused" in err

        code, out, err = await leadflow("send", str(path), "--url", url, "--key", "wrong", "--quiet", "--retries", "0")
        assert code == 2 and "HTTP 401" in err

    records = await read_topic(settings, settings.topics.events, 9, settle=1.0)
    ids = [event_from_avro(CODEC.decode(r.value)).event_id for r in records]
    assert ids == [f"cli-{i}" for i in (0, 1, 2, 4, 5, 6, 7, 9, 11)]


async def test_send_everything_accepted_exits_0(settings, tmp_path: Path):
    path = tmp_path / "ok.jsonl"
    path.write_text("".join(json.dumps(event(i, lead_id=f"L-{i}")) + "\n" for i in range(5)))
    async with ingest_client(settings) as client:
        code, out, err = await leadflow("send", str(path), "--url", str(client.make_url("/")), "--quiet")
    assert code == 0, (out, err)
    assert out == "" and "5 accepted, 0 refused" in err
