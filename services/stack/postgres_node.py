"""A PostgreSQL cluster of the project's own, from Debian's server binaries, on its own port."""
from __future__ import annotations

import asyncio
import glob
import hashlib
import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg

from services.common.db_roles import ensure_roles
from services.stack.process import StackError, ensure_port_free, port_answers, tail, wait_until

PACKAGES_HINT = "apt-get install postgresql (as root), or put PostgreSQL's initdb/pg_ctl on PATH"


def postgres_bindir() -> Path:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: int(Path(p).parts[3]) if Path(p).parts[3].isdigit() else 0,
    )
    if candidates:
        return Path(candidates[-1]).parent
    initdb = shutil.which("initdb")
    if initdb:
        return Path(initdb).resolve().parent
    raise StackError(f"PostgreSQL: no server binaries (initdb, pg_ctl) found. Install them: {PACKAGES_HINT}.")


def _is_root() -> bool:
    return os.geteuid() == 0


def _runs_as_postgres_can_reach(path: Path) -> bool:
    probe = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(path)], capture_output=True)
    return probe.returncode == 0


@dataclass
class PostgresNode:
    home: Path              # e.g. .leadflow/postgres
    port: int
    host: str = "127.0.0.1"
    database: str = "leadflow"
    # Extra server settings, e.g. {"fsync": "off"} for throwaway test clusters.
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@{self.host}:{self.port}/{self.database}"

    @property
    def log_file(self) -> Path:
        return self.home / "postgres.log"

    def _data_dir(self) -> Path:
        """The cluster's directory. As root the server runs as `postgres`, which must be able to
        reach it; when the checkout sits below a private directory (e.g. /root), the cluster lives
        in /var/lib/leadflow and `.leadflow/postgres/data` links to it."""
        link = self.home / "data"
        if link.is_symlink() or link.exists():
            return link.resolve()
        if not _is_root() or _runs_as_postgres_can_reach(self.home.parent):
            return link
        digest = hashlib.sha256(str(self.home.resolve()).encode()).hexdigest()[:12]
        target = Path("/var/lib/leadflow") / digest / "data"
        target.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(target)
        return target

    def _as_owner(self, argv: list[str]) -> list[str]:
        return ["runuser", "-u", "postgres", "--", *argv] if _is_root() else argv

    def answers(self) -> bool:
        return port_answers(self.host, self.port)

    def running(self) -> bool:
        data = self.home / "data"
        if not data.exists():
            return False
        proc = subprocess.run(self._as_owner([str(postgres_bindir() / "pg_ctl"), "status", "-D", str(data.resolve())]),
                              capture_output=True)
        return proc.returncode == 0

    def start(self, timeout: float = 60.0) -> None:
        bindir = postgres_bindir()
        if _is_root():
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise StackError(f"PostgreSQL: there is no 'postgres' user to run the server as. {PACKAGES_HINT}.") from None
        self.home.mkdir(parents=True, exist_ok=True)
        if self.running() and self.answers():
            self._ensure_database()
            return
        ensure_port_free("PostgreSQL", self.host, self.port, "LEADFLOW_POSTGRES_PORT")
        data = self._data_dir()
        sockets = data.parent / "sockets"
        sockets.mkdir(parents=True, exist_ok=True)
        if _is_root():
            # The server refuses to run as root; its files belong to `postgres`.
            for path in (self.home, data.parent, sockets):
                shutil.chown(path, "postgres", "postgres")
            self.log_file.touch()
            shutil.chown(self.log_file, "postgres", "postgres")
        if not (data / "PG_VERSION").exists():
            data.mkdir(parents=True, exist_ok=True)
            if _is_root():
                shutil.chown(data, "postgres", "postgres")
            init = subprocess.run(
                self._as_owner([str(bindir / "initdb"), "-D", str(data), "-U", "postgres",
                                "--auth=trust", "--encoding=UTF8", "--locale=C.UTF-8"]),
                capture_output=True, text=True,
            )
            if init.returncode != 0:
                raise StackError(f"PostgreSQL: initdb failed:\n{init.stdout}{init.stderr}")
        options = {
            "port": str(self.port), "listen_addresses": self.host, "unix_socket_directories": str(sockets),
            "max_connections": "200", "shared_buffers": "256MB", **self.settings,
        }
        opt_str = " ".join(f"-c {k}={v}" for k, v in options.items())
        proc = subprocess.run(
            self._as_owner([str(bindir / "pg_ctl"), "start", "-D", str(data), "-l", str(self.log_file),
                            "-o", opt_str, "-w", "-t", str(int(timeout))]),
            capture_output=True, text=True,
        )
        if proc.returncode != 0 or not wait_until(self.answers, 10):
            raise StackError(f"PostgreSQL: the server did not start. pg_ctl said:\n{proc.stdout}{proc.stderr}\n"
                             f"Log:\n{tail(self.log_file)}")
        self._ensure_database()

    def _ensure_database(self) -> None:
        """The database, and the services' roles (services/common/db_roles.py)."""
        async def create() -> None:
            conn = await asyncpg.connect(f"postgresql://postgres@{self.host}:{self.port}/postgres")
            try:
                exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", self.database)
                if not exists:
                    await conn.execute(f'CREATE DATABASE "{self.database}"')
                await ensure_roles(conn)
            finally:
                await conn.close()
            # The services' roles may not create tables anywhere (PostgreSQL before 15 let
            # everyone create in `public`).
            conn = await asyncpg.connect(self.dsn)
            try:
                await conn.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")
            finally:
                await conn.close()

        asyncio.run(create())

    def stop(self) -> bool:
        data = self.home / "data"
        if not data.exists() or not self.running():
            return False
        proc = subprocess.run(
            self._as_owner([str(postgres_bindir() / "pg_ctl"), "stop", "-D", str(data.resolve()), "-m", "fast", "-w"]),
            capture_output=True, text=True,
        )
        if proc.returncode != 0:
            raise StackError(f"PostgreSQL: pg_ctl stop failed:\n{proc.stdout}{proc.stderr}")
        return True
