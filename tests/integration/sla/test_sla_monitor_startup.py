"""Start-up refusals of `python -m services.sla_monitor`: a policy file with a mistake, or one that
cannot be read, stops the service before it touches Kafka or Postgres, with the error (file, line,
field) on stderr and a non-zero exit code. No stack needed: nothing may be contacted."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.stack.process import free_port

REPO = Path(__file__).resolve().parents[3]


def run_monitor(tmp_path: Path, policy: Path | str) -> subprocess.CompletedProcess:
    dead = free_port()  # nothing listens: a start that got past the policy would hang or fail later
    env = dict(os.environ,
               LEADFLOW_KAFKA_BOOTSTRAP=f"127.0.0.1:{dead}",
               LEADFLOW_POSTGRES_DSN=f"postgresql://postgres@127.0.0.1:{dead}/leadflow",
               LEADFLOW_SLA_POLICY=str(policy),
               LEADFLOW_HOME=str(tmp_path))
    return subprocess.run([sys.executable, "-m", "services.sla_monitor"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=60)


def test_policy_with_a_mistake_refuses_to_start(tmp_path):
    policy = tmp_path / "bad.toml"
    policy.write_text(
        '[calendars.always]\ntimezone = "UTC"\n\n'
        '[slas.speed_to_lead]\n'
        'due = "one hour"\n'          # line 5: not a duration
        'business_time = true\n',
        encoding="utf-8")
    result = run_monitor(tmp_path, policy)
    assert result.returncode == 2, result.stderr
    assert "refusing to start" in result.stderr
    assert f"{policy}:5: slas.speed_to_lead.due: expected a duration like \"1h\", got \"one hour\"" in result.stderr
    assert result.stdout == ""


def test_unknown_key_names_the_field_and_line(tmp_path):
    policy = tmp_path / "typo.toml"
    policy.write_text('[slas.sales_acceptance]\nbusiness_dayz = 3\n', encoding="utf-8")
    result = run_monitor(tmp_path, policy)
    assert result.returncode == 2
    assert f"{policy}:2: slas.sales_acceptance.business_dayz: unknown key" in result.stderr


def test_missing_policy_file_refuses_to_start(tmp_path):
    result = run_monitor(tmp_path, tmp_path / "nowhere.toml")
    assert result.returncode == 2
    assert "nowhere.toml" in result.stderr and "cannot read the file" in result.stderr


def test_bad_setting_refuses_to_start(tmp_path):
    env = dict(os.environ, LEADFLOW_SLA_TIMER_INTERVAL_S="soon", LEADFLOW_HOME=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "services.sla_monitor"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "LEADFLOW_SLA_TIMER_INTERVAL_S must be a number" in result.stderr
