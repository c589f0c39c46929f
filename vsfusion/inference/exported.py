"""Running an exported model (ONNX Runtime, LiteRT, a TensorFlow SavedModel) without Keras.

:mod:`vsfusion.export` writes the exports (it needs Keras and TensorFlow); this module only runs
them, importing the format's own runtime when a model is opened, so that a process predicting with
an ONNX export (``predict.py`` with ``--engine onnx``) never loads a deep-learning framework.
An export folder holds the artifact (:data:`ARTIFACTS`) and :data:`EXPORT_RECORD`, which says
what was exported and how closely the export matched Keras (``export.py`` writes both).

Example:
    >>> ARTIFACTS["onnx"], EXPORT_RECORD
    ('model.onnx', 'export.json')
    >>> runner = load_exported("run/export/onnx/model.onnx", "onnx")  # doctest: +SKIP
    >>> runner({"video": clips}).shape  # doctest: +SKIP
    (4, 8)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "ARTIFACTS",
    "EXPORT_FORMATS",
    "EXPORT_RECORD",
    "QUANTIZE_MODES",
    "ExportUnsupported",
    "ExportedModel",
    "error_text",
    "find_export",
    "load_exported",
]

#: The formats :func:`export_model` writes.
EXPORT_FORMATS: tuple[str, ...] = ("savedmodel", "onnx", "litert")
#: LiteRT quantisation modes (``none`` is float32).
QUANTIZE_MODES: tuple[str, ...] = ("none", "dynamic", "int8")
#: The file (or folder) each format writes inside an export folder.
ARTIFACTS: dict[str, str] = {
    "savedmodel": "saved_model",
    "onnx": "model.onnx",
    "litert": "model.tflite",
}


#: What ``export.py`` writes beside the artifact: the source, format, check figures, versions.
EXPORT_RECORD = "export.json"


class ExportUnsupported(ValueError):
    """A model, format or option this exporter cannot handle; the message says why in one line."""


class ExportedModel:
    """An exported model, called like a Keras model on a dict of float32 inputs.

    Args:
        path: The artifact written by :func:`vsfusion.export.export_model`.
        fmt: Its format.
        threads: CPU threads of the runtime (None: its default).

    Call arguments:
        inputs: ``{input name: (B, ...) array}``.

    Returns:
        ``(B, K)`` float32 outputs. LiteRT runs one sample at a time (its interpreter is sized
        for batch 1); the others run the batch at once.

    Example:
        >>> runner = ExportedModel("run/export/litert/model.tflite", "litert")  # doctest: +SKIP
        >>> runner.input_names  # doctest: +SKIP
        ['video']
    """

    def __init__(self, path: str | os.PathLike, fmt: str, threads: int | None = None) -> None:
        if fmt not in EXPORT_FORMATS:
            raise ExportUnsupported(
                f"unknown format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
            )
        self.path, self.fmt = Path(path), fmt
        if fmt == "savedmodel":
            import tensorflow as tf  # a SavedModel is TensorFlow's format

            self._tf = tf
            self._loaded = tf.saved_model.load(str(self.path))
            self._fn = self._loaded.signatures["serving_default"]
            self.input_names = sorted(self._fn.structured_input_signature[1])
        elif fmt == "onnx":
            import onnxruntime as ort

            options = ort.SessionOptions()
            if threads:
                options.intra_op_num_threads = threads
            self._session = ort.InferenceSession(
                str(self.path), options, providers=["CPUExecutionProvider"]
            )
            self.input_names = [i.name for i in self._session.get_inputs()]
        else:
            interpreter = _litert_interpreter(self.path, threads)
            self._runner = interpreter.get_signature_runner()
            self.input_names = sorted(self._runner.get_input_details())

    def __call__(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        missing = [n for n in self.input_names if n not in inputs]
        if missing:
            raise ValueError(f"{self.path}: inputs {missing} missing; it takes {self.input_names}")
        x = {n: np.ascontiguousarray(inputs[n], dtype=np.float32) for n in self.input_names}
        if self.fmt == "savedmodel":
            out = self._fn(**{n: self._tf.constant(v) for n, v in x.items()})
            return np.asarray(next(iter(out.values())))
        if self.fmt == "onnx":
            return np.asarray(self._session.run(None, x)[0])
        n = len(next(iter(x.values())))
        rows = [self._runner(**{k: v[i : i + 1] for k, v in x.items()}) for i in range(n)]
        return np.concatenate([np.asarray(next(iter(r.values()))) for r in rows])


def _litert_interpreter(path: Path, threads: int | None) -> Any:
    """The ``ai-edge-litert`` interpreter (TensorFlow's deprecated ``tf.lite`` one without it)."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:  # pragma: no cover - ai-edge-litert is in requirements.txt
        import tensorflow as tf

        Interpreter = tf.lite.Interpreter  # noqa: N806
    return Interpreter(model_path=str(path), num_threads=threads)


def load_exported(path: str | os.PathLike, fmt: str, threads: int | None = None) -> ExportedModel:
    """Open an exported model to run it (see :class:`ExportedModel`).

    Example:
        >>> probs = load_exported("run/export/onnx/model.onnx", "onnx")({"video": clips})  # doctest: +SKIP
    """
    return ExportedModel(path, fmt, threads)


def error_text(exc: BaseException, limit: int = 200) -> str:
    """``"TypeName: first non-blank line"`` of a converter's or runtime's exception, the line cut
    at ``limit`` characters: their messages run to pages of graph dumps.

    Example:
        >>> error_text(RuntimeError("\\n  bad node\\ndetails ..."))
        'RuntimeError:   bad node'
    """
    first = next((line for line in str(exc).splitlines() if line.strip()), "")
    return f"{type(exc).__name__}: {first[:limit]}"


def find_export(model_file: str | os.PathLike, fmt: str = "onnx") -> Path | None:
    """The float32 ``fmt`` export of ``model_file`` that ``export.py`` wrote beside it, if any.

    Looks in ``<folder of model_file>/export/*/`` for an :data:`EXPORT_RECORD` whose format is
    ``fmt``, unquantised, exported from a file of ``model_file``'s name, with its artifact
    present; the newest such export wins.

    Returns:
        The artifact's path, or None.

    Example:
        >>> find_export("checkpoints/demo/fusion/run1/deploy.keras") is None
        True
    """
    model_file = Path(model_file)
    found = []
    for record in (model_file.parent / "export").glob(f"*/{EXPORT_RECORD}"):
        try:
            info = json.loads(record.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if not isinstance(info, dict):
            continue
        artifact = record.parent / str(info.get("artifact", ARTIFACTS.get(fmt, "")))
        ok = (
            info.get("format") == fmt
            and info.get("quantize") == "none"
            and Path(str(info.get("source", ""))).name == model_file.name
            and artifact.exists()
        )
        if ok:
            found.append((record.stat().st_mtime, artifact))
    return max(found)[1] if found else None
