"""A throwaway PostgreSQL server from the Debian package, started by the test run."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from tikflow.devstack import free_port, wait_for_port


def postgres_bin_dir() -> Path:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not candidates:
        raise RuntimeError(
            "PostgreSQL server binaries not found under /usr/lib/postgresql; install the Debian "
            "package `postgresql` (make test does this when run as root)"
        )
    return Path(candidates[-1]).parent


@dataclass
class PostgresServer:
    port: int
    datadir: Path
    run_as: str | None

    def _cmd(self, args: list[str]) -> list[str]:
        return ["runuser", "-u", self.run_as, "--", *args] if self.run_as else args

    def psql(self, sql: str, database: str = "postgres") -> None:
        subprocess.run(self._cmd([str(postgres_bin_dir() / "psql"), "-h", "127.0.0.1", "-p",
                                  str(self.port), "-U", "postgres", "-d", database, "-q", "-c", sql]),
                       check=True, capture_output=True)

    def create_database(self) -> str:
        """Create an empty database and return its asyncpg URL."""
        name = "tikflow_" + uuid.uuid4().hex[:10]
        self.psql(f'CREATE DATABASE "{name}"')
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        subprocess.run(self._cmd([str(postgres_bin_dir() / "pg_ctl"), "-D", str(self.datadir),
                                  "-m", "fast", "stop"]), capture_output=True)
        shutil.rmtree(self.datadir.parent, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb a fresh cluster with trust auth on loopback and start it on a free port."""
    bin_dir = postgres_bin_dir()
    run_as = None
    root = Path(tempfile.mkdtemp(prefix="tikflow-pg-"))
    datadir = root / "data"
    if os.geteuid() == 0:
        # initdb refuses to run as root; the Debian package creates the postgres user.
        run_as = "postgres"
        pw = pwd.getpwnam(run_as)
        os.chown(root, pw.pw_uid, pw.pw_gid)
    server = PostgresServer(port=free_port(), datadir=datadir, run_as=run_as)
    subprocess.run(server._cmd([str(bin_dir / "initdb"), "-D", str(datadir), "-U", "postgres",
                                "-A", "trust", "-E", "UTF8", "--no-sync"]),
                   check=True, capture_output=True)
    subprocess.run(server._cmd([str(bin_dir / "pg_ctl"), "-D", str(datadir), "-w", "-l",
                                str(root / "server.log"), "-o",
                                f"-p {server.port} -c listen_addresses=127.0.0.1 "
                                f"-k {root} -c fsync=off -c full_page_writes=off", "start"]),
                   check=True, capture_output=True)
    wait_for_port(server.port, timeout=30)
    return server
