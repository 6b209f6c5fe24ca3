"""A private PostgreSQL cluster in a temporary folder, for the fleet store's tests and benchmark."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import List, Optional

from tests.mqtt.brokers import free_port


def _bin(name: str) -> Optional[str]:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


def missing() -> Optional[str]:
    """Why a private cluster cannot run here, or None."""
    if _bin("initdb") is None or _bin("pg_ctl") is None:
        return "PostgreSQL is not installed (initdb/pg_ctl not found; apt-get install postgresql)"
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install 'psycopg[binary]', the fleet extra)"
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        return "initdb refuses root and runuser is missing"
    return None


class Postgres:
    """initdb + pg_ctl start on a free loopback port; trust authentication for user ``postgres``.

    initdb refuses to run as root, so as root the cluster runs as the ``postgres`` user (or
    ``nobody``) through runuser.
    """

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="edge-agent-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self._as: List[str] = []
        if os.geteuid() == 0:
            user = "postgres" if _pwnam("postgres") else "nobody"
            shutil.chown(self.dir, user)
            self._as = ["runuser", "-u", user, "--"]

    def _run(self, *args: str) -> None:
        proc = subprocess.run([*self._as, *args], capture_output=True, text=True, timeout=120)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:2])} failed: {proc.stdout}{proc.stderr}")

    def start(self) -> "Postgres":
        self._run(str(_bin("initdb")), "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8")
        options = f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50"
        self._run(str(_bin("pg_ctl")), "-D", str(self.data), "-l", str(self.dir / "log"), "-o", options, "-w", "start")
        return self

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        import psycopg

        name = "t_" + uuid.uuid4().hex[:12]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def stop(self) -> None:
        try:
            self._run(str(_bin("pg_ctl")), "-D", str(self.data), "-m", "immediate", "-w", "stop")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


def _pwnam(user: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True
