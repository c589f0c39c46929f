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


def _stages_common() -> Any:
    """:mod:`vsfusion.stages.common` if this process imported it, else None.

    Importing it loads the Keras backend, which a stage that never trains (``predict.py`` on an
    ONNX export) does without; and when it was never imported, none of its run folders exists
    and its :class:`~vsfusion.stages.common.StageError` cannot have been raised.
    """
    return sys.modules.get("vsfusion.stages.common")


def _user_errors() -> tuple[type[BaseException], ...]:
    """The exception types reported as one line."""
    from vsfusion.data.errors import DataError

    common = _stages_common()
    stage_errors = (common.StageError,) if common is not None else ()
    return (ConfigError, DataError, *stage_errors, FileNotFoundError)


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
    from vsfusion.runtime import setup_logging

    setup_logging(cfg.verbose)
    try:
        stage(cfg)
    except _user_errors() as exc:
        logging.getLogger("vsfusion").debug("stage failed", exc_info=True)
        common = _stages_common()
        if common is not None:
            common.RunDir.discard_incomplete()  # no half-written run directory stays behind
        return _report(exc)
    return 0
