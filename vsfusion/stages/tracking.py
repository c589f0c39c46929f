"""Training visible while it runs: TensorBoard scalars per epoch, and the history rows behind a
run's ``curves.png``.

:func:`tensorboard_callback` gives the cheapest logger that works here: Keras's own
``keras.callbacks.TensorBoard`` (epoch scalars only: no graph, histograms, images or profiling)
under the TensorFlow backend when the ``tensorboard`` package is installed, else
:class:`EpochScalars`, which writes the same ``train/`` and ``validation/`` event files with the
same ``epoch_<metric>`` tags through TensorFlow's core summary ops (no ``tensorboard`` package
needed, any Keras backend, values passed as plain floats). When TensorFlow cannot be imported,
or a write fails (:class:`NeverFails` guards Keras's callback), one warning is logged and training
goes on without it: logging never fails a run. Steps count epochs from 0, as Keras's callback does (``history.csv`` counts from 1).

Only this module (besides ``vsfusion/data``) imports TensorFlow, lazily, because TensorBoard's
event files are a TensorFlow format; nothing else of TensorFlow is used.

Example:
    >>> cb = tensorboard_callback("checkpoints/demo/sensor/run1/tensorboard")  # doctest: +SKIP
    >>> model.fit(x, y, validation_data=(xv, yv), callbacks=[cb])  # doctest: +SKIP
"""

from __future__ import annotations

import importlib.util
import logging
import os
from pathlib import Path
from typing import Any

import keras

__all__ = ["EpochScalars", "NeverFails", "tensorboard_callback", "history_rows"]

logger = logging.getLogger(__name__)

_warned = False  # one warning per process when TensorBoard logging cannot work


def _warn_once(message: str, *args: Any) -> None:
    global _warned
    if not _warned:
        _warned = True
        logger.warning(message + "; training continues without TensorBoard logs", *args)


def _summary_module() -> Any:
    """``tf.summary``, or None when TensorFlow cannot be imported."""
    if importlib.util.find_spec("tensorflow") is None:
        return None
    try:
        import tensorflow as tf
    except Exception:  # noqa: BLE001 - a broken TensorFlow install must not fail training
        return None
    return tf.summary


def tensorboard_callback(log_dir: str | os.PathLike) -> keras.callbacks.Callback | None:
    """A callback writing loss, metrics and learning rate per epoch as TensorBoard event files
    under ``log_dir/train`` and ``log_dir/validation``; None (and one warning) when this
    environment cannot write them.

    Args:
        log_dir: The folder of this fit's event files (created on the first write).

    Returns:
        ``keras.callbacks.TensorBoard`` (TensorFlow backend with ``tensorboard`` installed), an
        :class:`EpochScalars`, or None.

    Example:
        >>> cb = tensorboard_callback("/tmp/run/tensorboard")  # doctest: +SKIP
        >>> type(cb).__name__  # doctest: +SKIP
        'EpochScalars'
    """
    summary = _summary_module()
    if summary is None:
        _warn_once("TensorFlow cannot be imported, so no TensorBoard event files are written")
        return None
    if keras.backend.backend() == "tensorflow" and importlib.util.find_spec("tensorboard"):
        return NeverFails(
            keras.callbacks.TensorBoard(
                log_dir=str(log_dir),
                histogram_freq=0,
                write_graph=False,
                write_images=False,
                write_steps_per_second=False,
                update_freq="epoch",
                profile_batch=0,
            ),
            str(log_dir),
        )
    return EpochScalars(log_dir, summary)


class NeverFails(keras.callbacks.Callback):
    """Runs ``inner`` (a logging callback); its first exception is one warning, after which it is
    no longer called, so logging never fails a training run.

    Example:
        >>> cb = NeverFails(keras.callbacks.TensorBoard("/tmp/tb"), "/tmp/tb")  # doctest: +SKIP
    """

    _HOOKS = (
        "on_train_begin",
        "on_train_end",
        "on_epoch_begin",
        "on_epoch_end",
        "on_test_begin",
        "on_test_end",
        "on_train_batch_begin",
        "on_train_batch_end",
    )

    def __init__(self, inner: keras.callbacks.Callback, what: str):
        super().__init__()
        self.inner, self.what = inner, what
        self.failed = False
        for hook in self._HOOKS:
            setattr(self, hook, self._guard(hook))

    def _guard(self, hook: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> None:
            if self.failed:
                return
            try:
                getattr(self.inner, hook)(*args, **kwargs)
            except Exception as exc:  # noqa: BLE001 - logging must never fail a training run
                self.failed = True
                _warn_once(
                    "TensorBoard logging to %s failed (%s: %s)", self.what, type(exc).__name__, exc
                )

        return call

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.inner.set_model(model)

    def set_params(self, params: dict[str, Any]) -> None:
        super().set_params(params)
        self.inner.set_params(params)


class EpochScalars(keras.callbacks.Callback):
    """Writes every logged metric and the learning rate at the end of each epoch as TensorBoard
    scalars (``epoch_<name>``; ``val_*`` metrics go to ``validation/`` without the prefix), the
    layout of ``keras.callbacks.TensorBoard(update_freq="epoch")``, without the ``tensorboard``
    package. A failed write logs one warning and turns the callback off.

    Args:
        log_dir: The folder of the event files.
        summary: The ``tf.summary`` module.
    """

    def __init__(self, log_dir: str | os.PathLike, summary: Any):
        super().__init__()
        self.log_dir = Path(log_dir)
        self._summary = summary
        self._writers: dict[str, Any] = {}
        self._metadata: Any = None
        self.failed = False

    def _writer(self, name: str) -> Any:
        if name not in self._writers:
            self._writers[name] = self._summary.create_file_writer(str(self.log_dir / name))
        return self._writers[name]

    def _scalar_metadata(self) -> Any:
        """What TensorBoard's scalar plugin reads a float32 tensor summary as a scalar by."""
        if self._metadata is None:
            from tensorflow.core.framework import summary_pb2

            meta = summary_pb2.SummaryMetadata()
            meta.plugin_data.plugin_name = "scalars"
            meta.data_class = summary_pb2.DATA_CLASS_SCALAR
            self._metadata = meta
        return self._metadata

    def _learning_rate(self) -> dict[str, float]:
        optimizer = getattr(self.model, "optimizer", None)
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)  # loss scaling wrapper
        if not isinstance(optimizer, keras.optimizers.Optimizer):
            return {}
        return {"learning_rate": float(keras.ops.convert_to_numpy(optimizer.learning_rate))}

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self.failed:
            return
        try:
            logs = dict(logs or {})
            groups = {
                "train": {
                    **{k: v for k, v in logs.items() if not k.startswith("val_")},
                    **self._learning_rate(),
                },
                "validation": {k[4:]: v for k, v in logs.items() if k.startswith("val_")},
            }
            for name, values in groups.items():
                if not values:
                    continue
                writer = self._writer(name)
                with writer.as_default():
                    for key, value in values.items():
                        self._summary.write(
                            tag=f"epoch_{key}",
                            tensor=float(keras.ops.convert_to_numpy(value)),
                            step=epoch,
                            metadata=self._scalar_metadata(),
                        )
                writer.flush()
        except Exception as exc:  # noqa: BLE001 - logging must never fail a training run
            self.failed = True
            _warn_once(
                "TensorBoard logging to %s failed (%s: %s)", self.log_dir, type(exc).__name__, exc
            )
            self.close()

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.close()

    def close(self) -> None:
        """Flush and close the event files (the run folder can then move)."""
        writers, self._writers = self._writers, {}
        for writer in writers.values():
            try:
                writer.close()
            except Exception:  # noqa: BLE001, S110 - closing is best effort
                pass


def history_rows(history: keras.callbacks.History | None) -> list[dict[str, float]]:
    """The rows of a ``model.fit`` history as ``history.csv`` holds them: ``epoch`` (from 1),
    then every logged value.

    Example:
        >>> h = keras.callbacks.History()
        >>> h.history = {"loss": [0.9, 0.5], "accuracy": [0.4, 0.7]}
        >>> history_rows(h)
        [{'epoch': 1, 'loss': 0.9, 'accuracy': 0.4}, {'epoch': 2, 'loss': 0.5, 'accuracy': 0.7}]
    """
    logged = dict(getattr(history, "history", None) or {})
    epochs = max((len(v) for v in logged.values()), default=0)
    return [
        {"epoch": i + 1, **{k: float(v[i]) for k, v in logged.items() if i < len(v)}}
        for i in range(epochs)
    ]
