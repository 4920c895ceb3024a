"""The one exception type for bad evaluation input, and how every command reports expected errors."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import typer

_tracebacks = {"on": False}  # set per invocation by ``clic --debug``


class EvalInputError(ValueError):
    """Unusable input (image, folder, submission layout, CSV); the message is one line naming the path."""


def show_tracebacks(on: bool) -> None:
    """Let expected errors propagate with their traceback (``clic --debug``) or not."""
    _tracebacks["on"] = on


@contextmanager
def one_line_errors(*expected: type[BaseException]) -> Iterator[None]:
    """Turn an expected failure into one line on stderr and exit status 2 (unless showing tracebacks)."""
    try:
        yield
    except expected as exc:
        if _tracebacks["on"]:
            raise
        message = " ".join(str(exc).split()) or type(exc).__name__
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
