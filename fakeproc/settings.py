"""Every setting fakeproc reads, how it parses, and what it accepts.

A value that does not parse stops fakeproc before anything starts, with one line that names
the setting and what it takes (`SettingError`): a test double that quietly ran on a default
instead would pass tests for the wrong reason.
"""

from __future__ import annotations

import difflib
import math
import os
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "FAKEPROC_"


class SettingError(ValueError):
    """A setting that does not parse; the message is one line naming it."""


class StartupError(RuntimeError):
    """An impossible situation at start-up (a busy port, a database out of reach)."""


@dataclass(frozen=True)
class Setting:
    key: str  # the app's config key; FAKEPROC_<key> in the environment
    parse: Callable[[Any], Any]
    accepts: str


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError
    number = float(value)
    if not math.isfinite(number):
        raise ValueError
    return number


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0:
        raise ValueError
    return number


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ValueError


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (dict, list)):
        raise ValueError
    return str(value)


def _whole(low: int, high: int | None = None) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
            raise ValueError
        number = int(str(value).strip()) if isinstance(value, str) else int(value)
        if number < low or (high is not None and number > high):
            raise ValueError
        return number
    return parse


def _samesite(value: Any) -> str | None:
    if value is None or str(value) in ("Lax", "Strict", "None"):
        return value
    raise ValueError


def _time_limit(value: Any) -> float | None:
    return None if value is None else _positive(value)


def database_url(value: Any) -> str | None:
    """A SQLAlchemy URL of SQLite or PostgreSQL, or a path to a SQLite file; a relative
    SQLite path counts from the current directory."""
    if value is None or value == "":
        return None
    # SQLAlchemy is imported only when there is a URL to read: commands that never open a
    # store (pay, check, --help) start faster without it.
    from sqlalchemy.engine import URL, make_url
    from sqlalchemy.exc import ArgumentError

    text = str(value)
    if "://" not in text:  # a plain path: a SQLite file
        return str(URL.create("sqlite", database=str(Path(text).expanduser().absolute())))
    try:
        url = make_url(text)
        # A driver that is not installed would fail later, in a traceback.
        url.get_dialect().import_dbapi()
    except (ArgumentError, ImportError):
        raise ValueError from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        database = url.database
        # In memory, each worker (and each command) would keep a store of its own.
        if not database or database == ":memory:" or "mode=memory" in text:
            raise ValueError
        if not database.startswith("file:"):
            url = url.set(database=str(Path(database).expanduser().absolute()))
        return url.render_as_string(hide_password=False)
    if backend != "postgresql" or not url.database:
        raise ValueError
    return text


SETTINGS: tuple[Setting, ...] = (
    Setting("DATABASE_URL", database_url, "a SQLite file (sqlite:///path, or just the path) "
            "or a PostgreSQL database (postgresql+psycopg://user@host/db)"),
    Setting("TIME_SCALE", _positive, "a number greater than 0, e.g. 1 or 0.01"),
    Setting("SEED", _text, "any text"),
    Setting("USERNAME", _text, "any text"),
    Setting("PASSWORD", _text, "any text"),
    Setting("ADMIN_TOKEN", _text, "any text"),
    Setting("ADMIN_PASSWORD", _text, "any text"),
    Setting("SECRET_KEY", _text, "any text"),
    Setting("AUTO_MIGRATE", _flag, "true or false"),
    Setting("PROXY_FIX", _flag, "true or false"),
    Setting("SESSION_COOKIE_SECURE", _flag, "true or false"),
    Setting("SESSION_COOKIE_SAMESITE", _samesite, "Lax, Strict or None"),
    Setting("MAX_CONTENT_LENGTH", _whole(1), "a whole number of bytes, at least 1"),
    Setting("INFLIGHT_POLL_MAX", _positive, "a number of seconds greater than 0"),
    Setting("ADMIN_REFRESH_SECONDS", _positive, "a number of seconds greater than 0, e.g. 2"),
    Setting("WTF_CSRF_TIME_LIMIT", _time_limit, "a number of seconds greater than 0"),
)
_BY_KEY = {setting.key: setting for setting in SETTINGS}

# Read by the command line only (`fakeproc serve` and friends), not by the app.
COMMAND_LINE = ("HOST", "PORT", "WORKERS", "CERT", "KEY")
# The test suite's own switches.
TEST_PREFIX = PREFIX + "TEST_"


def setting(key: str) -> Setting:
    """The setting read from `FAKEPROC_<key>` (and from the option of the same name)."""
    return _BY_KEY[key]


def check(config: MutableMapping[str, Any], given: Mapping[str, str] | None = None) -> None:
    """Parse every known setting in `config` in place; raise SettingError on the first that
    does not parse. `given` maps a config key to the name the user gave it by (an
    environment variable or an option), for the message."""
    for key, setting in _BY_KEY.items():
        if key not in config:
            continue
        try:
            config[key] = setting.parse(config[key])
        except (ValueError, TypeError, OverflowError):
            name = (given or {}).get(key, PREFIX + key)
            raise SettingError(f"{name}={shown(config[key], key)} is not valid: "
                               f"{setting.accepts}") from None


def check_environment(environ: Mapping[str, str] | None = None) -> None:
    """Parse every known FAKEPROC_* variable, even one an option overrides: a value that
    does not parse is a mistake the user should hear of."""
    environ = os.environ if environ is None else environ
    given = {key: PREFIX + key for key in _BY_KEY if PREFIX + key in environ}
    check({key: environ[name] for key, name in given.items()}, given)


def unknown_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """One warning line for each FAKEPROC_* variable that fakeproc does not read."""
    environ = os.environ if environ is None else environ
    known = [PREFIX + key for key in (*_BY_KEY, *COMMAND_LINE)]
    lines = []
    for name in sorted(environ):
        if not name.startswith(PREFIX) or name in known or name.startswith(TEST_PREFIX):
            continue
        closest = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
        hint = f"; did you mean {closest[0]}?" if closest else ""
        lines.append(f"{name} is not a fakeproc setting and is ignored{hint}")
    return lines


def shown(value: Any, key: str = "") -> str:
    """The value as a message may quote it: secrets never, a URL without its password."""
    key = key.removeprefix(PREFIX)
    if any(word in key for word in ("PASSWORD", "TOKEN", "SECRET")):
        return "'…'"
    text = str(value)
    if key == "DATABASE_URL":
        text = safe_url(text)
    text = text[:60] + "…" if len(text) > 60 else text
    return text if text and text.isprintable() and " " not in text else repr(text)


def safe_url(text: str) -> str:
    """A database URL as given, its password hidden (all before the host when it does not
    parse)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(text)
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        return text.split("@")[-1] if "@" in text else text
    return url.render_as_string(hide_password=True) if url.password else text
