"""`make report-bench`: a month's report over an event store of 1,000,000 leads, timed.

The store is generated server-side (generate_series, deterministic by hashing the row number) in
a throwaway PostgreSQL started with the stack's own settings (or an existing server with
`--dsn`, in a scratch schema dropped afterwards). Worst case for a month: every lead is created
in the reported month (November 2026). Per lead: lead.created; 60 % become MQLs (half a good fit)
and are assigned to one of 1,000 reps in 10 teams; of those about half get a contact attempt,
70 % are accepted, 15 % rejected; 20 % of all leads become SQLs, some opportunities, won or lost;
30 % download one of 20 assets. The SLA monitor's tables hold the matching clocks (speed to
lead for website MQLs, acceptance and attempts per assignment, closed loop per opportunity) and
the weekly and per-rep monthly windows with their lead lists.

Then `build_report` for --month 2026-11 runs --runs times (the first on a cold cache of the
plans), each followed by the JSON rendering; the HTML rendering once. Prints a summary and one
JSON line.

    python -m services.report.bench [--leads N] [--runs 3] [--dsn postgresql://...]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import time
from datetime import datetime, timezone

import asyncpg

from services.common.config import load_settings, repo_root

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=timezone.utc)
MONTH = "2026-11"
SCHEMA = "report_bench"

_LEADS = """
CREATE UNLOGGED TABLE bench_leads AS
SELECT g, 'B' || lpad(g::text, 7, '0') AS lead_id,
       (ARRAY['website', 'website', 'event', 'referral', 'outbound'])[1 + abs(hashint4(g)) % 5] AS channel,
       (ARRAY['smb', 'smb', 'smb', 'midmarket', 'midmarket', 'enterprise'])[1 + abs(hashint4(g + 1)) % 6] AS segment,
       'campaign-' || (abs(hashint4(g + 2)) % 10) AS campaign,
       $2::timestamptz + (g - 1) * (($3::timestamptz - $2::timestamptz) / $1) AS t0,
       abs(hashint4(g + 3)) % 100 AS r1, abs(hashint4(g + 4)) % 100 AS r2, abs(hashint4(g + 5)) % 100 AS r3,
       abs(hashint4(g + 6)) % 1000 AS rep
FROM generate_series(1, $1) AS g
"""

# One row per event, with its slot (the order within the lead) and the stages around it.
_EVENTS = """
CREATE UNLOGGED TABLE bench_events AS
WITH l AS (
    SELECT *, r1 < 60 AS mql, CASE WHEN r2 < 50 THEN 'good' ELSE 'poor' END AS mfit,
           'rep-' || lpad(rep::text, 4, '0') AS owner, 'team-' || (rep % 10) AS team,
           r1 < 60 AND r3 < 50 AS attempted, r1 < 60 AND r2 % 10 < 7 AS accepted,
           r1 < 60 AND r2 % 10 >= 7 AND r3 % 2 = 0 AS rejected
    FROM bench_leads)
SELECT l.lead_id, v.slot, v.type, v.at, v.payload, v.from_stage, v.to_stage, l.channel, l.segment,
       CASE WHEN v.slot >= 3 THEN l.mfit ELSE 'unknown' END AS fit,
       CASE WHEN v.slot >= 4 THEN l.owner END AS owner, CASE WHEN v.slot >= 4 THEN l.team END AS team
FROM l CROSS JOIN LATERAL (VALUES
    (1, true, 'lead.created', l.t0, jsonb_build_object('channel', l.channel, 'segment', l.segment,
        'campaign', l.campaign, 'email', l.lead_id || '@example.com', 'company', 'Company ' || l.lead_id),
        NULL::text, 'new'),
    (2, l.r3 >= 70, 'lead.activity', l.t0 + interval '5 minutes', jsonb_build_object('kind', 'download',
        'asset', 'asset-' || (l.r2 % 20), 'helpful', CASE l.r1 % 3 WHEN 0 THEN 'true'::jsonb WHEN 1 THEN 'false'::jsonb END),
        'new', 'new'),
    (3, l.mql, 'lead.marketing_qualified', l.t0 + interval '10 minutes', jsonb_build_object('fit', l.mfit), 'new', 'mql'),
    (4, l.mql, 'lead.assigned', l.t0 + interval '30 minutes', jsonb_build_object('owner', l.owner, 'team', l.team), 'mql', 'mql'),
    (5, l.attempted, 'contact.attempted', l.t0 + CASE WHEN l.r3 < 40 THEN interval '40 minutes' ELSE interval '26 hours' END,
        jsonb_build_object('channel', 'phone', 'owner', l.owner), 'mql', 'mql'),
    (6, l.accepted, 'lead.accepted', l.t0 + interval '1 day 2 hours', jsonb_build_object('owner', l.owner), 'mql', 'sal'),
    (6, l.rejected, 'lead.rejected', l.t0 + interval '1 day 2 hours',
        jsonb_build_object('reason', (ARRAY['no_budget', 'wrong_segment', 'no_need', 'duplicate', 'bad_data'])[1 + l.r1 % 5]),
        'mql', 'rejected'),
    (7, l.accepted AND l.r1 < 20, 'lead.sales_qualified', l.t0 + interval '3 days', '{}'::jsonb, 'sal', 'sql'),
    (8, l.accepted AND l.r1 < 20 AND l.r3 < 25, 'opportunity.created', l.t0 + interval '5 days',
        jsonb_build_object('opportunity_id', 'O' || l.lead_id, 'amount', 1000 + l.r2 * 100), 'sql', 'opportunity'),
    (9, l.accepted AND l.r1 < 20 AND l.r3 < 25 AND l.r2 < 40, 'deal.won', l.t0 + interval '10 days',
        jsonb_build_object('revenue', 1000 + l.r2 * 90, 'currency', 'EUR'), 'opportunity', 'customer'),
    (9, l.accepted AND l.r1 < 20 AND l.r3 < 25 AND l.r2 >= 60, 'deal.lost', l.t0 + interval '10 days',
        jsonb_build_object('reason', 'competitor'), 'opportunity', 'lost')
) AS v(slot, present, type, at, payload, from_stage, to_stage)
WHERE v.present
"""

_STORE_EVENTS = """
INSERT INTO lead_events (lead_id, version, event_id, type, occurred_at, source, payload, from_stage, to_stage,
                         ignored, channel, segment, fit, owner, team)
SELECT lead_id, row_number() OVER (PARTITION BY lead_id ORDER BY slot)::int, lead_id || '-' || slot, type, at,
       'bench', payload, from_stage, to_stage, NULL, channel, segment, fit, owner, team
FROM bench_events
"""

_STORE_LEADS = """
INSERT INTO leads (lead_id, stage, version, owner, team, channel, segment, fit, created_at, updated_at, stage_entered_at)
SELECT DISTINCT ON (lead_id) lead_id, to_stage, version, owner, team, channel, segment, fit,
       min(occurred_at) OVER (PARTITION BY lead_id), occurred_at, occurred_at
FROM lead_events ORDER BY lead_id, version DESC
"""

_TS = "to_char(({}) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

# Clocks as the SLA monitor stores them: speed to lead (website MQLs; no owner of its own), sales
# acceptance and contact attempts (per assignment), closed loop (per opportunity).
_CLOCKS = f"""
INSERT INTO sla_clocks (clock_id, sla, lead_id, start_event_id, team, outcome, started_at, due_at, final, snapshot)
SELECT sla || '/' || lead_id || '/' || start_event, sla, lead_id, start_event, team, outcome, started, due,
       outcome IS NOT NULL,
       jsonb_build_object('type', 'clock', 'sla', sla, 'kind', sla, 'lead_id', lead_id, 'start_event_id', start_event,
           'started_at', {_TS.format('started')}, 'due_at', CASE WHEN due IS NOT NULL THEN {_TS.format('due')} END,
           'policy_version', 'bench', 'calendar', 'default', 'owner', owner, 'team', team, 'segment', segment,
           'channel', channel, 'required', required, 'attempts', attempts, 'outcome', outcome,
           'stopped_at', CASE WHEN stopped IS NOT NULL THEN {_TS.format('stopped')} END, 'stop_event_id', stop_event,
           'corrected', corrected, 'expired', false, 'final', outcome IS NOT NULL)
FROM (
    SELECT 'speed_to_lead' AS sla, m.lead_id, m.lead_id || '-3' AS start_event, NULL::text AS owner, NULL::text AS team,
           m.segment, m.channel, m.occurred_at AS started, m.occurred_at + interval '1 hour' AS due,
           CASE WHEN a.occurred_at <= m.occurred_at + interval '1 hour' THEN 'met' ELSE 'breached' END AS outcome,
           a.occurred_at AS stopped, a.event_id AS stop_event, NULL::int AS required, 0 AS attempts, false AS corrected
    FROM lead_events m LEFT JOIN lead_events a ON a.lead_id = m.lead_id AND a.type = 'contact.attempted'
    WHERE m.type = 'lead.marketing_qualified' AND m.channel = 'website'
    UNION ALL
    SELECT 'sales_acceptance', s.lead_id, s.event_id, s.owner, s.team, s.segment, s.channel, s.occurred_at,
           s.occurred_at + interval '2 days',
           CASE WHEN d.event_id IS NOT NULL THEN 'met' WHEN s.occurred_at + interval '2 days' < $1 THEN 'breached' END,
           d.occurred_at, d.event_id, NULL, 0, d.event_id IS NOT NULL AND abs(hashtext(s.lead_id)) % 50 = 0
    FROM lead_events s LEFT JOIN lead_events d ON d.lead_id = s.lead_id AND d.type IN ('lead.accepted', 'lead.rejected')
    WHERE s.type = 'lead.assigned'
    UNION ALL
    SELECT 'contact_attempts', s.lead_id, s.event_id, s.owner, s.team, s.segment, s.channel, s.occurred_at, NULL,
           NULL, NULL, NULL, CASE WHEN s.segment = 'enterprise' THEN 8 ELSE 6 END,
           (SELECT count(*) FROM lead_events a WHERE a.lead_id = s.lead_id AND a.type = 'contact.attempted')::int, false
    FROM lead_events s WHERE s.type = 'lead.assigned'
    UNION ALL
    SELECT 'closed_loop_feedback', o.lead_id, o.event_id, o.owner, o.team, o.segment, o.channel, o.occurred_at,
           o.occurred_at + interval '90 days', CASE WHEN r.event_id IS NOT NULL THEN 'met' END,
           r.occurred_at, r.event_id, NULL, 0, false
    FROM lead_events o LEFT JOIN lead_events r ON r.lead_id = o.lead_id AND r.type IN ('deal.won', 'deal.lost')
    WHERE o.type = 'opportunity.created'
) c
"""

_WINDOWS = f"""
INSERT INTO sla_windows (window_id, sla, owner, window_start, window_end, outcome, final, snapshot)
SELECT sla || '/' || COALESCE('@' || owner, '') || '/' || {_TS.format('ws')}, sla, owner, ws, we, outcome,
       outcome IS NOT NULL,
       jsonb_build_object('type', 'window', 'sla', sla, 'kind', sla, 'owner', owner, 'window_start', {_TS.format('ws')},
           'window_end', {_TS.format('we')}, 'target', target, 'policy_version', 'bench', 'leads', leads,
           'good_fit', good_fit, 'outcome', outcome, 'final', outcome IS NOT NULL)
FROM (
    SELECT 'marketing_weekly_volume' AS sla, NULL::text AS owner, w AS ws, w + interval '7 days' AS we, 50 AS target,
           jsonb_agg(DISTINCT e.lead_id) AS leads, count(DISTINCT e.lead_id) FILTER (WHERE e.fit = 'good') AS good_fit,
           CASE WHEN w + interval '7 days' <= $1 THEN 'met' END AS outcome
    FROM lead_events e CROSS JOIN LATERAL (SELECT (date_trunc('week', e.occurred_at AT TIME ZONE 'Europe/Berlin')
                                                   AT TIME ZONE 'Europe/Berlin') AS w) x
    WHERE e.type = 'lead.assigned' GROUP BY w
    UNION ALL
    SELECT 'rep_monthly_volume', e.owner, timestamptz '2026-10-31 23:00:00+00', timestamptz '2026-11-30 23:00:00+00',
           150, jsonb_agg(DISTINCT e.lead_id), NULL, CASE WHEN count(DISTINCT e.lead_id) >= 150 THEN 'met' ELSE 'breached' END
    FROM lead_events e WHERE e.type = 'lead.assigned' AND e.occurred_at >= timestamptz '2026-10-31 23:00:00+00'
      AND e.occurred_at < timestamptz '2026-11-30 23:00:00+00'
    GROUP BY e.owner
) w
"""


def first_month_start(months: int) -> datetime:
    """Local (Berlin) midnight of the 1st of the month `months - 1` months before November 2026."""
    from services.report.model import report_calendar
    from services.report.period import parse_month
    from services.sla_monitor.domain import load_policy

    index = 2026 * 12 + 10 - (months - 1)   # November 2026 is month index 2026 * 12 + 10
    label = f"{index // 12}-{index % 12 + 1:02d}"
    return parse_month(label, report_calendar(load_policy(None)), NOW).start


async def generate(conn: asyncpg.Connection, leads: int, months: int, log) -> dict[str, int]:
    """`leads` leads created evenly from the 1st of the first of `months` months to the end of
    November 2026 (so November holds leads / months of them, all of them with months = 1)."""
    from services.report.store import migrate_read_side

    await migrate_read_side(conn)
    month_end = datetime(2026, 11, 30, 23, 0, tzinfo=timezone.utc)
    steps = [("leads", _LEADS, (leads, first_month_start(months), month_end)), ("events", _EVENTS, ()),
             ("event store", _STORE_EVENTS, ()), ("ANALYZE", "ANALYZE lead_events", ()),
             ("projection", _STORE_LEADS, ()), ("SLA clocks", _CLOCKS, (NOW,)), ("SLA windows", _WINDOWS, (NOW,))]
    for name, sql, args in steps:
        started = time.monotonic()
        await conn.execute(sql, *args)
        log(f"  {name}: {time.monotonic() - started:.1f} s")
    await conn.execute("DROP TABLE bench_leads, bench_events")
    await conn.execute("VACUUM ANALYZE lead_events")
    await conn.execute("VACUUM ANALYZE leads")
    await conn.execute("VACUUM ANALYZE sla_clocks")
    await conn.execute("VACUUM ANALYZE sla_windows")
    counts = {}
    for table in ("leads", "lead_events", "sla_clocks", "sla_windows"):
        counts[table] = await conn.fetchval(f"SELECT count(*) FROM {table}")
    return counts


async def measure(conn: asyncpg.Connection, runs: int, log) -> dict:
    from services.report.model import build_report, report_calendar
    from services.report.period import parse_month
    from services.report.render import render
    from services.sla_monitor.domain import load_policy

    import psutil

    policy = load_policy(None)
    period = parse_month(MONTH, report_calendar(policy), NOW)
    # CPU seconds of the database backend serving the report and of this process: what the report
    # costs whatever else the machine is running (wall time on a shared machine is not only ours).
    backend = psutil.Process(await conn.fetchval("SELECT pg_backend_pid()"))
    results = []
    for run in range(1, runs + 1):
        timings: dict[str, float] = {}
        cpu_db, cpu_py = sum(backend.cpu_times()[:2]), time.process_time()
        load = os.getloadavg()[0]
        started = time.perf_counter()
        data = await build_report(conn, policy, period, None, NOW, timings=timings)
        built = time.perf_counter() - started
        text = render(data, "json")
        total = time.perf_counter() - started
        cpu_db, cpu_py = sum(backend.cpu_times()[:2]) - cpu_db, time.process_time() - cpu_py
        results.append({"run": run, "build_s": round(built, 3), "build_and_json_s": round(total, 3),
                        "cpu_s": {"postgres": round(cpu_db, 2), "python": round(cpu_py, 2)},
                        "load_average_1m": round(load, 1), "json_bytes": len(text), "steps_s": timings})
        log(f"  run {run}: report data {built:.2f} s, with JSON {total:.2f} s; CPU postgres {cpu_db:.2f} s, "
            f"python {cpu_py:.2f} s; load {load:.1f}  {timings}")
    started = time.perf_counter()
    html = render(data, "html")
    html_s = time.perf_counter() - started
    log(f"  HTML rendering: {html_s:.2f} s ({len(html) / 1e6:.1f} MB, plotly.js inlined)")
    return {"runs": results, "html_render_s": round(html_s, 3), "html_bytes": len(html),
            "median_build_and_json_s": statistics.median(r["build_and_json_s"] for r in results),
            "leads_in_month": data["volumes"]["total"]["new"],
            "clock_outcomes": data["acceptance"]["attainment"]["total"]}


async def run(dsn: str, leads: int, months: int, runs: int, keep: bool, log) -> dict:
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", SCHEMA)
        if keep and exists:
            log(f"reusing the store in schema {SCHEMA} (--keep)")
            await conn.execute(f"SET search_path TO {SCHEMA}")
            counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in ("leads", "lead_events", "sla_clocks")}
        else:
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
            await conn.execute(f"CREATE SCHEMA {SCHEMA}")
            await conn.execute(f"SET search_path TO {SCHEMA}")
            log(f"generating {leads:,} leads over {months} month(s) ending with November 2026 ...")
            started = time.monotonic()
            counts = await generate(conn, leads, months, log)
            log(f"  {counts} in {time.monotonic() - started:.0f} s")
        log(f"leadflow report --month {MONTH} over them, {runs} runs (load average {os.getloadavg()[0]:.1f}):")
        result = await measure(conn, runs, log)
        return {"leads": leads, "months": months, "month": MONTH, "now": NOW.isoformat(), "store": counts,
                "cores": os.cpu_count(), "load_average_1m": round(os.getloadavg()[0], 2), **result}
    finally:
        if not keep:
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--leads", type=int, default=1_000_000)
    parser.add_argument("--months", type=int, default=12,
                        help="spread the leads over this many months ending with the reported one (1: all in it)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dsn", help="use this PostgreSQL (a scratch schema) instead of a throwaway server")
    parser.add_argument("--keep", action="store_true",
                        help="keep the store (and the throwaway server's data) for the next --keep run, which reuses it")
    args = parser.parse_args(argv)
    if args.leads < 1 or args.runs < 1 or not 1 <= args.months <= 120:
        parser.error("--leads and --runs must be positive, --months from 1 to 120")

    def log(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    node = None
    dsn = args.dsn
    if dsn is None:
        from services.stack.postgres_node import PostgresNode
        from services.stack.process import free_port

        home = repo_root() / ".leadflow" / "report-bench"
        if not args.keep:
            shutil.rmtree(home, ignore_errors=True)
        home.mkdir(parents=True, exist_ok=True)
        # The stack's server settings (shared_buffers 256MB, ...); durability is not under test.
        node = PostgresNode(home / "postgres", free_port(), database="report_bench",
                            settings={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off",
                                      "max_wal_size": "4GB"})
        node.start()
        dsn = node.dsn
        log(f"throwaway PostgreSQL on {dsn}")
    try:
        load_settings()  # the environment must be valid, as for every command
        result = asyncio.run(run(dsn, args.leads, args.months, args.runs, args.keep, log))
    finally:
        if node is not None:
            node.stop()
            if not args.keep:
                shutil.rmtree(node.home.parent, ignore_errors=True)
    print(json.dumps(result))
    verdict = "within" if result["median_build_and_json_s"] <= 5 else "OVER"
    log(f"median {result['median_build_and_json_s']:.2f} s for the month's report: {verdict} the 5 s budget")
    return 0


if __name__ == "__main__":
    sys.exit(main())
