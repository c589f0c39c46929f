"""Export a Keras model to a TensorFlow SavedModel, ONNX or LiteRT file, and run the exported file.

Every format goes through Keras 3's own exporter (``model.export(path, format=...)``) under the
TensorFlow backend:

* ``savedmodel``: ``format="tf_saved_model"``; run with ``tf.saved_model.load`` (its
  ``serving_default`` signature takes the Keras input names as keywords).
* ``onnx``: ``format="onnx"``, which converts with ``tf2onnx`` (1.17 or later: earlier releases
  pinned ``protobuf~=3.20``, which TensorFlow 2.21 cannot use); run with ONNX Runtime. The ONNX
  inputs carry the Keras input names.
* ``litert``: ``format="litert"`` (``tf.lite.TFLiteConverter.from_saved_model``), restricted here
  to LiteRT's *built-in* operators, so that the file runs in the plain ``ai-edge-litert``
  interpreter (Keras alone would also allow TensorFlow ("Flex") operators, which neither
  ``ai-edge-litert`` nor TensorFlow 2.21's ``tf.lite.Interpreter`` can run). LiteRT has no 3-D
  pooling operator, so :func:`litert_compatible` first replaces every ``MaxPooling3D`` and
  ``AveragePooling3D`` (I3D has both) by :class:`SeparablePooling3D`: the same pooling as a
  2-D pooling over height and width followed by a 1-D pooling over time, which gives the same
  numbers (a maximum or a mean over a box is the maximum or mean over one side of the means or
  maxima over the other, and TensorFlow's "same" padding, which leaves padded cells out of a
  mean, pads each axis on its own). ``Conv3D`` is a built-in operator. Optional quantisation:
  ``dynamic`` (int8 weights, float activations) or ``int8`` (int8 weights and activations,
  calibrated on a representative dataset; operators without an int8 kernel, such as
  ``CONV_3D``, stay float32). Inputs and outputs stay float32 in every case.

The models exported are those with one output (class probabilities): classifiers, trunks and the
fusion stage's ``deploy.keras``.

Example:
    >>> info = export_model(model, "out/model.onnx", "onnx")  # doctest: +SKIP
    >>> runner = load_exported("out/model.onnx", "onnx")  # doctest: +SKIP
    >>> runner({"video": clips}).shape  # doctest: +SKIP
    (4, 8)
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import ops

from vsfusion.inference.exported import (
    ARTIFACTS,
    EXPORT_FORMATS,
    EXPORT_RECORD,
    QUANTIZE_MODES,
    ExportedModel,
    ExportUnsupported,
    error_text,
    load_exported,
)

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_RECORD",
    "QUANTIZE_MODES",
    "ARTIFACTS",
    "ExportUnsupported",
    "ExportedModel",
    "SeparablePooling3D",
    "litert_compatible",
    "export_model",
    "load_exported",
    "keras_predict",
    "compare_outputs",
    "export_versions",
]

logger = logging.getLogger(__name__)

_KERAS_FORMAT = {"savedmodel": "tf_saved_model", "onnx": "onnx", "litert": "litert"}


@keras.saving.register_keras_serializable(package="vsfusion")
class SeparablePooling3D(keras.layers.Layer):
    """3-D max or average pooling computed as a 2-D pooling over (height, width), then a 2-D
    pooling of window ``(time, 1)`` over (time, height x width): the same numbers as
    ``MaxPooling3D`` / ``AveragePooling3D`` (channels last) from operators LiteRT has built in.

    Args:
        kind: ``"max"`` or ``"average"``.
        pool_size: ``(t, h, w)`` window.
        strides: ``(t, h, w)`` strides.
        padding: ``"valid"`` or ``"same"`` (a mean leaves padded cells out, as TensorFlow does).
        **kwargs: Base layer arguments (``name``, ...).

    Example:
        >>> layer = SeparablePooling3D("max", (3, 3, 3), (1, 2, 2), "same")
        >>> tuple(layer(np.zeros((1, 4, 8, 8, 2), "float32")).shape)
        (1, 4, 4, 4, 2)
    """

    def __init__(
        self,
        kind: str,
        pool_size: Sequence[int],
        strides: Sequence[int],
        padding: str = "valid",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if kind not in ("max", "average"):
            raise ValueError(f"SeparablePooling3D: kind must be 'max' or 'average', got {kind!r}")
        self.kind = kind
        self.pool_size = tuple(int(p) for p in pool_size)
        self.strides = tuple(int(s) for s in strides)
        self.padding = str(padding).lower()

    @classmethod
    def from_layer(cls, layer: keras.layers.Layer) -> SeparablePooling3D:
        """The twin of a channels-last ``MaxPooling3D`` or ``AveragePooling3D`` layer."""
        kind = "max" if isinstance(layer, keras.layers.MaxPooling3D) else "average"
        return cls(kind, layer.pool_size, layer.strides, layer.padding, name=layer.name)

    def _pool(self, x: Any, window: tuple[int, int], strides: tuple[int, int]) -> Any:
        if window == (1, 1) and strides == (1, 1):
            return x
        pool = ops.max_pool if self.kind == "max" else ops.average_pool
        return pool(x, window, strides, self.padding)

    def call(self, inputs: Any) -> Any:
        t, h, w, c = (int(d) for d in inputs.shape[1:])
        kt, kh, kw = self.pool_size
        st, sh, sw = self.strides
        x = ops.reshape(inputs, (-1, h, w, c))
        x = self._pool(x, (kh, kw), (sh, sw))
        h2, w2 = int(x.shape[1]), int(x.shape[2])
        x = ops.reshape(x, (-1, t, h2 * w2, c))
        x = self._pool(x, (kt, 1), (st, 1))
        return ops.reshape(x, (-1, int(x.shape[1]), h2, w2, c))

    def compute_output_shape(self, input_shape: Sequence[int | None]) -> tuple[int | None, ...]:
        def size(n: int, k: int, s: int) -> int:
            return -(-n // s) if self.padding == "same" else (n - k) // s + 1

        dims = [
            size(int(n), k, s)
            for n, k, s in zip(input_shape[1:4], self.pool_size, self.strides, strict=True)
        ]
        return (input_shape[0], *dims, input_shape[4])

    def get_config(self) -> dict[str, Any]:
        return {
            **super().get_config(),
            "kind": self.kind,
            "pool_size": list(self.pool_size),
            "strides": list(self.strides),
            "padding": self.padding,
        }


def _is_pooling3d(layer: keras.layers.Layer) -> bool:
    return isinstance(layer, (keras.layers.MaxPooling3D, keras.layers.AveragePooling3D))


def litert_compatible(model: keras.Model) -> tuple[keras.Model, list[str]]:
    """``model`` with every 3-D pooling layer (nested models included) replaced by its
    :class:`SeparablePooling3D` twin, and the names of the layers replaced.

    The other layers are shared with ``model`` (same weights, nothing copied). A model without
    3-D pooling is returned as it is.

    Raises:
        ExportUnsupported: A 3-D pooling layer in ``channels_first`` layout.

    Example:
        >>> friendly, replaced = litert_compatible(build_i3d((8, 32, 32, 3), 4))  # doctest: +SKIP
        >>> replaced[:2]  # doctest: +SKIP
        ['MaxPool2d_2a_3x3', 'MaxPool2d_3a_3x3']
    """
    pools = [layer for layer in model._flatten_layers() if _is_pooling3d(layer)]
    if not pools:
        return model, []
    for layer in pools:
        if layer.data_format != "channels_last":
            raise ExportUnsupported(
                f"layer {layer.name}: 3-D pooling in {layer.data_format} layout cannot be "
                "rewritten for LiteRT; export to onnx or savedmodel"
            )

    def clone(layer: keras.layers.Layer) -> keras.layers.Layer:
        return SeparablePooling3D.from_layer(layer) if _is_pooling3d(layer) else layer

    rewritten = keras.models.clone_model(model, clone_function=clone, recursive=True)
    return rewritten, [layer.name for layer in pools]


def _as_model_input(model: keras.Model, arrays: Mapping[str, Any]) -> Any:
    """``arrays`` (keyed by input name) in the structure ``model`` was built with: a dict, or
    its inputs in order (one bare tensor for one input)."""
    if isinstance(getattr(model, "_inputs_struct", None), dict):
        return dict(arrays)
    names = [t.name for t in model.inputs]
    return arrays[names[0]] if len(names) == 1 else [arrays[n] for n in names]


def _single_output(model: keras.Model) -> None:
    outputs = model.outputs
    if len(outputs) != 1:
        names = [getattr(t, "name", "?") for t in keras.tree.flatten(model.output)]
        raise ExportUnsupported(
            f"model {model.name} has {len(outputs)} outputs {names}; export a model with one "
            "output (a classifier's best.keras or a fusion run's deploy.keras)"
        )


def export_model(
    model: keras.Model,
    path: str | os.PathLike,
    fmt: str,
    *,
    quantize: str = "none",
    representative: Callable[[], Iterable[dict[str, np.ndarray]]] | None = None,
) -> dict[str, Any]:
    """Write ``model`` to ``path`` in format ``fmt`` with Keras' exporter.

    Args:
        model: A Keras model with one output; the TensorFlow backend must be active.
        path: The artifact: a folder for ``savedmodel``, a ``.onnx`` or ``.tflite`` file.
        fmt: One of :data:`EXPORT_FORMATS`.
        quantize: ``litert`` only: one of :data:`QUANTIZE_MODES`.
        representative: ``quantize="int8"``: a function returning an iterable of input dicts
            (one sample each, batch 1), the calibration data.

    Returns:
        ``{"rewrites": [...]}``: the layers replaced for the format (see
        :func:`litert_compatible`).

    Raises:
        ExportUnsupported: An unknown format or mode, a model with several outputs, another
            backend than TensorFlow, or a converter that refuses the model (its first line).
    """
    if fmt not in EXPORT_FORMATS:
        raise ExportUnsupported(
            f"unknown format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}"
        )
    if quantize not in QUANTIZE_MODES:
        raise ExportUnsupported(
            f"unknown quantisation {quantize!r}; choose one of {', '.join(QUANTIZE_MODES)}"
        )
    if quantize != "none" and fmt != "litert":
        raise ExportUnsupported(
            f"--quantize {quantize} applies to litert exports only; drop it or use --format litert"
        )
    if quantize == "int8" and representative is None:
        raise ExportUnsupported("int8 quantisation needs representative (calibration) inputs")
    if keras.backend.backend() != "tensorflow":
        raise ExportUnsupported(
            f"exporting runs under the TensorFlow backend, not {keras.backend.backend()}; "
            "unset KERAS_BACKEND or set it to tensorflow"
        )
    _single_output(model)
    if not getattr(model, "_called", True):  # Keras' ONNX exporter refuses a never-called model
        zeros = {
            t.name: np.zeros([1, *(d or 1 for d in t.shape[1:])], "float32") for t in model.inputs
        }
        model(_as_model_input(model, zeros))
    kwargs: dict[str, Any] = {}
    rewrites: list[str] = []
    if fmt == "litert":
        import tensorflow as tf  # the LiteRT converter is TensorFlow's

        model, rewrites = litert_compatible(model)
        kwargs["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
        if quantize != "none":
            kwargs["optimizations"] = [tf.lite.Optimize.DEFAULT]
        if quantize == "int8":
            kwargs["representative_dataset"] = lambda: (
                {k: np.asarray(v, np.float32) for k, v in sample.items()}
                for sample in representative()
            )
    try:
        if fmt == "onnx":
            _export_onnx(model, Path(path))
        else:
            with warnings.catch_warnings():  # int8 calibration runs the deprecated tf.lite one
                warnings.filterwarnings("ignore", message=".*tf.lite.Interpreter is deprecated")
                model.export(str(path), format=_KERAS_FORMAT[fmt], verbose=False, **kwargs)
    except ImportError as exc:
        raise ExportUnsupported(
            f"{fmt} export needs {exc.name or exc}: pip install -r requirements.txt"
        ) from None
    except Exception as exc:  # noqa: BLE001 - any converter failure means: not convertible
        logger.debug("%s export of %s failed", fmt, model.name, exc_info=True)
        raise ExportUnsupported(
            f"model {model.name} cannot be exported to {fmt} ({error_text(exc, 300)})"
        ) from None
    return {"rewrites": rewrites}


def _export_onnx(model: keras.Model, path: Path, opset: int | None = None) -> None:
    """Convert ``model``'s inference function with tf2onnx, its inputs named as the model's and
    its output ``output_0`` (as in the SavedModel signature).

    This is what ``model.export(format="onnx")`` does under TensorFlow, except for the inputs:
    ``tf2onnx.convert.from_function`` takes every input of the traced function as a graph input,
    including the constants the graph captures (the mean and variance of a ``Normalization``
    layer, which the sensor trunks and the fusion MLP have), so the ONNX file would ask for
    them at run time. Here only the model's own inputs are inputs; the captured constants are
    frozen into the graph with the weights.
    """
    logging.getLogger("tf2onnx").setLevel(logging.WARNING)
    tf_logger = logging.getLogger("tensorflow")  # tf2onnx freezes with TF1 APIs: deprecation noise
    level = tf_logger.level
    tf_logger.setLevel(logging.ERROR)
    try:
        _convert_onnx(model, path, opset)
    finally:
        tf_logger.setLevel(level)


def _convert_onnx(model: keras.Model, path: Path, opset: int | None) -> None:
    import tensorflow as tf
    import tf2onnx
    from tf2onnx import tf_loader

    specs = {
        t.name: tf.TensorSpec([None, *t.shape[1:]], tf.float32, name=t.name) for t in model.inputs
    }
    function = tf.function(lambda inputs: model(_as_model_input(model, inputs), training=False))
    concrete = function.get_concrete_function(specs)
    own = len(concrete.inputs) - len(concrete.captured_inputs)
    input_names = [t.name for t in concrete.inputs[:own]]
    output_names = [t.name for t in concrete.outputs]
    renames = tf2onnx.convert.tensor_names_from_structed(concrete, input_names, output_names)
    renames[output_names[0]] = "output_0"
    with tf.device("/cpu:0"):
        frozen = tf_loader.from_function(concrete, input_names, output_names)
    tf2onnx.convert.from_graph_def(
        frozen,
        name=model.name,
        input_names=input_names,
        output_names=output_names,
        opset=opset,
        tensors_to_rename=renames,
        output_path=str(path),
    )


def keras_predict(
    model: keras.Model, inputs: Mapping[str, np.ndarray], batch: int = 8
) -> np.ndarray:
    """``model``'s outputs on ``inputs`` (inference mode), ``batch`` samples per call."""
    names = [t.name for t in model.inputs]
    n = len(inputs[names[0]])
    outs = []
    for i in range(0, n, batch):
        x = {k: np.asarray(inputs[k][i : i + batch], np.float32) for k in names}
        outs.append(keras.ops.convert_to_numpy(model(_as_model_input(model, x), training=False)))
    return np.concatenate(outs).astype(np.float32)


def compare_outputs(
    reference: np.ndarray, exported: np.ndarray, labels: np.ndarray | None = None
) -> dict[str, Any]:
    """How far the exported model's probabilities are from Keras' on the same inputs.

    Returns:
        ``n``, ``max_abs_diff`` (over every sample and class), ``top1_agreement`` (fraction of
        samples with the same most probable class) and, with ``labels``, each model's accuracy
        (``keras_accuracy``, ``export_accuracy``).

    Example:
        >>> a = np.array([[0.7, 0.3], [0.4, 0.6]])
        >>> compare_outputs(a, np.array([[0.6, 0.4], [0.5, 0.5]]))["top1_agreement"]
        0.5
    """
    reference, exported = np.asarray(reference), np.asarray(exported)
    if reference.shape != exported.shape:
        raise ValueError(f"output shapes differ: Keras {reference.shape}, export {exported.shape}")
    same = reference.argmax(-1) == exported.argmax(-1)
    out: dict[str, Any] = {
        "n": int(len(reference)),
        "max_abs_diff": float(np.abs(reference.astype(np.float64) - exported).max()),
        "top1_agreement": float(same.mean()),
    }
    if labels is not None:
        labels = np.asarray(labels)
        out["keras_accuracy"] = float((reference.argmax(-1) == labels).mean())
        out["export_accuracy"] = float((exported.argmax(-1) == labels).mean())
    return out


def export_versions() -> dict[str, str]:
    """Versions of the packages an export depends on (absent ones left out)."""
    names = (
        "keras",
        "tensorflow-cpu",
        "tensorflow",
        "tf2onnx",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
    )
    found = {}
    for name in names:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
