"""User-facing errors: one line on stderr that names the file, line or parameter; never a traceback."""
from __future__ import annotations

import functools
import sys
from typing import Callable


class UserError(Exception):
    """Bad input the user can fix. The message is the whole one-line report."""

    exit_code = 1


class ConfigError(UserError):
    """A bad value in params.yaml (or a stage override): exit code 2, before any work starts."""

    exit_code = 2


class DataError(UserError):
    """A bad input file or corpus: names the file and line where there is one."""


def stage_entry_point(main: Callable[[], None]) -> Callable[[], None]:
    """Wrap a stage's main(): a UserError becomes one line on stderr and a non-zero exit."""

    @functools.wraps(main)
    def wrapper() -> None:
        try:
            main()
        except UserError as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(error.exit_code)

    return wrapper
