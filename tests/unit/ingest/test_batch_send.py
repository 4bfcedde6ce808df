"""`leadflow send`: lines into batches (count and byte limits), the endpoint URL, and the client
against a scripted HTTP server: refusals mapped back to file line numbers, retries on 503,
signatures, and exit codes. Against the real service: tests/integration/ingest/test_send_cli.py."""
from __future__ import annotations

import json
import time

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from services.ingest.auth import signature_valid
from services.ingest.send import Line, batches, events_url, read_lines, send_lines


def test_read_lines_numbers_lines_and_skips_blank_ones():
    lines = read_lines(b'{"a":1}\r\n\n  \n{"b":2}\n{"c":3}')
    assert [(l.number, l.text) for l in lines] == [(1, b'{"a":1}'), (4, b'{"b":2}'), (5, b'{"c":3}')]


def test_batches_respect_the_count():
    lines = [Line(i, b"{}") for i in range(1, 8)]
    assert [[l.number for l in b] for b in batches(lines, 3)] == [[1, 2, 3], [4, 5, 6], [7]]


def test_batches_respect_the_byte_limit():
    lines = [Line(i, b"x" * 399) for i in range(1, 6)]   # 400 bytes each with the newline
    assert [[l.number for l in b] for b in batches(lines, 100, max_bytes=1000)] == [[1, 2], [3, 4], [5]]


@pytest.mark.parametrize("url, expected", [
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080/v1/events"),
    ("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1/events"),
    ("http://host/v1/events", "http://host/v1/events"),
    ("127.0.0.1:9000", "http://127.0.0.1:9000/v1/events"),
    ("https://gw.example.com/leadflow", "https://gw.example.com/leadflow/v1/events"),
])
def test_events_url(url, expected):
    assert events_url(url) == expected


class Scripted:
    """A fake ingest: refuses events whose JSON has "bad": true, answers 503 `fail_first` times."""

    def __init__(self, fail_first: int = 0, status: int | None = None, secret: str | None = None) -> None:
        self.fail_first = fail_first
        self.status = status
        self.secret = secret
        self.bodies: list[bytes] = []
        self.headers: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.bodies.append(body)
        self.headers.append(dict(request.headers))
        if self.status is not None:
            return web.json_response({"error": "x", "reason": f"scripted {self.status}"}, status=self.status)
        if self.fail_first:
            self.fail_first -= 1
            return web.json_response({"error": "unavailable", "reason": "down"}, status=503, headers={"Retry-After": "0"})
        if self.secret is not None and not signature_valid(
                self.secret, request.headers.get("X-Leadflow-Timestamp"), request.headers.get("X-Leadflow-Signature"),
                body, time.time()):
            return web.json_response({"error": "unauthorized", "reason": "missing or invalid credentials"}, status=401)
        errors, accepted = [], 0
        for index, line in enumerate(l for l in body.split(b"\n") if l.strip()):
            if json.loads(line).get("bad"):
                errors.append({"index": index, "field": "payload.score", "reason": "must be an integer"})
            else:
                accepted += 1
        return web.json_response({"accepted": accepted, "refused": len(errors), "errors": errors},
                                 status=202 if accepted else 422)


@pytest.fixture
async def serve():
    servers = []

    async def start(script: Scripted) -> str:
        app = web.Application()
        app.router.add_post("/v1/events", script.handle)
        server = TestServer(app)
        await server.start_server()
        servers.append(server)
        return str(server.make_url("/"))

    yield start
    for server in servers:
        await server.close()


def file_lines(flags: list[bool]) -> list[Line]:
    text = b"\n".join(json.dumps({"n": i, "bad": bad}).encode() for i, bad in enumerate(flags))
    return read_lines(b"\n" + text)   # file line 1 is blank: event i is on line i + 2


async def test_refusals_are_reported_with_file_line_numbers(serve):
    script = Scripted()
    url = await serve(script)
    lines = file_lines([False, True, False, False, True])   # file lines 2..6 (line 1 is blank)
    seen = []
    report = await send_lines(lines, url, key="k", batch_size=2, on_refused=lambda *a: seen.append(a))
    assert len(script.bodies) == 3
    assert report.accepted == 3 and report.sent == 5 and report.requests == 3
    assert [line for line, _, _ in report.refused] == [3, 6]
    assert seen == report.refused
    assert report.exit_code == 1
    assert script.headers[0]["Authorization"] == "Bearer k"
    assert script.headers[0]["Content-Type"] == "application/x-ndjson"


async def test_everything_accepted_exits_0(serve):
    url = await serve(Scripted())
    report = await send_lines(file_lines([False] * 4), url)
    assert (report.accepted, report.refused, report.exit_code) == (4, [], 0)


async def test_503_is_retried_then_accepted(serve):
    script = Scripted(fail_first=2)
    url = await serve(script)
    report = await send_lines(file_lines([False, False]), url, retries=3)
    assert len(script.bodies) == 3 and script.bodies[0] == script.bodies[2]
    assert report.accepted == 2 and report.exit_code == 0


async def test_503_beyond_the_retries_fails_with_exit_2(serve):
    url = await serve(Scripted(fail_first=10))
    failures = []
    report = await send_lines(file_lines([False]), url, retries=1, on_failed=failures.append)
    assert report.exit_code == 2 and report.accepted == 0
    assert "HTTP 503" in failures[0] and "after 1 retries" in failures[0]


async def test_401_stops_sending(serve):
    script = Scripted(status=401)
    url = await serve(script)
    report = await send_lines(file_lines([False] * 6), url, batch_size=2, retries=0)
    assert len(script.bodies) == 1
    assert report.exit_code == 2 and "HTTP 401" in report.failed[0]


async def test_signed_bodies(serve):
    script = Scripted(secret="s3")
    url = await serve(script)
    report = await send_lines(file_lines([False, False]), url, hmac_secret="s3")
    assert report.exit_code == 0 and report.accepted == 2


async def test_an_unreachable_server_is_exit_2():
    report = await send_lines(file_lines([False]), "http://127.0.0.1:9", retries=0, timeout_s=5)
    assert report.exit_code == 2 and "no answer" in report.failed[0]


async def test_an_oversized_line_is_refused_without_sending_it(serve):
    script = Scripted()
    url = await serve(script)
    lines = [Line(1, json.dumps({"pad": "x" * 70_000}).encode()), Line(2, b'{"n": 2}')]
    report = await send_lines(lines, url)
    assert report.refused[0][0] == 1 and "larger than 65536 bytes" in report.refused[0][2]
    assert script.bodies == [b'{"n": 2}\n']
