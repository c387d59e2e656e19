"""The `fakeproc` command: `serve`, `demo`, `pay`, `check`, `call`, and `db` for the store's
schema.

Nothing here builds the app or touches a database until a command that needs one runs, so
`--help`, `--version`, `pay` and `check` leave no file behind. Every refusal is one line on
stderr: bad usage and bad settings exit 2, a failed command 1.
"""

from __future__ import annotations

import copy
import os
import sys
from collections.abc import Callable
from typing import Any

import click
from flask.cli import ScriptInfo, routes_command, run_command, shell_command

from ..config import package_version
from ..settings import SettingError, StartupError, setting, shown, unknown_variables
from ..settings import check_environment as settings_check_environment


def build_app() -> Any:
    """The app for the hidden Flask commands: defaults and FAKEPROC_* variables."""
    from .. import create_app

    return create_app()


class Fakeproc(click.Group):
    """A click group whose errors are one line, and which hands Flask's commands the app
    factory (`ScriptInfo`) only when they run."""

    def main(self, args: Any = None, prog_name: Any = None, complete_var: Any = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        extra.setdefault("obj", ScriptInfo(create_app=build_app, set_debug_flag=False,
                                           load_dotenv_defaults=False))
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, **extra)
        argv = list(sys.argv[1:] if args is None else args)
        try:
            returned = super().main(argv, prog_name or "fakeproc", complete_var, False,
                                    **extra)
        except click.UsageError as error:
            fail(usage_message(error, argv), 2, error.ctx.command_path if error.ctx else None)
        except (SettingError, StartupError) as error:
            fail(str(error), 2)
        except click.ClickException as error:
            fail(error.format_message(), error.exit_code)
        except click.Abort:
            fail("aborted", 130)
        sys.exit(returned if isinstance(returned, int) else 0)


def fail(message: str, status: int, who: str | None = None) -> None:
    """One line on stderr, then exit with `status`."""
    click.echo(f"{who or 'fakeproc'}: {' '.join(message.split())}", err=True)
    sys.exit(status)


def warn(message: str) -> None:
    click.echo(f"fakeproc: warning: {message}", err=True)


def check_environment() -> None:
    """Before a command builds the app: a SettingError for the first FAKEPROC_* variable
    that does not parse (the unknown ones were warned about as the command started)."""
    settings_check_environment()


def from_settings(key: str) -> Callable[[Any, Any, Any], Any]:
    """A click callback that parses an option as its `FAKEPROC_<key>` variable is parsed, and
    refuses it in the same words."""
    known = setting(key)

    def parse(_ctx: Any, _param: Any, value: Any) -> Any:
        if value is None:
            return None
        try:
            return known.parse(value)
        except (ValueError, TypeError, OverflowError):
            raise click.BadParameter(known.accepts) from None
    return parse


# --database-url / FAKEPROC_DATABASE_URL, parsed (a relative SQLite path made absolute).
database_url_option = from_settings("DATABASE_URL")


def _accepts(param: click.Parameter) -> str | None:
    """What an option of a plain click type accepts, in the words the settings use."""
    kind = param.type
    if isinstance(kind, click.IntRange) and kind.min is not None and kind.max is not None:
        return f"a whole number from {kind.min} to {kind.max}"
    if isinstance(kind, click.types.BoolParamType):
        return "true or false"
    return None


def usage_message(error: click.UsageError, argv: list[str]) -> str:
    """A usage error named by where the bad value came from: the option, or the variable."""
    param = getattr(error, "param", None)
    if isinstance(error, click.BadParameter) and param is not None \
            and not isinstance(error, click.MissingParameter):
        typed = any(arg == opt or arg.startswith(opt + "=") for arg in argv
                    for opt in param.opts if opt.startswith("-"))
        envvar = param.envvar if isinstance(param.envvar, str) else None
        if envvar and not typed and envvar in os.environ:
            where = f"{envvar}={shown(os.environ[envvar], envvar)}"
        else:
            where = "/".join(param.opts) if param.opts else (param.name or "value")
        return f"{where} is not valid: {_accepts(param) or error.message}"
    command = error.ctx.command_path if error.ctx else "fakeproc"
    return f"{error.format_message()} (see {command} --help)"


@click.group(cls=Fakeproc, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_version(), "--version", prog_name="fakeproc",
                      message="%(prog)s %(version)s")
def main() -> None:
    """fakeproc: a fake payment processor for Twilio's Generic Pay Connector."""
    # Before the command reads its options: a misspelt variable is worth hearing of most when
    # an option then fails.
    for line in unknown_variables():
        warn(line)


def _hidden(command: click.Command) -> click.Command:
    hidden = copy.copy(command)
    hidden.hidden = True
    return hidden


from .call import call  # noqa: E402
from .pay import pay  # noqa: E402
from .schema import db  # noqa: E402
from .serve import serve  # noqa: E402
from .traffic import check, demo  # noqa: E402

for _command in (serve, demo, pay, check, call, db):
    main.add_command(_command)
# Flask's own, for debugging: they work, they are not advertised.
for _command in (run_command, shell_command, routes_command):
    main.add_command(_hidden(_command))

__all__ = ["main"]
