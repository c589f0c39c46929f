"""Process-wide runtime settings applied before TensorFlow loads, and a description of the machine.

TensorFlow uses its oneDNN kernels by default only on CPUs with AVX-512 VNNI/BF16 or AMX; on an
AVX2-only CPU every Conv3D then runs on a fallback that trains I3D 2-3x slower. Importing
``vsfusion`` (every script, ``reproduce.py``, the tests and the benchmarks do so before Keras)
calls :func:`configure` to turn oneDNN on unless the user set ``TF_ENABLE_ONEDNN_OPTS`` already
(``TF_ENABLE_ONEDNN_OPTS=0`` keeps it off). TensorFlow reads the variable once, when it is first
imported, so a program that imports TensorFlow before vsfusion keeps TensorFlow's own choice;
:func:`machine_info` reports what is in effect, and every ``run.json`` records it.

Example:
    >>> info = machine_info()
    >>> sorted(info)[:3]
    ['cpu_model', 'cpus', 'onednn']
"""

from __future__ import annotations

import importlib
import logging
import os
import platform
import re
import sys
import tempfile
from functools import cache
from typing import Any

__all__ = [
    "ONEDNN_VARIABLE",
    "OPTIONAL_IMPORTS",
    "configure",
    "cpu_flags",
    "import_backend_quietly",
    "machine_info",
    "setup_logging",
    "simd_level",
    "skip_optional_imports",
]

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"


def configure() -> None:
    """Turn TensorFlow's oneDNN kernels on (unless the user chose) and quiet its C++ logging.

    Has an effect only before TensorFlow is first imported; safe to call more than once.
    """
    os.environ.setdefault(ONEDNN_VARIABLE, "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


#: What TensorFlow's C++ side prints at import whatever ``TF_CPP_MIN_LOG_LEVEL`` says (TensorFlow
#: 2.21 logs these before absl's logging is initialised, so the level is not yet in force).
_IMPORT_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|I\d{4} [\d:. ]+\d+ (port\.cc|cpu_feature_guard\.cc):\d+\] "
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags"
)


def setup_logging(verbose: int = 1) -> None:
    """Plain one-line logging for the command-line scripts."""
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )


def import_backend_quietly() -> None:
    """Import the Keras backend (TensorFlow by default) without its start-up chatter on stderr.

    TensorFlow 2.21 prints its oneDNN and CPU-feature notices at import even with
    ``TF_CPP_MIN_LOG_LEVEL=3``, which buries a command's one-line ``error:`` message. Standard
    error is captured at the file-descriptor level while the backend loads; those notices are
    dropped and anything else (a real warning or error) is written back. A no-op when the backend
    is already loaded or stderr has no file descriptor.
    """
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    module = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}.get(backend)
    if module is None or module in sys.modules:
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        importlib.import_module(module)
        return
    sys.stderr.flush()
    saved = os.dup(fd)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), fd)
        try:
            importlib.import_module(module)
        finally:
            os.dup2(saved, fd)
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode("utf8", errors="replace")
            kept = [line for line in text.splitlines(True) if not _IMPORT_NOISE.search(line)]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


#: Packages TensorFlow and Keras import at start-up when they are installed, each behind
#: ``try: import ... except ImportError``, that inference never uses: JAX (TensorFlow's TFLite
#: converter), scikit-learn (Keras' scikit-learn wrappers) and matplotlib (Keras' image gallery).
#: Together about a quarter of ``import keras`` on the machines measured (README, predict.py).
OPTIONAL_IMPORTS = ("jax", "sklearn", "matplotlib")


def skip_optional_imports(names: tuple[str, ...] = OPTIONAL_IMPORTS) -> list[str]:
    """Make ``import NAME`` fail fast in this process for the packages ``names`` not loaded yet.

    For short-lived inference processes (``predict.py``), before Keras is imported: TensorFlow and
    Keras then take their ``ImportError`` branches instead of loading packages they do not need
    there. The Keras backend's own package (``KERAS_BACKEND=jax``) is never skipped. Do not call it
    in a process that uses one of them.

    Returns:
        The names skipped.

    Example:
        >>> skip_optional_imports(())
        []
    """
    backend = os.environ.get("KERAS_BACKEND", "tensorflow")
    skipped = [n for n in names if n not in sys.modules and n != backend]
    for name in skipped:
        sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
    return skipped


@cache
def _cpuinfo() -> tuple[str, frozenset[str]]:
    model, flags = platform.processor() or platform.machine(), frozenset()
    try:
        text = open("/proc/cpuinfo", encoding="utf8", errors="replace").read()  # noqa: SIM115
    except OSError:
        return model, flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and value.strip():
            model = value.strip()
        elif key == "flags" and not flags:
            flags = frozenset(value.split())
    return model, flags


def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of ``/proc/cpuinfo`` (empty where it does not exist)."""
    return _cpuinfo()[1]


def simd_level(flags: frozenset[str] | None = None) -> str:
    """The widest vector extension the CPU has: ``AMX``, ``AVX-512``, ``AVX2``, ``AVX`` or ``SSE``.

    Example:
        >>> simd_level(frozenset({"avx2", "fma"}))
        'AVX2'
    """
    flags = cpu_flags() if flags is None else flags
    if "amx_tile" in flags:
        return "AMX"
    if "avx512f" in flags:
        return "AVX-512"
    if "avx2" in flags:
        return "AVX2"
    if "avx" in flags:
        return "AVX"
    return "SSE" if flags else "unknown"


def _threads() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _onednn_in_effect() -> bool | None:
    """Whether TensorFlow runs with oneDNN (None when TensorFlow is not loaded)."""
    if "tensorflow" not in sys.modules:
        return None
    try:
        from tensorflow.python.util import _pywrap_util_port

        return bool(_pywrap_util_port.IsMklEnabled())
    except (ImportError, AttributeError):  # a TensorFlow build without the probe
        return os.environ.get(ONEDNN_VARIABLE, "") not in ("0", "false", "False")


def machine_info() -> dict[str, Any]:
    """CPU model, SIMD level, usable threads and the oneDNN state, for ``run.json`` and benchmarks.

    ``simd`` is what the CPU has; ``onednn_max_isa`` is set when ``ONEDNN_MAX_CPU_ISA`` caps what
    oneDNN may use (for example ``AVX2`` to imitate an older CPU on a newer one).
    """
    model, flags = _cpuinfo()
    info: dict[str, Any] = {
        "cpu_model": model,
        "simd": simd_level(flags),
        "cpus": _threads(),
        "onednn": _onednn_in_effect(),
        "onednn_variable": os.environ.get(ONEDNN_VARIABLE),
    }
    if os.environ.get("ONEDNN_MAX_CPU_ISA"):
        info["onednn_max_isa"] = os.environ["ONEDNN_MAX_CPU_ISA"]
    for name in ("OMP_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
        if os.environ.get(name):
            info[name.lower()] = os.environ[name]
    return info
