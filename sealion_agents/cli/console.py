"""The terminal: where output and errors go, and which errors a user can fix."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console

from sealion_agents.errors import SeaLionError

__all__ = ["USER_ERRORS", "CliError", "err", "friendly_errors", "out"]

out = Console(highlight=False)
err = Console(stderr=True, highlight=False)


class CliError(SeaLionError):
    """A problem the user can fix; printed without a traceback."""


#: What a user can fix (our errors, bad paths and values, a missing extra, the OS refusing):
#: one line, exit status 1. Anything else is a bug and keeps its traceback.
USER_ERRORS = (SeaLionError, FileNotFoundError, ValueError, ImportError, OSError)


@contextmanager
def friendly_errors() -> Iterator[None]:
    """Print a user's error as one line and exit with status 1; let bugs raise."""
    try:
        yield
    except USER_ERRORS as exc:
        err.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=1) from exc
