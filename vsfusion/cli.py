"""Entry-point plumbing shared by the stage scripts: parse, log, run, and turn errors into one line.

Library code raises exceptions and never exits; this is the one place that turns the errors a user
can fix into a message and an exit code. Those errors have their own types, raised where the fault
is found, with a message naming the file and the fix:

* :class:`vsfusion.config.ConfigError` (a ``ValueError``): a bad ``--config`` file or value;
* :class:`vsfusion.data.DataError`: missing, corrupt or malformed data and caches;
* :class:`vsfusion.stages.common.StageError` (a ``RuntimeError``): a checkpoint or ``--pretrain``
  file that is missing, unreadable or does not fit the model, an earlier stage not run, ...;
* ``FileNotFoundError``.

They are printed as one ``error:`` line, exit code 2, and the run directory being written is
removed. A plain ``ValueError`` or ``RuntimeError`` is deliberately *not* caught: where one is a
user's fault (keras refusing a weights file, numpy a corrupt ``.npy``), the code that calls keras or
numpy converts it into one of the types above, so that a real bug keeps its traceback instead of
becoming a one-line message. Argparse errors (unknown flag, bad choice) exit 2 with one line from
the parser itself.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any, TypeVar

from vsfusion.config import ConfigError, StageConfig, parse_config

__all__ = ["run_cli"]

C = TypeVar("C", bound=StageConfig)


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exception types reported as one line (imported late: ``--help`` loads no TensorFlow)."""
    from vsfusion.data import DataError
    from vsfusion.stages.common import StageError

    return (ConfigError, DataError, StageError, FileNotFoundError)


def _report(exc: BaseException) -> int:
    text = " ".join(str(exc).split()) or exc.__class__.__name__  # one line, whatever the message
    print(f"error: {text}", file=sys.stderr)
    return 2


def run_cli(cls: type[C], stage: Callable[[C], Any], argv: list[str] | None = None) -> int:
    """Parse ``argv`` into ``cls``, run ``stage`` and return a process exit code.

    Errors a user can fix (bad data, missing or mismatched checkpoints, bad options or config
    files; see the module docstring) print one ``error:`` line naming the file and the fix, leave
    no ``.incomplete`` run folder and return 2; anything else is a bug and keeps its traceback.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    try:
        cfg = parse_config(cls, argv)
    except ConfigError as exc:
        return _report(exc)
    from vsfusion.runtime import import_backend_quietly

    import_backend_quietly()  # TensorFlow's start-up notices would bury the one-line error
    from vsfusion.stages.common import RunDir, setup_logging

    setup_logging(cfg.verbose)
    try:
        stage(cfg)
    except _user_errors() as exc:
        logging.getLogger("vsfusion").debug("stage failed", exc_info=True)
        RunDir.discard_incomplete()  # no half-written run directory stays behind
        return _report(exc)
    return 0
