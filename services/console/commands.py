"""`leadflow console`: run the read-only web console until interrupted."""
from __future__ import annotations

import logging

import click
from aiohttp.abc import AbstractAccessLogger


class PathOnlyAccessLogger(AbstractAccessLogger):
    """Method, path and status: never the query string (a lead id or a team is all it could
    hold, but nothing a page was asked for is worth a log line more)."""

    def log(self, request, response, time: float) -> None:  # noqa: A002 - aiohttp's signature
        self.logger.info("%s %s %s %.0f ms", request.method, request.path, response.status, time * 1000)


@click.command("console")
@click.option("--host", default=None, help="Address to listen on (default: LEADFLOW_CONSOLE_HOST, 127.0.0.1).")
@click.option("--port", type=click.IntRange(1, 65535), default=None,
              help="Port (default: LEADFLOW_CONSOLE_PORT, 8090).")
@click.option("--policy", "policy_path", type=click.Path(dir_okay=False, exists=True),
              help="SLA policy file for the targets (default: LEADFLOW_SLA_POLICY, else the built-in policy).")
def console(host: str | None, port: int | None, policy_path: str | None) -> None:
    """Run the read-only web console: the report for any week or month, lead pages, clocks at risk.

    Example: leadflow console --port 8090, then open http://127.0.0.1:8090/"""
    from aiohttp import web

    from services.common.config import ConfigError, load_settings
    from services.console.app import Console
    from services.report.commands import load_report_policy

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        settings = load_settings()
        settings = settings.with_changes(console_host=host or settings.console_host,
                                         console_port=port or settings.console_port)
        app = Console(settings, load_report_policy(policy_path or settings.sla_policy_file)).app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    import asyncpg

    log = logging.getLogger("leadflow.console")
    try:
        web.run_app(app, host=settings.console_host, port=settings.console_port, access_log=log,
                    access_log_class=PathOnlyAccessLogger, shutdown_timeout=5,
                    print=lambda _msg: log.info("console on http://%s:%d/", settings.console_host, settings.console_port))
    except (OSError, asyncpg.PostgresError) as exc:
        # The database not reachable at start, or the port taken: one line, not a traceback.
        raise click.ClickException(f"the console cannot start: {type(exc).__name__}: {exc}") from None
