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
            _end_tracked_runs("FAILED")
            print(f"error: {error}", file=sys.stderr)
            sys.exit(error.exit_code)
        except KeyboardInterrupt:
            _end_tracked_runs("KILLED")
            raise
        except SystemExit as exit_:  # Lightning turns Ctrl-C and SIGTERM during fit into sys.exit(1)
            if exit_.code not in (0, None):
                _end_tracked_runs("KILLED")
            raise
        except Exception:
            _end_tracked_runs("FAILED")
            raise  # a bug, not bad input: keep the traceback
        # Done: what the stage opened is finished, but the pipeline's run waits for the report stage.
        _end_tracked_runs("FINISHED", keep_pipeline=True)

    return wrapper


def _end_tracked_runs(status: str, keep_pipeline: bool = False) -> None:
    """The MLflow runs this stage opened end with ``status`` (only if it opened any: MLflow is slow
    to import, and most input errors come before it)."""
    tracking = sys.modules.get("pipeline.tracking.runs")
    if tracking is not None:
        tracking.end_open_runs(status, keep_pipeline)
