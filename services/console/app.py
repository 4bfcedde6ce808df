"""`leadflow console`: a small read-only web app over the event store and the SLA monitor's state.

Pages: the report for any week or month (`/report?week=2026-W46`, `?month=2026-11`, `&team=T`,
with a picker), a lead (`/lead?id=L1`: its personal fields, events, time in each stage, its
clocks with due times and outcomes), and the clocks at risk (`/at-risk`: open clocks ordered by
time left, per team and owner, refreshing itself). `/report.json` gives the report data.

Auth as ingest: API keys held as SHA-256 hashes (LEADFLOW_CONSOLE_API_KEYS), presented as a
Bearer token or as the password of HTTP Basic auth (what a browser asks for), compared in
constant time; no keys configured is the dev mode, open, with a warning logged at start. Bad
input is a 400 with the reason. Personal fields (email, company, ...) appear on the lead page
only and are never logged: the access log has no query strings.
"""
from __future__ import annotations

import json
import logging
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable

import asyncpg
from aiohttp import web

from services.common.api_keys import ApiKeys, basic_password, bearer_token
from services.common.config import Settings
from services.console import pages
from services.report.period import current_month, current_week
from services.report.request import ReportRequestError, report_for
from services.sla_monitor.domain import Policy

log = logging.getLogger("leadflow.console")

Clock = Callable[[], datetime]
POOL = web.AppKey("pool", asyncpg.Pool)
REFRESH_S = 30
MAX_PARAM = 200


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class BadRequest(web.HTTPBadRequest):
    def __init__(self, reason: str) -> None:
        super().__init__(text=f"400 bad request: {reason}\n", content_type="text/plain")


class Console:
    def __init__(self, settings: Settings, policy: Policy, clock: Clock = utc_now) -> None:
        self.settings = settings
        self.policy = policy
        self.clock = clock
        self.keys = ApiKeys.parse(settings.console_api_keys.reveal(), "LEADFLOW_CONSOLE_API_KEYS")
        self.pool: asyncpg.Pool | None = None
        self._plotly_js: bytes | None = None

    # --- the app --------------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(middlewares=[self._auth, self._errors])
        app.router.add_get("/", self.index)
        app.router.add_get("/report", self.report_page)
        app.router.add_get("/report.json", self.report_json)
        app.router.add_get("/lead", self.lead_page)
        app.router.add_get("/at-risk", self.at_risk_page)
        app.router.add_get("/static/plotly.min.js", self.plotly_js)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _app: web.Application) -> None:
        from services.report.store import open_pool

        if not self.keys.enabled:
            log.warning("no API keys configured (LEADFLOW_CONSOLE_API_KEYS): the console, personal fields "
                        "included, is open to anyone who reaches %s:%d - dev mode, never run it like this "
                        "where others can reach it", self.settings.console_host, self.settings.console_port)
        self.pool = await open_pool(self.settings)

    async def _stop(self, _app: web.Application) -> None:
        if self.pool is not None:
            await self.pool.close()

    @web.middleware
    async def _auth(self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
        if self.keys.enabled:
            authorization = request.headers.get("Authorization")
            key = bearer_token(authorization) or basic_password(authorization)
            if self.keys.source_of(key) is None:
                # One answer for every failure; the browser then asks for the key (as password).
                raise web.HTTPUnauthorized(text="401 unauthorized\n", content_type="text/plain",
                                           headers={"WWW-Authenticate": 'Basic realm="leadflow console", charset="UTF-8"'})
        return await handler(request)

    @web.middleware
    async def _errors(self, request: web.Request, handler):
        try:
            return await handler(request)
        except ReportRequestError as exc:
            raise BadRequest(str(exc)) from None

    # --- helpers ---------------------------------------------------------------------------------

    def _param(self, request: web.Request, name: str) -> str | None:
        values = request.query.getall(name, [])
        if len(values) > 1:
            raise BadRequest(f"{name} given {len(values)} times")
        if not values or values[0] == "":
            return None
        if len(values[0]) > MAX_PARAM:
            raise BadRequest(f"{name} is longer than {MAX_PARAM} characters")
        return values[0]

    def _nav(self, week: str | None = None, month: str | None = None, team: str | None = None) -> str:
        return pages.nav(week or current_week_of(self), month or current_month_of(self), team)

    # --- pages -----------------------------------------------------------------------------------

    async def index(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(f"/report?week={current_week_of(self)}")

    async def _report(self, request: web.Request) -> tuple[dict[str, Any], str | None, str | None, str | None]:
        unknown = set(request.query) - {"week", "month", "team"}
        if unknown:
            raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r} (use week, month, team)")
        week, month, team = self._param(request, "week"), self._param(request, "month"), self._param(request, "team")
        if week is None and month is None:
            week = current_week_of(self)
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            data = await report_for(conn, self.policy, week, month, team, self.clock())
        return data, week, month, team

    async def report_page(self, request: web.Request) -> web.Response:
        from services.report.render_html import render_html

        data, week, month, team = await self._report(request)
        page = render_html(data, plotly_src="/static/plotly.min.js", nav=self._nav(week, month, team))
        return web.Response(text=page, content_type="text/html")

    async def report_json(self, request: web.Request) -> web.Response:
        data, *_ = await self._report(request)
        return web.Response(text=json.dumps(data, ensure_ascii=False), content_type="application/json")

    async def lead_page(self, request: web.Request) -> web.Response:
        from services.console.queries import lead_clocks
        from services.lifecycle.commands import lead_report
        from services.lifecycle.store import lead_history

        lead_id = self._param(request, "id")
        if lead_id is None:
            raise BadRequest("give the lead's id: /lead?id=LEAD_ID")
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            row, events, duplicates = await lead_history(conn, lead_id)
            clocks = await lead_clocks(conn, lead_id)
        if row is None and not events:
            raise web.HTTPNotFound(text=f"404: no lead {lead_id!r} in the event store\n", content_type="text/plain")
        report = lead_report(row, events, duplicates)
        return web.Response(text=pages.lead_page(lead_id, report, clocks, self.clock(), self._nav()),
                            content_type="text/html")

    async def at_risk_page(self, request: web.Request) -> web.Response:
        from services.console.queries import open_clocks

        unknown = set(request.query) - {"team", "owner"}
        if unknown:
            raise BadRequest(f"unknown parameter {sorted(unknown)[0]!r} (use team, owner)")
        team, owner = self._param(request, "team"), self._param(request, "owner")
        now = self.clock()
        async with self.pool.acquire() as conn:  # type: ignore[union-attr]
            if team is not None:
                from services.report.request import check_team

                await check_team(conn, team)
            clocks = await open_clocks(conn, team, owner)
        return web.Response(text=pages.at_risk_page(clocks, now, team, owner, REFRESH_S, self._nav()),
                            content_type="text/html")

    async def plotly_js(self, request: web.Request) -> web.Response:
        if self._plotly_js is None:
            from plotly.offline import get_plotlyjs

            self._plotly_js = get_plotlyjs().encode()
        return web.Response(body=self._plotly_js, content_type="application/javascript",
                            headers={"Cache-Control": "max-age=86400"})


def current_week_of(console: Console) -> str:
    from services.report.model import report_calendar

    return current_week(report_calendar(console.policy), console.clock())


def current_month_of(console: Console) -> str:
    from services.report.model import report_calendar

    return current_month(report_calendar(console.policy), console.clock())

