"""Start, find and stop the stack's background processes by pid file."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Sequence


class StackError(RuntimeError):
    """A set-up problem a person can act on: the message says what failed and what to do."""


def port_answers(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def read_pid(pid_file: Path) -> int | None:
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child still "exists"; treat it as gone.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except (FileNotFoundError, IndexError):
        return False


def ensure_port_free(name: str, host: str, port: int, env_var: str) -> None:
    if port_answers(host, port):
        raise StackError(
            f"{name}: port {host}:{port} is already in use by another program. "
            f"Stop that program, or pick another port with {env_var}=<port>."
        )


def start_detached(
    name: str, argv: Sequence[str], log_file: Path, pid_file: Path,
    env: dict[str, str] | None = None, cwd: Path | None = None,
) -> int:
    """Start argv in its own session (so it outlives us), output to log_file; write pid_file."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with open(log_file, "ab") as log:
        try:
            proc = subprocess.Popen(
                list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True, env=env, cwd=cwd,
            )
        except FileNotFoundError as exc:
            raise StackError(f"{name}: cannot run {argv[0]!r} ({exc.strerror}).") from exc
    pid_file.write_text(str(proc.pid))
    return proc.pid


def wait_until(predicate, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def stop_pid(pid_file: Path, timeout: float = 20.0) -> bool:
    """SIGTERM the process group, SIGKILL after timeout. Returns True if something was stopped."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    if not wait_until(lambda: not pid_alive(pid), timeout):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_until(lambda: not pid_alive(pid), 5)
    pid_file.unlink(missing_ok=True)
    return True


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"
