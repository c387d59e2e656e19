"""Configuration defaults and where the admin panel's files live."""

from __future__ import annotations

import os
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent

# An installed wheel carries templates/ and static/ inside the package; a source checkout keeps
# them at the top of the repository, next to the package.
RESOURCE_ROOT = PACKAGE_DIR if (PACKAGE_DIR / "templates").is_dir() else PACKAGE_DIR.parent

# The connector every store has, which requests without a connector name use.
DEFAULT_CONNECTOR = "Default"

# A new Twilio Pay Connector waits this long for each answer (configured seconds).
DEFAULT_TIMEOUT_SECONDS = 10.0

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def package_version() -> str:
    """fakeproc's installed version; a checkout that was never installed says `0+unknown`."""
    try:
        return version("fakeproc")
    except PackageNotFoundError:
        return "0+unknown"


def default_database_url() -> str:
    """SQLite file in the working directory: the embedded default."""
    return "sqlite:///" + str(Path(os.getcwd(), "fakeproc.db"))


class Defaults:
    """Every setting fakeproc reads, with its default; `FAKEPROC_<NAME>` overrides it."""

    DATABASE_URL: str | None = None
    TIME_SCALE = 1.0
    SEED: str | None = None
    USERNAME: str | None = None
    PASSWORD: str | None = None
    ADMIN_TOKEN: str | None = None
    ADMIN_PASSWORD: str | None = None
    AUTO_MIGRATE = True
    PROXY_FIX = False
    # Twilio sends small JSON bodies; anything bigger is refused with 413.
    MAX_CONTENT_LENGTH = 64 * 1024
    # How often a retry waiting on an in-flight attempt in another process looks at the database
    # (seconds, real time; an in-process wait is woken at once).
    INFLIGHT_POLL_MAX = 0.25
    # Signs admin sessions and CSRF tokens; unset, each store makes and keeps its own.
    SECRET_KEY: str | None = None
    # How often the dashboard fetches new transactions (seconds).
    ADMIN_REFRESH_SECONDS = 2.0
    SESSION_COOKIE_SAMESITE = "Lax"
    # A panel stays open all day: its CSRF tokens last as long as the session.
    WTF_CSRF_TIME_LIMIT = None
