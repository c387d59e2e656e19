"""What `fakeproc serve` settles before it serves: one server per port, locked when others can
reach it, and a banner that says exactly what is running where."""

from __future__ import annotations

import errno
import fcntl
import os
import secrets
import socket
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from sqlalchemy.engine import make_url

from .config import DEFAULT_TIMEOUT_SECONDS, LOOPBACK_HOSTS, package_version
from .settings import StartupError


class PortClaim:
    """The right to serve on a port: no process listens there, and no other fakeproc is
    starting on it (a lock file held for this process's life closes that race)."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port
        self._lock: IO[str] | None = None

    def __enter__(self) -> PortClaim:
        return self.take()

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def release(self) -> None:
        if self._lock is not None:
            self._lock.close()  # closing the file lets go of its lock
            self._lock = None

    def take(self) -> PortClaim:
        path = Path(tempfile.gettempdir()) / f"fakeproc-port-{self.port}.lock"
        try:
            handle = open(path, "a+")
        except OSError as error:
            raise StartupError(f"cannot open the port lock {path}: {error.strerror}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "?"
            handle.close()
            raise StartupError(f"port {self.port} is taken: another fakeproc (pid {owner}) "
                               "is serving on it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        self._lock = handle
        try:
            self._probe()
        except StartupError:
            self.release()
            raise
        return self

    def _probe(self) -> None:
        """Bind as a lone listener would: any socket listening on the port refuses it, even
        one that would share the port with a later SO_REUSEPORT listener."""
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as error:
            raise StartupError(f"cannot listen on {self.host}: {error.strerror}") from None
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(address)
            except OSError as error:
                raise StartupError(self._refusal(error)) from None

    def _refusal(self, error: OSError) -> str:
        if error.errno == errno.EADDRINUSE:
            return f"port {self.port} is already in use on {self.host}: another process " \
                   "listens there"
        if error.errno == errno.EACCES:
            return f"port {self.port} needs privileges this user lacks; choose one above 1023"
        if error.errno == errno.EADDRNOTAVAIL:
            return f"cannot listen on {self.host}: no interface of this machine has it"
        return f"cannot listen on {self.host}:{self.port}: {error.strerror}"


def is_exposed(host: str, behind_proxy: bool) -> bool:
    """Reachable from other machines: bound beyond loopback, or behind a tunnel or proxy
    (which makes a loopback server public)."""
    return behind_proxy or host not in LOOPBACK_HOSTS


@dataclass
class Credentials:
    admin_password: str | None
    admin_token: str | None
    generated: dict[str, str] = field(default_factory=dict)


def lock_down(admin_password: str | None, admin_token: str | None,
              exposed: bool) -> Credentials:
    """When others can reach the server, what is not configured is made up for this run."""
    credentials = Credentials(admin_password or None, admin_token or None)
    if exposed and credentials.admin_password is None:
        credentials.admin_password = secrets.token_urlsafe(18)
        credentials.generated["admin password"] = credentials.admin_password
    if exposed and credentials.admin_token is None:
        credentials.admin_token = secrets.token_urlsafe(24)
        credentials.generated["admin token"] = credentials.admin_token
    return credentials


def describe_database(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return f"SQLite, file {parsed.database or 'in memory'}"
    where = parsed.host or "local socket"
    if parsed.port:
        where += f":{parsed.port}"
    user = f" as {parsed.username}" if parsed.username else ""
    return f"PostgreSQL, database {parsed.database} on {where}{user}"


def banner(base_url: str, config: dict[str, Any], credentials: Credentials, workers: int,
           behind_proxy: bool) -> list[str]:
    """The lines `fakeproc serve` prints once it listens."""
    scale = float(config["TIME_SCALE"])
    timeout = DEFAULT_TIMEOUT_SECONDS * scale
    panel = "needs the admin password" if credentials.admin_password else (
        "accepts the admin token as password" if credentials.admin_token else "open")
    api = "needs Authorization: Bearer <admin token>" if credentials.admin_token else "open"
    lines = [
        f"fakeproc {package_version()} is serving",
        f"  processor  {base_url}/   (Basic auth as each connector is set)",
        f"  admin      {base_url}/admin/   ({panel})",
        f"  API        {base_url}/api/   ({api})",
        f"  database   {describe_database(config['SQLALCHEMY_DATABASE_URI'])}",
        f"  time       scale {scale:g}: Twilio's {DEFAULT_TIMEOUT_SECONDS:g} s connector "
        f"timeout lasts {timeout:g} s",
        f"  workers    {workers} (gunicorn, gevent)",
    ]
    if behind_proxy:
        lines.append("  proxy      X-Forwarded-For/-Proto/-Host honoured from one hop")
    for what, value in credentials.generated.items():
        lines.append(f"  {what} for this run: {value}")
    return lines
