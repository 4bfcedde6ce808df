"""Wiring of the SLA monitor: settings and policy in, signals handled, the service run until
SIGTERM. Nothing here runs at import; `python -m services.sla_monitor` and `leadflow sla-monitor`
call main().

The policy is read and validated before anything else: a policy file with a mistake stops the
start with the error (file, line, field) on stderr and exit code 2; the service never judges with
a half-read policy. A fatal error while running (Postgres unusable for db_retry_s, fenced by a
newer instance, ...) exits with code 1; the next start resumes from the committed state.
"""
from __future__ import annotations

import asyncio
import logging
import sys

import click

EXIT_CONFIG = 2
EXIT_STANDBY = 3


def load_config():
    """(settings, options, policy) or a message for stderr."""
    from services.common.config import ConfigError, load_settings
    from services.sla_monitor.domain import PolicyError, load_policy
    from services.sla_monitor.service import load_options

    try:
        settings = load_settings()
        options = load_options()
    except (ConfigError, ValueError) as exc:
        return None, f"leadflow sla-monitor: {exc}"
    try:
        policy = load_policy(settings.sla_policy_file or None)
    except PolicyError as exc:
        return None, f"leadflow sla-monitor: refusing to start, the SLA policy is not valid: {exc}"
    return (settings, options, policy), None


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    for noisy in ("aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    config, error = load_config()
    if config is None:
        print(error, file=sys.stderr)
        return EXIT_CONFIG
    settings, options, policy = config
    from services.sla_monitor.service import StandbyRefused, run_service

    logging.getLogger("leadflow.sla_monitor").info(
        "sla_monitor starting: policy %s (%s), %s -> %s", policy.version, settings.sla_policy_file or "built-in",
        settings.topics.lifecycle, settings.topics.sla)
    try:
        return asyncio.run(run_service(settings, policy, options))
    except StandbyRefused as exc:
        print(f"leadflow sla-monitor: {exc} (LEADFLOW_SLA_LOCK_WAIT=0)", file=sys.stderr)
        return EXIT_STANDBY


@click.command("sla-monitor")
def command() -> None:
    """Run the SLA monitor (settings from LEADFLOW_* variables, policy from LEADFLOW_SLA_POLICY)."""
    sys.exit(main())
