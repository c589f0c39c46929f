"""Entry-point plumbing shared by the stage scripts: parse, log, run, and turn errors into one line."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from vsfusion.config import StageConfig, parse_config

__all__ = ["run_cli"]

C = TypeVar("C", bound=StageConfig)


def run_cli(cls: type[C], stage: Callable[[C], Any], argv: list[str] | None = None) -> int:
    """Parse ``argv`` into ``cls``, run ``stage`` and return a process exit code.

    Errors a user can fix (bad data, missing checkpoints, bad options) print one ``error:`` line
    naming the file and the fix and return 2; anything else is a bug and keeps its traceback.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    cfg = parse_config(cls, argv)
    from vsfusion.data import DataError
    from vsfusion.stages.common import RunDir, StageError, setup_logging

    setup_logging(cfg.verbose)
    try:
        stage(cfg)
    except (DataError, StageError, FileNotFoundError) as exc:
        logging.getLogger("vsfusion").debug("stage failed", exc_info=True)
        RunDir.discard_incomplete()  # no half-written run directory stays behind
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
