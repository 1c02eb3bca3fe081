"""How every `kobe` command ends on an error: one line on stderr naming what to fix, exit code non-zero.

- bad arguments: ``error: Invalid value for '--qty': ... (see 'kobe order bracket --help')``,
  exit 2 (click's usage code), or the command's own code (`GuardedCommand.usage_exit_code`);
- `KobeError` (bad input, a corrupt or unsafe state file, a broker's refusal): its message;
- `OSError` and SQLite's operational errors (a full disk, a read-only or unwritable folder): the
  path and what to do about it (`describe_error`);
- anything else is a bug: one line naming the exception, asking for a report.

All exit 1 unless a `GuardedCommand` says otherwise. `KOBE_DEBUG=1` shows the full traceback
of any error that is not a usage error instead of the one line.
"""

from __future__ import annotations

import errno
import os
import sqlite3

import click

from kobe_pipelines.errors import KobeError

DEBUG_ENV = "KOBE_DEBUG"

_OS_HINTS = {
    errno.ENOSPC: "the disk is full: free space, then run the command again",
    errno.EDQUOT: "the disk quota is used up: free space, then run the command again",
    errno.EFBIG: "the file is larger than this process may write: the disk is full or a file-size limit (ulimit -f) "
                 "applies",
    errno.EROFS: "it is on a read-only file system: point --state / KOBE_STATE_DIR (or --lake / KOBE_LAKE_DIR) at a "
                 "writable folder",
    errno.EACCES: "permission denied: this user must be able to write that folder (check its owner and mode)",
    errno.EPERM: "operation not permitted: this user must be able to write that folder (check its owner and mode)",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check --state / KOBE_STATE_DIR and --lake / KOBE_LAKE_DIR",
}


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def describe_error(exc: BaseException) -> str:
    """One line for `exc`: what went wrong, where, and what to do."""
    if isinstance(exc, KobeError):
        return str(exc)
    if isinstance(exc, OSError):
        where = " and ".join(str(name) for name in (exc.filename, exc.filename2) if name is not None)
        what = exc.strerror or type(exc).__name__
        hint = _OS_HINTS.get(exc.errno)
        text = f"{what}: {where}" if where else what
        return f"{text} ({hint})" if hint else text
    if isinstance(exc, sqlite3.OperationalError):
        return (f"SQLite: {exc} (a database in the state folder could not be used: the folder must be writable, "
                "with free space)")
    return (f"internal error (a bug, please report it): {type(exc).__name__}: {exc} "
            f"(set {DEBUG_ENV}=1 for the traceback)")


class CommandFailure(click.ClickException):
    """An error a command did not handle itself, shown as one `error: ...` line."""

    def __init__(self, message: str, exit_code: int = 1):
        super().__init__(message)
        self.exit_code = exit_code

    def show(self, file=None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


def usage_failure(exc: click.UsageError) -> CommandFailure:
    """A usage error as one line, keeping its exit code."""
    hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
    return CommandFailure(f"{exc.format_message()}{hint}", exc.exit_code)


def failure(exc: Exception, exit_code: int = 1, hint: str = "") -> CommandFailure:
    """`exc` as a `CommandFailure`; with KOBE_DEBUG set, `exc` itself is re-raised (traceback shown)."""
    if debug_enabled():
        raise exc
    message = describe_error(exc)
    return CommandFailure(f"{message}; {hint}" if hint else message, exit_code)


class KobeGroup(click.Group):
    """The root `kobe` group: every error below it ends as one line (see the module docstring)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except click.exceptions.NoArgsIsHelpError:
            raise  # a group called bare: its help is the answer
        except click.UsageError as exc:
            raise usage_failure(exc) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise failure(exc) from exc


class GuardedCommand(click.Command):
    """A command whose exit codes carry a meaning of their own.

    `usage_exit_code` replaces click's 2 for bad arguments; an error the command does not handle
    itself exits `failure_exit_code` with `failure_hint` after the one-line description.
    """

    usage_exit_code = 2
    failure_exit_code = 1
    failure_hint = ""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.exceptions.NoArgsIsHelpError:
            raise
        except click.UsageError as exc:
            exc.exit_code = self.usage_exit_code
            raise

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:
            raise failure(exc, self.failure_exit_code, self.failure_hint) from exc
