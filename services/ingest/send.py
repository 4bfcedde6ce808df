"""`leadflow send FILE.jsonl`: post a file of events to ingest in batches and say what was refused.

The file holds one event per line (blank lines are skipped). Lines go out as NDJSON requests of up
to `--batch` events and 1 MiB, ONE AT A TIME and in file order, so a lead's events reach the log
in the order of the file. Each refused event is printed with its line number, field and reason.
A request that Kafka could not take (503) or that got no answer is sent again (`--retries`, after
Retry-After); that is safe because a repeated event_id is a duplicate downstream.

Exit status: 0 when every event was accepted, 1 when some were refused (the rest were accepted),
2 when the server failed, could not be reached, or refused the credentials.
"""
from __future__ import annotations

import asyncio
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import click

from services.ingest.auth import signature_headers
from services.ingest.request_body import MAX_EVENT_BYTES, MAX_EVENTS_PER_REQUEST, MAX_REQUEST_BYTES

NDJSON = "application/x-ndjson"
RETRYABLE = {502, 503, 504}
MAX_RETRY_WAIT_S = 30.0


@dataclass(frozen=True)
class Line:
    number: int    # 1-based line number in the file
    text: bytes


@dataclass
class SendReport:
    sent: int = 0
    accepted: int = 0
    refused: list[tuple[int, str, str]] = field(default_factory=list)   # (line, field, reason)
    failed: list[str] = field(default_factory=list)                     # requests the server did not take
    requests: int = 0

    @property
    def exit_code(self) -> int:
        if self.failed:
            return 2
        return 1 if self.refused else 0


def read_lines(data: bytes) -> list[Line]:
    lines = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        text = raw.rstrip(b"\r")
        if text.strip(b" \t"):
            lines.append(Line(number, text))
    return lines


def batches(lines: list[Line], size: int, max_bytes: int = MAX_REQUEST_BYTES):
    """Consecutive runs of at most `size` lines whose NDJSON body stays within `max_bytes`."""
    batch: list[Line] = []
    body_size = 0
    for line in lines:
        cost = len(line.text) + 1
        if batch and (len(batch) >= size or body_size + cost > max_bytes):
            yield batch
            batch, body_size = [], 0
        batch.append(line)
        body_size += cost
    if batch:
        yield batch


def events_url(url: str) -> str:
    """A base URL (http://host:port) or the full endpoint, as the endpoint."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    path = parts.path.rstrip("/")
    if not path.endswith("/v1/events"):
        path += "/v1/events"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


async def send_lines(lines: list[Line], url: str, *, key: str | None = None, hmac_secret: str | None = None,
                     batch_size: int = 500, retries: int = 3, timeout_s: float = 60.0,
                     on_progress: Callable[[int], None] = lambda n: None,
                     on_refused: Callable[[int, str, str], None] = lambda line, f, r: None,
                     on_failed: Callable[[str], None] = lambda msg: None) -> SendReport:
    report = SendReport()
    endpoint = events_url(url)
    sendable: list[Line] = []
    for line in lines:
        if len(line.text) > MAX_EVENT_BYTES:   # the server would refuse it too; do not ship it
            reason = f"the event is larger than {MAX_EVENT_BYTES} bytes ({len(line.text)})"
            report.refused.append((line.number, "", reason))
            on_refused(line.number, "", reason)
            on_progress(1)
        else:
            sendable.append(line)
    timeout = aiohttp.ClientTimeout(total=timeout_s)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for batch in batches(sendable, batch_size):
            first, last = batch[0].number, batch[-1].number
            body = b"\n".join(line.text for line in batch) + b"\n"
            outcome = await _post(session, endpoint, body, key, hmac_secret, retries)
            report.requests += 1
            report.sent += len(batch)
            status, payload, problem = outcome
            if status in (202, 422) and isinstance(payload, dict) and isinstance(payload.get("errors"), list):
                report.accepted += int(payload.get("accepted", 0))
                for error in payload["errors"]:
                    index = error.get("index")
                    number = batch[index].number if isinstance(index, int) and 0 <= index < len(batch) else first
                    f, r = str(error.get("field", "")), str(error.get("reason", ""))
                    report.refused.append((number, f, r))
                    on_refused(number, f, r)
            else:
                message = f"lines {first}-{last}: {problem}"
                report.failed.append(message)
                on_failed(message)
                on_progress(len(batch))
                if status == 401:
                    break   # every further request would be refused the same way
                continue
            on_progress(len(batch))
    return report


async def _post(session: aiohttp.ClientSession, url: str, body: bytes, key: str | None, hmac_secret: str | None,
                retries: int) -> tuple[int | None, object, str]:
    """(status, decoded JSON body or None, description of a failure). Retries 502/503/504 and
    connection errors."""
    attempt = 0
    while True:
        headers = {"Content-Type": NDJSON}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        if hmac_secret:
            headers.update(signature_headers(hmac_secret, body, time.time()))
        wait = min(2.0 ** attempt, MAX_RETRY_WAIT_S)
        try:
            async with session.post(url, data=body, headers=headers) as response:
                status = response.status
                try:
                    payload = await response.json(content_type=None)
                except ValueError:
                    payload = None
                retry_after = response.headers.get("Retry-After", "")
            if status not in RETRYABLE:
                reason = payload.get("reason") if isinstance(payload, dict) else None
                return status, payload, f"HTTP {status}" + (f": {reason}" if reason else "")
            problem = f"HTTP {status}" + (f": {payload.get('reason')}" if isinstance(payload, dict) else "")
            if retry_after.isdigit():
                wait = min(float(retry_after), MAX_RETRY_WAIT_S)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            status, problem = None, f"no answer from {url} ({exc.__class__.__name__}: {exc})"
        if attempt >= retries:
            return status, None, problem + (f" (after {retries} retries)" if retries else "")
        attempt += 1
        await asyncio.sleep(wait)


@click.command("send")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=str))
@click.option("--url", default=None, help="ingest base URL (default http://LEADFLOW_INGEST_HOST:LEADFLOW_INGEST_PORT).")
@click.option("--key", envvar="LEADFLOW_API_KEY", default=None, help="API key, sent as a Bearer token (or LEADFLOW_API_KEY).")
@click.option("--hmac-secret", envvar="LEADFLOW_INGEST_HMAC_SECRET", default=None, show_envvar=True,
              help="Sign each request body with this secret (when the server requires signatures).")
@click.option("--batch", "batch_size", type=click.IntRange(1, MAX_EVENTS_PER_REQUEST), default=500, show_default=True,
              help="Events per request.")
@click.option("--retries", type=click.IntRange(0, 20), default=3, show_default=True,
              help="Resend a request this often when the server is unavailable (503) or does not answer.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1, 3600), default=60.0, show_default=True,
              help="Seconds to wait for one request.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def send(file: str, url: str | None, key: str | None, hmac_secret: str | None, batch_size: int, retries: int,
         timeout_s: float, quiet: bool) -> None:
    """Post the events of FILE.jsonl (one JSON event per line; '-' reads stdin) to ingest."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from services.common.config import ConfigError, load_settings

    if url is None:
        try:
            settings = load_settings()
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        url = f"http://{settings.ingest_host}:{settings.ingest_port}"
    try:
        data = sys.stdin.buffer.read() if file == "-" else Path(file).read_bytes()
    except OSError as exc:
        raise click.FileError(file, exc.strerror) from None
    lines = read_lines(data)
    out = click.get_text_stream("stdout")
    err = Console(stderr=True)

    def refused(number: int, f: str, reason: str) -> None:
        out.write(f"line {number}: {f or 'event'}: {reason}\n")

    def failed(message: str) -> None:
        err.print(f"[red]failed[/red] {message}", markup=True, highlight=False)

    progress = Progress(TextColumn("sending"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        console=err, disable=quiet, transient=False)
    with progress:
        task = progress.add_task("send", total=len(lines))
        report = asyncio.run(send_lines(
            lines, url, key=key, hmac_secret=hmac_secret, batch_size=batch_size, retries=retries,
            timeout_s=timeout_s, on_progress=lambda n: progress.advance(task, n), on_refused=refused,
            on_failed=failed,
        ))
    summary = (f"{len(lines)} events, {report.requests} requests: {report.accepted} accepted, "
               f"{len(report.refused)} refused")
    if report.failed:
        summary += f", {len(report.failed)} request(s) failed"
    err.print(summary, highlight=False)
    sys.exit(report.exit_code)
