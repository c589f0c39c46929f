"""Data-parallel training on several devices (``--distribute``): the one backend-specific module.

The training stages (``train_video.py``, ``train_sensor.py``, ``train_stream.py``,
``pretrain_video.py``, ``training_generator.py``) run their whole body inside
:func:`distribution` through the :func:`distributed` decorator, so every model they build or load,
compile, fit and predict with lives on the chosen devices; the stages themselves stay
backend-neutral. What each option means:

* ``none`` (default): nothing changes; not a line of this module runs beyond the check.
* ``mirrored`` (TensorFlow): ``tf.distribute.MirroredStrategy`` over the visible GPUs, or, when
  there are none, over the logical CPU devices (one unless a program configured more).
* ``multiworker`` (TensorFlow): ``tf.distribute.MultiWorkerMirroredStrategy`` over the machines
  named in the ``TF_CONFIG`` environment variable; every worker runs the same command.
* ``data_parallel`` (JAX): ``keras.distribution.DataParallel`` over
  ``keras.distribution.list_devices()``; with ``KERAS_DISTRIBUTION_NUM_PROCESSES`` (and
  ``KERAS_DISTRIBUTION_JOB_ADDRESSES``, ``KERAS_DISTRIBUTION_PROCESS_ID``) set, first
  ``keras.distribution.initialize()`` joins the processes.
* ``auto``: what the backend offers over all visible devices: ``multiworker`` when ``TF_CONFIG``
  names several workers, else ``mirrored`` (TensorFlow) or ``data_parallel`` (JAX) when there is
  more than one device, else ``none``.

``--batch_size`` is the GLOBAL batch: each step splits it into equal parts, one per replica, so a
run on R devices takes the same optimisation steps as on one (it must be a multiple of R). A last
batch that does not split evenly (the dataset size is rarely a multiple of the batch):

* Training (both backends): it is trimmed to a multiple of R (at most R - 1 samples of that
  epoch's order are skipped; a last batch smaller than R is skipped), because each replica
  averages its own loss and uneven parts would weigh samples unequally.
* ``predict`` (evaluation): it is padded with copies of its last sample, whose outputs are dropped.
* Validation during ``fit``: TensorFlow splits it unevenly, which is exact for losses and
  metrics (a last batch smaller than R joins the one before, so no replica is empty); JAX serves
  it first, which makes the epoch's validation batches replicated (every device computes all of
  each, as one device would: exact, not faster).

Under TensorFlow strategies BatchNormalization uses the statistics of the whole global batch
during ``fit`` (``synchronized``), as one device would; JAX computes on the global batch anyway.

Example:
    >>> with distribution("auto") as replicas:  # doctest: +SKIP
    ...     model = build_model(); model.compile(...); model.fit(*fit_data(train, val)[:2])
    >>> replicas.num_replicas  # doctest: +SKIP
    2
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import keras
import numpy as np

from vsfusion.config import DISTRIBUTE_CHOICES, ConfigError

__all__ = [
    "DISTRIBUTE_CHOICES",
    "Replicas",
    "current",
    "num_replicas",
    "is_chief",
    "distribution",
    "distributed",
    "check_batch_size",
    "require_whole_batch",
    "fit_data",
    "predict_batches",
    "ReplicaBatches",
    "fitting",
]

logger = logging.getLogger(__name__)

_TF_STRATEGIES = ("mirrored", "multiworker")
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Replicas:
    """The active data-parallel setup.

    Attributes:
        strategy: ``mirrored``, ``multiworker`` or ``data_parallel``.
        backend: The Keras backend.
        num_replicas: Replicas the global batch is split over (all workers together).
        devices: The devices of this process's replicas (TensorFlow) or of the mesh (JAX).
        num_workers: Worker machines or processes.
        worker_index: This worker's index; 0 is the chief, which writes the run folder.
    """

    strategy: str
    backend: str
    num_replicas: int
    devices: tuple[str, ...]
    num_workers: int = 1
    worker_index: int = 0

    @property
    def is_chief(self) -> bool:
        return self.worker_index == 0

    def record(self) -> dict[str, Any]:
        """What ``run.json`` records under ``distribute``."""
        return {
            "strategy": self.strategy,
            "backend": self.backend,
            "num_replicas": self.num_replicas,
            "devices": list(self.devices),
            "num_workers": self.num_workers,
            "worker_index": self.worker_index,
        }


_active: Replicas | None = None
_tf_strategy_cache: dict[tuple[str, tuple[str, ...]], Any] = {}


def current() -> Replicas | None:
    """The active :class:`Replicas`, or None outside :func:`distribution` (or with ``none``)."""
    return _active


def num_replicas() -> int:
    """Replicas the global batch is split over now (1 without a distribution)."""
    return _active.num_replicas if _active else 1


def is_chief() -> bool:
    """Whether this process writes the run folder (always, except on non-chief workers)."""
    return _active is None or _active.is_chief


# --------------------------------------------------------------------------------------------
# choosing and entering a strategy


def _tf_config() -> dict[str, Any]:
    text = os.environ.get("TF_CONFIG", "")
    if not text.strip():
        return {}
    try:
        cfg = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"TF_CONFIG is not JSON ({exc.msg}); see README 'Training on several devices'"
        ) from None
    if not isinstance(cfg, dict):
        raise ConfigError("TF_CONFIG must be a JSON object with 'cluster' and 'task'")
    return cfg


def _tf_workers(cfg: dict[str, Any]) -> tuple[int, int]:
    """(number of workers, this worker's index) of a ``TF_CONFIG``; (1, 0) when absent."""
    if not cfg:
        return 1, 0
    cluster, task = cfg.get("cluster") or {}, cfg.get("task") or {}
    workers = len(cluster.get("worker", [])) + len(cluster.get("chief", []))
    kind, index = task.get("type"), int(task.get("index", 0))
    if workers == 0 or kind not in ("worker", "chief"):
        raise ConfigError(
            "TF_CONFIG must list cluster.worker addresses and set task.type 'worker' and "
            "task.index; see README 'Training on several devices'"
        )
    # with a separate chief task, workers are numbered after it
    offset = 1 if kind == "worker" and cluster.get("chief") else 0
    return workers, index + offset


def _tf_devices() -> list[str]:
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]


def _jax_processes() -> int:
    return int(os.environ.get("KERAS_DISTRIBUTION_NUM_PROCESSES", "1") or 1)


def resolve(option: str) -> str:
    """The strategy ``option`` means under the current backend and devices (``none`` when one
    device is all there is for ``auto``).

    Raises:
        ConfigError: An option the backend does not have, or ``multiworker`` without ``TF_CONFIG``.

    Example:
        >>> resolve("none")
        'none'
    """
    if option not in DISTRIBUTE_CHOICES:
        raise ConfigError(f"--distribute {option}: choose one of {', '.join(DISTRIBUTE_CHOICES)}")
    if option == "none":
        return "none"
    backend = keras.backend.backend()
    if backend == "tensorflow":
        if option == "data_parallel":
            raise ConfigError(
                "--distribute data_parallel is the JAX backend's (keras.distribution); under "
                "TensorFlow use mirrored (one machine), multiworker (TF_CONFIG) or auto"
            )
        workers, _ = _tf_workers(_tf_config())
        if option == "multiworker" and not os.environ.get("TF_CONFIG", "").strip():
            raise ConfigError(
                "--distribute multiworker needs the TF_CONFIG environment variable (cluster and "
                "task) on every worker; see README 'Training on several devices'"
            )
        if option == "auto":
            if workers > 1:
                return "multiworker"
            return "mirrored" if len(_tf_devices()) > 1 else "none"
        return option
    if backend == "jax":
        if option in _TF_STRATEGIES:
            raise ConfigError(
                f"--distribute {option} is a TensorFlow strategy; under the JAX backend use "
                "data_parallel or auto"
            )
        if option == "auto":
            if _jax_processes() > 1:
                return "data_parallel"
            return "data_parallel" if len(keras.distribution.list_devices()) > 1 else "none"
        return option
    if option == "auto":
        return "none"
    raise ConfigError(
        f"--distribute {option}: the {backend} backend has no data-parallel strategy here; use "
        "KERAS_BACKEND=tensorflow or jax, or --distribute none"
    )


def _tf_strategy(kind: str) -> Any:
    """A (cached) TensorFlow strategy: MultiWorkerMirroredStrategy must be made once per process."""
    import tensorflow as tf

    devices = tuple(_tf_devices()) if kind == "mirrored" else ()
    key = (kind, devices)
    if key not in _tf_strategy_cache:
        if kind == "mirrored":
            _tf_strategy_cache[key] = tf.distribute.MirroredStrategy(devices=list(devices))
        else:
            _tf_strategy_cache[key] = tf.distribute.MultiWorkerMirroredStrategy()
    return _tf_strategy_cache[key]


@contextlib.contextmanager
def distribution(option: str) -> Iterator[Replicas | None]:
    """Run the enclosed code data-parallel as ``option`` (see the module docstring) says.

    Under TensorFlow the body runs in ``strategy.scope()``, so models built, loaded and compiled
    there are mirrored; under JAX ``keras.distribution.set_distribution(DataParallel(...))`` is
    in effect (the previous distribution is restored afterwards).

    Yields:
        The :class:`Replicas`, or None for ``none`` (and ``auto`` with one device).

    Raises:
        ConfigError: ``option`` does not exist for the backend (one line naming the fix).

    Example:
        >>> with distribution("none") as replicas:
        ...     replicas is None
        True
    """
    global _active
    kind = resolve(option)
    if kind == "none":
        if option == "auto":
            logger.info("--distribute auto: one device, no distribution")
        yield None
        return
    if _active is not None:
        raise ConfigError("--distribute: a distribution is already active in this process")
    backend = keras.backend.backend()
    if backend == "tensorflow":
        strategy = _tf_strategy(kind)
        workers, index = _tf_workers(_tf_config()) if kind == "multiworker" else (1, 0)
        devices = tuple(getattr(strategy.extended, "worker_devices", ()))
        replicas = Replicas(
            kind, backend, int(strategy.num_replicas_in_sync), devices, workers, index
        )
        scope: contextlib.AbstractContextManager = strategy.scope()
    else:
        import jax

        processes = _jax_processes()
        if processes > 1:
            # CPU devices of several processes need a collectives backend (GPUs use NCCL)
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
            keras.distribution.initialize()

        devices = keras.distribution.list_devices()
        mesh = _data_parallel(devices)
        replicas = Replicas(
            kind, backend, len(devices), tuple(devices), jax.process_count(), jax.process_index()
        )
        scope = _jax_distribution(mesh)
    logger.info(
        "--distribute %s: %s over %d replicas (%s)%s",
        option,
        kind,
        replicas.num_replicas,
        ", ".join(replicas.devices),
        f", worker {replicas.worker_index} of {replicas.num_workers}"
        if replicas.num_workers > 1
        else "",
    )
    with scope:
        _active = replicas
        try:
            yield replicas
        finally:
            _active = None


@contextlib.contextmanager
def _jax_distribution(dist: Any) -> Iterator[None]:
    previous = keras.distribution.distribution()
    keras.distribution.set_distribution(dist)
    try:
        yield
    finally:
        keras.distribution.set_distribution(previous)


def check_batch_size(
    batch_size: int, replicas: Replicas | None = None, flag: str = "--batch_size"
) -> None:
    """A ``ConfigError`` when the global batch does not split evenly over the replicas.

    Example:
        >>> check_batch_size(8, Replicas("mirrored", "tensorflow", 2, ("cpu:0", "cpu:1")))
        >>> check_batch_size(7, Replicas("mirrored", "tensorflow", 2, ("cpu:0", "cpu:1")))
        Traceback (most recent call last):
        ...
        vsfusion.config.ConfigError: --batch_size 7 is the global batch, split over 2 replicas: use a multiple of 2 (e.g. 8)
    """
    replicas = replicas or _active
    n = replicas.num_replicas if replicas else 1
    if batch_size % n:
        raise ConfigError(
            f"{flag} {batch_size} is the global batch, split over {n} replicas: use a multiple "
            f"of {n} (e.g. {max(n, math.ceil(batch_size / n) * n)})"
        )


def distributed(stage: F) -> F:
    """Decorate a stage ``stage(cfg)`` to run inside ``distribution(cfg.distribute)`` with the
    global ``cfg.batch_size`` checked against the replicas first.

    Example:
        >>> @distributed
        ... def run_sensor(cfg): ...
    """

    @functools.wraps(stage)
    def run(cfg: Any, *args: Any, **kwargs: Any) -> Any:
        with distribution(getattr(cfg, "distribute", "none") or "none") as replicas:
            if replicas is not None:
                check_batch_size(int(cfg.batch_size), replicas)
                if replicas.num_workers > 1 and getattr(cfg, "resume", None):
                    raise ConfigError(
                        "--resume with several workers is not supported; resume the run on one "
                        "machine (--distribute mirrored, data_parallel or none)"
                    )
            return stage(cfg, *args, **kwargs)

    return run  # type: ignore[return-value]


def require_whole_batch(what: str) -> None:
    """A ``ConfigError`` when a TensorFlow strategy would split a batch whose samples are
    contrasted with each other (in-batch InfoNCE): each replica would see only its part. JAX
    computes on the global batch and is fine.

    Example:
        >>> require_whole_batch("--method cmc")  # outside a distribution: nothing to say
    """
    if _active is not None and _active.backend == "tensorflow" and _active.num_replicas > 1:
        raise ConfigError(
            f"{what} contrasts every sample with the rest of its batch, which a TensorFlow "
            f"strategy splits over {_active.num_replicas} replicas; use KERAS_BACKEND=jax with "
            "--distribute data_parallel (or auto), or --distribute none"
        )


# --------------------------------------------------------------------------------------------
# batches that split over the replicas


def _data_parallel(devices: list[str]) -> Any:
    """``keras.distribution.DataParallel`` over ``devices`` that replicates a batch which does not
    split evenly over them (every device computes all of it: the one-device result) instead of
    failing. Keras lays out an epoch's batches like its first one."""

    class EvenOrReplicated(keras.distribution.DataParallel):
        replicate_all = False  # every batch replicated (multi-process predict)

        def get_data_layout(self, data_shape: Any) -> Any:
            size = self.device_mesh.devices.size
            uneven = len(data_shape) and data_shape[0] is not None and int(data_shape[0]) % size
            if self.replicate_all or uneven:
                return keras.distribution.TensorLayout([None] * len(data_shape), self.device_mesh)
            return super().get_data_layout(data_shape)

    # each process feeds its own share of every batch (ReplicaBatches' part), so Keras must not
    # shard the data again (its auto-sharding takes tf.data datasets only)
    return EvenOrReplicated(devices=devices, auto_shard_dataset=False)


def _process_part() -> tuple[int, int]:
    """(this process, processes) among which JAX splits each global batch (1 process: (0, 1))."""
    if _active is None or _active.backend != "jax" or _active.num_workers == 1:
        return 0, 1
    return _active.worker_index, _active.num_workers


def _batch_len(data: Any, i: int) -> int:
    """Samples in batch ``i`` of ``data``, without reading it when the loader can tell."""
    for obj in (data, getattr(data, "loader", None)):
        if obj is not None and hasattr(obj, "batch_indices"):
            return len(obj.batch_indices(i))
    x = _split(data[i])[0]
    return _size(x)


def _take(tree: Any, idx: np.ndarray) -> Any:
    if tree is None:
        return None
    if isinstance(tree, dict):
        return {k: _take(v, idx) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        return type(tree)(_take(v, idx) for v in tree)
    return np.asarray(tree)[idx]


def _split(batch: Any) -> tuple[Any, Any, Any, int]:
    """(x, y, sample_weight, elements) of a batch as a PyDataset yields it (x alone or a tuple)."""
    if isinstance(batch, tuple):
        parts = (*batch, None, None)[:3]
        return parts[0], parts[1], parts[2], len(batch)
    return batch, None, None, 1


def _concat(a: Any, b: Any) -> Any:
    """Two batches of the same structure as one."""
    if isinstance(a, dict):
        return {k: _concat(a[k], b[k]) for k in a}
    if isinstance(a, (list, tuple)):
        return type(a)(_concat(u, v) for u, v in zip(a, b, strict=True))
    return None if a is None else np.concatenate([np.asarray(a), np.asarray(b)])


def _size(x: Any) -> int:
    first = next(iter(x.values())) if isinstance(x, dict) else x
    return int(len(first))


class ReplicaBatches(keras.utils.PyDataset):
    """The batches of ``data`` as the replicas take them (``mode``):

    * ``trim`` (training): the last ``size % replicas`` samples of a batch are skipped (a last
      batch smaller than ``replicas``: the whole batch), so every replica averages its loss over
      as many samples as the others and the step is the one-device step.
    * ``pad`` (``predict``): a batch is padded with copies of its last sample to a multiple of
      ``replicas``; :attr:`sizes` keeps the real sizes, :meth:`unpad` drops the copies' outputs.
    * ``merge_last`` (TensorFlow validation): a last batch smaller than ``replicas`` (which would
      leave a replica without samples, which TensorFlow's Conv3D cannot take) is joined to the one
      before; TensorFlow evaluates unevenly split batches exactly.
    * ``uneven_first`` (JAX validation): when the last batch does not split evenly it is served
      first, so that the distribution (:func:`_data_parallel`) replicates the epoch's batches,
      which JAX lays out after the first one; the metrics are then exact.
    * ``as_is``: the batches unchanged.

    With ``part=(p, P)`` (JAX over ``P`` processes) process ``p`` yields its ``1/P`` of every
    batch that is split (the whole of a replicated one). ``inputs`` picks what the model takes
    from each batch's ``x``; ``targets=False`` yields ``(x,)`` alone (for ``predict``).

    Example:
        >>> train = ReplicaBatches(loader, replicas=2, mode="trim")  # doctest: +SKIP
    """

    def __init__(
        self,
        data: Any,
        replicas: int = 1,
        *,
        mode: str = "as_is",
        part: tuple[int, int] = (0, 1),
        inputs: Callable[[Any], Any] | None = None,
        targets: bool = True,
    ):
        super().__init__(
            workers=getattr(data, "workers", 1) or 1,
            use_multiprocessing=False,
            max_queue_size=getattr(data, "max_queue_size", 10) or 10,
        )
        if mode not in ("as_is", "trim", "pad", "uneven_first", "merge_last"):
            raise ValueError(f"unknown mode {mode!r}")
        self.loader, self.replicas, self.mode, self.part = data, int(replicas), mode, part
        self.inputs, self.targets = inputs, targets
        self.sizes: dict[int, int] = {}
        n = len(data)
        uses_last = ("trim", "uneven_first", "merge_last")
        last = _batch_len(data, n - 1) if n and mode in uses_last else 0
        small = n > 0 and last < self.replicas
        if mode == "merge_last" and small and n == 1:
            raise ConfigError(
                f"a validation split of {last} samples cannot be split over {self.replicas} "
                "replicas; use fewer devices or --distribute none"
            )
        self._len = n - 1 if mode in ("trim", "merge_last") and small else n
        self._merge = mode == "merge_last" and small
        # uneven_first: the uneven last batch first; every batch is then replicated
        self._rotate = mode == "uneven_first" and n > 1 and last % self.replicas != 0
        self._replicated = mode == "uneven_first" and last % self.replicas != 0

    def __len__(self) -> int:
        return self._len

    def __getitem__(self, i: int) -> Any:
        j = (i - 1) % self._len if self._rotate else i
        batch = self.loader[j]
        if self._merge and j == self._len - 1:
            batch = _concat(batch, self.loader[j + 1])
        x, y, w, parts = _split(batch)
        if not self.targets:
            y, w, parts = None, None, 1
        if self.inputs is not None:
            x = self.inputs(x)
        b = _size(x)
        self.sizes[j] = b
        keep = None
        if self.mode == "trim" and b % self.replicas:
            keep = np.arange(b - b % self.replicas)
        elif self.mode == "pad" and b % self.replicas:
            keep = np.concatenate([np.arange(b), np.full(-b % self.replicas, b - 1)])
        index, count = self.part
        if count > 1 and not self._replicated:
            size = b if keep is None else len(keep)
            share = np.arange(index * size // count, (index + 1) * size // count)
            keep = share if keep is None else keep[share]
        if keep is not None:
            x, y, w = _take(x, keep), _take(y, keep), _take(w, keep)
        if w is not None:
            return x, y, w
        return (x, y) if parts > 1 and y is not None else (x,)

    def unpad(self, out: Any) -> Any:
        """``predict`` outputs of the padded batches without the copies' rows (``pad`` mode)."""
        if self.mode != "pad" or all(b % self.replicas == 0 for b in self.sizes.values()):
            return out
        start, keep = 0, []
        for i in range(self._len):
            b = self.sizes[i]
            keep.append(np.arange(start, start + b))
            start += b + (-b % self.replicas)
        rows = np.concatenate(keep)
        return keras.tree.map_structure(lambda a: np.asarray(a)[rows], out)

    def on_epoch_end(self) -> None:
        if hasattr(self.loader, "on_epoch_end"):
            self.loader.on_epoch_end()


def fit_data(
    train: Any, val: Any = None, fit_kwargs: dict[str, Any] | None = None
) -> tuple[Any, Any, dict[str, Any]]:
    """``(train, validation_data, fit keywords)`` for ``model.fit`` under the active distribution.

    Without one (or with one replica) they are returned as given. Otherwise the training batches
    are trimmed to multiples of the replicas (:class:`ReplicaBatches`; in-memory arrays,
    ``fit(x, y=..., batch_size=...)``, become a :class:`vsfusion.stages.resume.ArrayBatches`
    first). Validation batches that do not split evenly are split unevenly by TensorFlow, which
    evaluates them exactly (a last batch smaller than the replicas joins the one before:
    ``merge_last``); under JAX they are replicated (``uneven_first``).

    Example:
        >>> train2, val2, kw = fit_data(train, val, {})  # doctest: +SKIP
        >>> model.fit(train2, validation_data=val2, **kw)  # doctest: +SKIP
    """
    kw = dict(fit_kwargs or {})
    n = num_replicas()
    if n == 1:
        return train, val, kw
    from vsfusion.stages.resume import ArrayBatches, array_batches

    part = _process_part()
    jax = _active is not None and _active.backend == "jax"
    train, kw = array_batches(train, kw)  # in-memory arrays: batches that can be trimmed
    train = ReplicaBatches(train, n, mode="trim", part=part)
    if val is not None:
        if isinstance(val, tuple):
            batch = int(kw.pop("validation_batch_size", None) or 32)
            y = val[1] if len(val) > 1 else None
            val = ArrayBatches(val[0], y, batch_size=batch, seed=0, shuffle=False)
        val = ReplicaBatches(val, n, mode="uneven_first" if jax else "merge_last", part=part)
    return train, val, kw


def predict_batches(
    model: keras.Model, data: Any, inputs: Callable[[Any], Any] | None = None
) -> Any:
    """``model.predict`` over the batches of ``data`` (``x`` or ``(x, y)`` per batch), their
    inputs picked from ``x`` by ``inputs``. Under a distribution every batch is split over the
    replicas (one that does not split evenly is padded with copies of its last sample, whose
    outputs are dropped), so the outputs are those of every sample, in order, as on one device;
    under JAX with several processes every process computes every batch whole instead.

    Example:
        >>> probs = predict_batches(model, test_loader)  # doctest: +SKIP
    """
    processes = _process_part()[1]
    if processes > 1:
        # JAX over several processes: a sharded output cannot be fetched by one process, so each
        # computes every batch whole (replicated): the outputs are whole on every process
        batches = ReplicaBatches(data, 1, inputs=inputs, targets=False)
        dist = keras.distribution.distribution()
        dist.replicate_all = True
        try:
            return model.predict(batches, verbose=0)
        finally:
            dist.replicate_all = False
    batches = ReplicaBatches(data, num_replicas(), mode="pad", inputs=inputs, targets=False)
    return batches.unpad(model.predict(batches, verbose=0))


@contextlib.contextmanager
def fitting(model: keras.Model, train: Any) -> Iterator[None]:
    """Fit ``model`` on ``train`` (what :func:`fit_data` returned) inside this block.

    Under a TensorFlow strategy with several replicas:

    * BatchNormalization layers normalise training batches with the statistics of the global
      batch (``synchronized``), as one device would; their saved configuration is left as it
      was (loadable under any backend).
    * The model, its metrics and its optimizer are built here from ``train[0]`` rather than by
      Keras reading the first distributed batch inside ``fit`` and ``evaluate``: that reading
      cannot reduce dict inputs under ``MultiWorkerMirroredStrategy`` (TensorFlow's
      ``Strategy.reduce`` takes no nested values), and it reads an extra epoch of the data, which
      advances Python's random (Keras's batch-order shuffle) and so differs from one device.
    * Under ``MultiWorkerMirroredStrategy`` each step's logs get a batch axis of length 1: Keras
      3 reduces them over the workers with ``strategy.reduce("MEAN", v, axis=0)``, which fails on
      scalars (tensorflow/tensorflow#72388); the mean over that axis gives the scalar back.

    Elsewhere nothing changes.

    Example:
        >>> with fitting(model, train):  # doctest: +SKIP
        ...     model.fit(train)
    """
    if _active is None or _active.backend != "tensorflow" or _active.num_replicas == 1:
        yield
        return
    bns = [
        layer
        for layer in model._flatten_layers(include_self=True, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization) and not layer.synchronized
    ]
    for bn in bns:
        bn.synchronized = True
    bypass = hasattr(model, "_symbolic_build") and hasattr(model, "_distribute_strategy")
    strategy = getattr(model, "_distribute_strategy", None)
    if bypass:
        x, y, w, _ = _split(train[0] if isinstance(train, keras.utils.PyDataset) else train)
        model._symbolic_build(data_batch=(x, y, w))
        model._distribute_strategy = None  # Keras's own build step is skipped; the scope's
        # strategy (tf.distribute.get_strategy()) still distributes fit and evaluate
    steps = ("train_step", "test_step") if _active.strategy == "multiworker" else ()
    for name in steps:
        setattr(model, name, _logs_with_batch_axis(getattr(model, name)))
    try:
        yield
    finally:
        for name in steps:
            delattr(model, name)  # the class's own step again (fit keeps the traced one)
        if bypass:
            model._distribute_strategy = strategy
        for bn in bns:
            bn.synchronized = False


def _logs_with_batch_axis(step: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``step`` whose scalar logs are returned with a leading axis of length 1 (see
    :func:`fitting`)."""

    @functools.wraps(step)
    def wrapped(data: Any) -> Any:
        return keras.tree.map_structure(
            lambda v: keras.ops.reshape(v, (1,)) if len(keras.ops.shape(v)) == 0 else v,
            step(data),
        )

    return wrapped
