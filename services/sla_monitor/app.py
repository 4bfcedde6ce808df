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
import os
import sys

import click

from services.common.runtime import tune_gc

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
    tune_gc()
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
        return _run_profiled(lambda: asyncio.run(run_service(settings, policy, options)))
    except StandbyRefused as exc:
        print(f"leadflow sla-monitor: {exc} (LEADFLOW_SLA_LOCK_WAIT=0)", file=sys.stderr)
        return EXIT_STANDBY


def _run_profiled(run):
    """run(); with LEADFLOW_BENCH_SLA_PROFILE=FILE (the bench passes LEADFLOW_BENCH_* through to its
    services) the main thread runs under cProfile, the stats go to FILE, and the CPU seconds of every
    thread (faust's consumer thread has its own event loop, which cProfile does not see), sampled
    every 0.2 s because an ended thread leaves /proc, to FILE.threads when the service stops."""
    path = os.environ.get("LEADFLOW_BENCH_SLA_PROFILE")
    if not path:
        return run()
    import cProfile
    import threading

    seen: dict[str, tuple[str, float]] = {}
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.2):
            seen.update(_thread_cpu())

    sampler = threading.Thread(target=sample, name="cpu-sampler", daemon=True)
    sampler.start()
    profiler = cProfile.Profile()
    profiler.enable()
    try:
        return run()
    finally:
        profiler.disable()
        done.set()
        sampler.join()
        seen.update(_thread_cpu())
        profiler.dump_stats(path)
        with open(path + ".threads", "w") as f:
            f.writelines(f"{tid} {name} {cpu:.2f}\n" for tid, (name, cpu) in sorted(seen.items()))


def _thread_cpu() -> dict[str, tuple[str, float]]:
    """tid -> (name, CPU seconds user + system) of every thread of this process, from /proc."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    task_dir = f"/proc/{os.getpid()}/task"
    for tid in os.listdir(task_dir):
        try:
            with open(f"{task_dir}/{tid}/stat") as f:
                stat = f.read()
            with open(f"{task_dir}/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:  # the thread ended meanwhile
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        out[tid] = (name, (int(fields[11]) + int(fields[12])) / tick)
    return out


@click.command("sla-monitor")
def command() -> None:
    """Run the SLA monitor (settings from LEADFLOW_* variables, policy from LEADFLOW_SLA_POLICY)."""
    sys.exit(main())
