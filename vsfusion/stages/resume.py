"""Training that survives a kill: a per-epoch backup of every fit inside its run folder, and
``--resume`` to continue a killed run from its last finished epoch.

A run is built in ``<checkpoints>/<dataset>/<stage>/.<name>.incomplete/`` (see
:class:`vsfusion.stages.common.RunDir`). While it trains, ``resume/`` in that folder holds, for
each fit (named after its history file: ``history``, ``history_control``,
``history_final_fit``, ...):

* ``<fit>.e<k>.npz``: every variable of the model after epoch ``k`` (weights, BatchNorm
  statistics, the dropout layers' seed-generator states) and of its optimizer (step counter, so a
  schedule keyed on steps continues; moments);
* ``<fit>.json``, written after the ``.npz`` (both via a temporary file and an atomic rename, so
  the ``.json`` is the commit point: it only ever names a complete ``.npz``): the epochs done, the
  history rows, the state of the callbacks that keep some (the epoch selection's best epoch,
  value and rows, whose best weights are the ``.npz`` of that epoch, kept; the pretraining's epoch
  timer), the training loader's epoch (its shuffling and augmentation are keyed on it), Python's
  and NumPy's global random states (Keras shuffles the batch order with Python's), the run's
  elapsed and backup seconds; and, once the fit has ended, ``done`` with the epoch whose weights
  it kept.

``keras.callbacks.BackupAndRestore`` (Keras 3.15) is not used because it writes its weights file
and then its ``training_metadata.json`` in place, one after the other (a kill between them pairs
the weights of epoch ``k+1`` with the epoch number ``k``; ``double_checkpoint`` only recovers an
unreadable file), keeps none of the state above (seed generators, callbacks, loader, random
states), and deletes its folder when the fit ends (``delete_checkpoint``), so a stage with several
fits could not tell a finished fit from one never started. :class:`EpochBackup` restores the same
way it does (in ``on_train_begin``, building the optimizer first and setting
``model._initial_epoch``).

On resume a stage re-runs its set-up (data, targets, model construction; deterministic from the
seed), a finished fit is skipped (its kept weights and state restored, the random states as they
were when it ended), and the interrupted fit continues at the epoch after the last backup. On
the CPU the result equals that of an uninterrupted run (the tests check history, selected epoch,
metrics and weights for equality). ``resume/`` is deleted when the run finishes.

Example:
    >>> backup = resumable_fit(model, run, "history.csv", lambda extra: model.fit(  # doctest: +SKIP
    ...     train, epochs=10, callbacks=[*extra]), data=(train,))
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import random
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import keras
import numpy as np
import yaml

from vsfusion.config import StageConfig, config_to_yaml
from vsfusion.data.io import atomic_save_npz, atomic_write_text
from vsfusion.stages.common import RunDir, StageError, git_revision, read_run_config

__all__ = [
    "STATE_DIR",
    "IGNORED_FIELDS",
    "EpochBackup",
    "ArrayBatches",
    "resumable_fit",
    "array_batches",
    "config_differences",
    "find_killed_run",
    "reopen",
    "check_leftover",
    "continue_killed",
    "lock_run",
]

logger = logging.getLogger(__name__)

STATE_DIR = "resume"
LOCK_FILE = "lock"
# Options that may differ between a killed run and its resumption: display, threads, where runs
# are kept, the name (taken from the folder) and TensorBoard logging. Everything else must match.
IGNORED_FIELDS = (
    "verbose",
    "workers",
    "prep_workers",
    "run_name",
    "checkpoints",
    "tensorboard",
    "resume",
)
AUTO = "auto"  # the value of a bare --resume


# ---------------------------------------------------------------------------------------------
# the run folder: lock, find, reopen


def lock_run(folder: Path) -> Any:
    """Hold ``folder/resume/lock`` (an exclusive ``flock``) while this process writes the run;
    the kernel drops it when the process dies, however it dies. None where ``fcntl`` is missing.

    Raises:
        StageError: Another live process holds it.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, as before
        return None
    path = Path(folder) / STATE_DIR / LOCK_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        pid = path.read_text().strip() or "?"
        raise StageError(
            f"{folder} is being written by a running process (pid {pid}); wait for it to end "
            "or stop it before resuming"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


def unlock_run(handle: Any) -> None:
    """Release a :func:`lock_run` handle (closing the file drops the lock)."""
    if handle is not None:
        try:
            os.close(handle)
        except OSError:  # pragma: no cover - already closed
            pass


def _is_locked(folder: Path) -> bool:
    try:
        unlock_run(lock_run(folder))
    except StageError:
        return True
    return False


def config_differences(saved: dict[str, Any], cfg: StageConfig) -> list[str]:
    """The options in which a run's ``config.yaml`` (``saved``) and ``cfg`` differ, as
    ``name (run X, now Y)``, leaving out :data:`IGNORED_FIELDS`.

    Example:
        >>> from vsfusion.config import SensorConfig
        >>> saved = yaml.safe_load(config_to_yaml(SensorConfig(epoch=6, verbose=0)))
        >>> config_differences(saved, SensorConfig(epoch=8))
        ['epoch (run 6, now 8)']
    """
    now = yaml.safe_load(config_to_yaml(cfg))
    missing = object()
    out = []
    for key in [*saved, *(k for k in now if k not in saved)]:
        if key in IGNORED_FIELDS:
            continue
        a, b = saved.get(key, missing), now.get(key, missing)
        if a != b:
            shown = ["(absent)" if v is missing else v for v in (a, b)]
            out.append(f"{key} (run {shown[0]}, now {shown[1]})")
    return out


def _killed_name(folder: Path) -> str:
    return folder.name[1 : -len(".incomplete")]


def _activity(folder: Path) -> float:
    """When the run last wrote its state (its newest fit backup, else run.json)."""
    files = [*folder.glob(f"{STATE_DIR}/*.json"), folder / "run.json", folder]
    return max((f.stat().st_mtime for f in files if f.exists()), default=0.0)


def _differences(folder: Path, cfg: StageConfig) -> list[str]:
    return config_differences(read_run_config(folder), cfg)


def find_killed_run(cfg: StageConfig, stage_dir: Path) -> Path:
    """The ``.<name>.incomplete`` folder ``--resume`` continues.

    ``cfg.resume == "auto"`` (a bare ``--resume``): the most recently active killed run under
    ``stage_dir`` (of name ``cfg.run_name`` when given) whose ``config.yaml`` matches ``cfg`` but
    for :data:`IGNORED_FIELDS` and that no live process is writing. Otherwise ``cfg.resume`` is a
    path: the ``.incomplete`` folder, or the final path the run would have had.

    Raises:
        StageError: One line: nothing to resume, a finished run (never resumed or changed), a
            run still being written, or the options that differ.
    """
    stage = stage_dir.name
    if cfg.resume != AUTO:
        return _given_run(Path(str(cfg.resume)), cfg)
    folders = [p for p in stage_dir.glob(".*.incomplete") if p.is_dir()]
    if cfg.run_name:
        folders = [p for p in folders if _killed_name(p) == cfg.run_name]
    named = f" named {cfg.run_name}" if cfg.run_name else ""
    if not folders:
        raise StageError(
            f"--resume: no killed {stage} run{named} under {stage_dir} (finished runs are never "
            "resumed); drop --resume to start a new run"
        )
    busy: list[Path] = []
    mismatch: tuple[Path, list[str]] | None = None
    for folder in sorted(folders, key=_activity, reverse=True):
        if _is_locked(folder):
            busy.append(folder)
            continue
        diffs = _differences(folder, cfg)
        if not diffs:
            return folder
        mismatch = mismatch or (folder, diffs)
    if mismatch is None:
        raise StageError(
            f"--resume: the killed {stage} run{named} under {stage_dir} is still being written "
            f"by a running process ({busy[0].name}); wait for it to end or stop it"
        )
    folder, diffs = mismatch
    raise StageError(
        f"--resume: no killed {stage} run{named} under {stage_dir} matches this configuration; "
        f"the newest, {folder.name}, differs in {_listed(diffs)}; pass its options "
        f"(--config {folder}/config.yaml --resume {folder}) or drop --resume to start a new run"
    )


def _listed(diffs: list[str], most: int = 4) -> str:
    more = f" and {len(diffs) - most} more" if len(diffs) > most else ""
    return ", ".join(diffs[:most]) + more


def _given_run(path: Path, cfg: StageConfig) -> Path:
    if path.name.endswith(".incomplete") and path.name.startswith("."):
        folder = path
    elif (path / "metrics.json").is_file():
        raise StageError(
            f"--resume {path}: a finished run; finished runs are never resumed or changed; "
            "start a new run (another --run_name)"
        )
    else:
        folder = path.parent / f".{path.name}.incomplete"
    if not folder.is_dir() or not (folder / "config.yaml").is_file():
        raise StageError(
            f"--resume {path}: no killed run there (expected the folder {folder} with its "
            "config.yaml); pass a .<name>.incomplete run folder, or --resume alone for the newest"
        )
    if _is_locked(folder):
        lock_run(folder)  # raises naming the pid
    diffs = _differences(folder, cfg)
    if diffs:
        raise StageError(
            f"--resume {path}: this configuration differs from the run's in {_listed(diffs)}; "
            f"pass its options: --config {folder}/config.yaml --resume {folder}"
        )
    return folder


def reopen(cls: type[RunDir], cfg: StageConfig, stage_dir: Path) -> RunDir:
    """The killed run ``cfg.resume`` names (:func:`find_killed_run`), locked and reopened as a
    :class:`RunDir` that records this resumption in ``run.json``; its ``config.yaml`` and files
    are kept."""
    folder = find_killed_run(cfg, stage_dir)
    final = folder.parent / _killed_name(folder)
    if final.exists():
        raise StageError(
            f"--resume {folder}: {final} already exists (a finished run is never overwritten); "
            "move one of them away"
        )
    run = cls(folder, final, cfg)
    run.lock = lock_run(folder)
    run.resumed = True
    info = _read_json(folder / "run.json") or {}
    run.first_started = info.get("started")
    run.resume_points = [
        *info.get("resume_points", []),
        {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "git_revision": git_revision(),
            "fits": {},
        },
    ]
    latest = max(
        (s for s in map(_read_json, folder.glob(f"{STATE_DIR}/*.json")) if s and "run" in s),
        key=lambda s: s["run"]["seconds"],
        default=None,
    )
    if latest is not None:
        run.elapsed_before = float(latest["run"]["seconds"])
        run.backup = dict(latest["run"]["backup"])
    cls._open.append(run)
    run.write_json("run.json", run._info())
    logger.info("resuming killed run %s", folder)
    return run


def check_leftover(folder: Path, cfg: StageConfig) -> None:
    """A new run's ``.<name>.incomplete`` folder already exists. A live run's: a StageError. A
    killed run of a stage that can resume: a StageError naming ``--resume`` (it is never deleted
    here). A killed run of any other stage: removed, as nothing can continue it."""
    if _is_locked(folder):
        lock_run(folder)  # raises naming the pid
    if hasattr(cfg, "resume"):
        raise StageError(
            f"{folder} was left by a killed run; continue it with --resume {folder} (same "
            "options), or remove that folder to start again"
        )
    import shutil

    shutil.rmtree(folder)


def continue_killed(cfg: StageConfig, stage: str | None = None) -> StageConfig:
    """``cfg`` with ``resume`` set to its killed run when one of its ``run_name`` exists (what
    ``reproduce.py`` does when run again after a kill); ``cfg`` itself otherwise.

    Raises:
        StageError: That killed run was made with other options.
    """
    if not hasattr(cfg, "resume") or cfg.resume or not cfg.run_name:
        return cfg
    folder = (
        Path(cfg.checkpoints) / cfg.dataset / (stage or cfg.stage) / f".{cfg.run_name}.incomplete"
    )
    if not folder.is_dir():
        return cfg
    diffs = _differences(folder, cfg) if (folder / "config.yaml").is_file() else ["config.yaml"]
    if diffs:
        raise StageError(
            f"{folder} holds a killed {cfg.stage} run with other options ({_listed(diffs)}); "
            "use another --out or remove that folder"
        )
    logger.info("continuing the killed run %s", folder)
    return dataclasses.replace(cfg, resume=str(folder))


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None


# ---------------------------------------------------------------------------------------------
# one fit: back up after every epoch, restore on resume


def _seekable(data: Any) -> Any:
    """The loader inside ``data`` whose epoch keys its order and augmentation, or None."""
    for obj in (data, getattr(data, "loader", None)):
        if obj is not None and hasattr(obj, "seek_epoch"):
            return obj
    return None


def _rng_state() -> dict[str, Any]:
    version, state, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 - the global state itself
    return {
        "python": [version, list(state), gauss],
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)],
    }


def _set_rng_state(saved: dict[str, Any]) -> None:
    version, state, gauss = saved["python"]
    random.setstate((version, tuple(state), gauss))
    name, keys, pos, has_gauss, cached = saved["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))  # noqa: NPY002


def _numpy(v: Any) -> np.ndarray:
    return np.asarray(keras.ops.convert_to_numpy(v))


class EpochBackup(keras.callbacks.Callback):
    """Backs up one fit after every epoch in ``<run>/resume/`` and restores it when the run is
    resumed (see the module docstring for what is kept).

    Args:
        run: The run being written.
        history_file: The fit's history file; its stem names the fit's backup files.
        data: The training data; its loader's epoch (``seek_epoch``) is kept and restored.
        state: Objects with ``resume_state() -> dict`` (JSON; a ``weights_epoch`` key asks for the
            model weights of that epoch to be kept) and ``restore_state(state, weights)``.

    Example:
        >>> backup = EpochBackup(run, "history.csv", data=(train,))  # doctest: +SKIP
        >>> model.fit(train, epochs=5, callbacks=[backup])  # doctest: +SKIP
        >>> backup.complete(model)  # doctest: +SKIP
    """

    def __init__(
        self,
        run: RunDir,
        history_file: str,
        *,
        data: Iterable[Any] = (),
        state: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.run, self.fit_name = run, history_file
        self.stem = Path(history_file).stem
        self.dir = run.path / STATE_DIR
        self.loaders = [x for x in map(_seekable, data) if x is not None]
        self.objects = dict(state or {})
        self.rows: list[dict[str, Any]] = []
        self.saved = _read_json(self.dir / f"{self.stem}.json")
        self.epochs_done = 0
        self._started: float | None = None

    @property
    def done(self) -> bool:
        """Whether the fit ended in an earlier attempt of this run."""
        return bool(self.saved and self.saved.get("done"))

    # -- files ----------------------------------------------------------------------------
    def _file(self, epoch: int) -> Path:
        return self.dir / f"{self.stem}.e{epoch:04d}.npz"

    def _arrays(self, epoch: int) -> Any:
        path = self._file(epoch)
        try:
            return np.load(path)
        except (OSError, ValueError) as exc:
            raise StageError(
                f"{path} could not be read ({type(exc).__name__}); the backup of this run is "
                "damaged: remove the run folder and start again"
            ) from None

    def _weights_of(self, epoch: int) -> list[np.ndarray]:
        """The model's weights (``model.weights`` order) after ``epoch``."""
        arrays = self._arrays(epoch)
        index = {id(v): i for i, v in enumerate(self.model.variables)}
        return [arrays[f"v{index[id(w)]}"] for w in self.model.weights]

    def _assign(self, variables: list[Any], arrays: Any, prefix: str, path: Path) -> None:
        count = sum(1 for k in arrays.files if k.startswith(prefix) and k[1:].isdigit())
        shapes = [tuple(v.shape) for v in variables]
        saved = [tuple(arrays[f"{prefix}{i}"].shape) for i in range(count)]
        if shapes != saved:
            raise StageError(
                f"{path} does not fit this model ({len(saved)} saved variables, {len(shapes)} "
                "in the model, or other shapes): the code or its options changed since the run "
                "was killed; start a new run"
            )
        for v, i in zip(variables, range(count), strict=True):
            v.assign(arrays[f"{prefix}{i}"])

    def _kept(self) -> set[int]:
        keep = {self.epochs_done}
        for obj in self.objects.values():
            epoch = obj.resume_state().get("weights_epoch")
            if epoch and epoch > 0:
                keep.add(int(epoch))
        return keep

    def _prune(self, keep: set[int]) -> None:
        names = {self._file(e).name for e in keep}
        for f in self.dir.glob(f"{self.stem}.e*.npz*"):
            if f.name not in names:
                f.unlink(missing_ok=True)

    def _write(self, **extra: Any) -> None:
        run = self.run
        state = {
            "fit": self.fit_name,
            "epochs_done": self.epochs_done,
            "rows": self.rows,
            "state": {name: obj.resume_state() for name, obj in self.objects.items()},
            "data_epochs": [int(x.epoch) for x in self.loaders],
            "rng": _rng_state(),
            "run": {"seconds": round(run.seconds(), 2), "backup": run.backup},
            **extra,
        }
        atomic_write_text(self.dir / f"{self.stem}.json", json.dumps(state) + "\n")
        self.saved = state

    # -- restore ---------------------------------------------------------------------------
    def _restore_common(self) -> None:
        saved = self.saved or {}
        self.epochs_done = int(saved.get("epochs_done", 0))
        self.rows = list(saved.get("rows", []))
        for name, obj in self.objects.items():
            st = saved.get("state", {}).get(name, {})
            epoch = st.get("weights_epoch")
            obj.restore_state(st, self._weights_of(int(epoch)) if epoch and epoch > 0 else None)
        for loader, epoch in zip(self.loaders, saved.get("data_epochs", []), strict=False):
            loader.seek_epoch(int(epoch))
        _set_rng_state(saved["rng"])

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._started = time.perf_counter()
        if not self.saved:  # a fresh fit: files of an attempt killed before its first backup
            self._prune(set())
            return
        k = int(self.saved["epochs_done"])
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        arrays, path = self._arrays(k), self._file(k)
        self._assign(list(self.model.variables), arrays, "v", path)
        if optimizer is not None:
            self._assign(list(optimizer.variables), arrays, "o", path)
        self._restore_common()
        epochs = int(self.params.get("epochs", k))
        self.model._initial_epoch = epochs if self.saved.get("stop") or k >= epochs else k
        logger.info("%s: resumed after epoch %d", self.fit_name, k)
        self.run.note_resume(self.fit_name, k)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        start = time.perf_counter()
        self.epochs_done = epoch + 1
        row = {k: float(_numpy(v)) for k, v in (logs or {}).items()}
        self.rows.append({"epoch": self.epochs_done, **row})
        arrays = {f"v{i}": _numpy(v) for i, v in enumerate(self.model.variables)}
        optimizer = getattr(self.model, "optimizer", None)
        for i, v in enumerate(optimizer.variables if optimizer is not None else []):
            arrays[f"o{i}"] = _numpy(v)
        path = atomic_save_npz(self._file(self.epochs_done), compress=False, **arrays)
        size_mb = path.stat().st_size / 2**20
        backup = self.run.backup
        backup["epochs"] = backup.get("epochs", 0) + 1
        backup["seconds"] = round(backup.get("seconds", 0.0) + time.perf_counter() - start, 3)
        backup["largest_mb"] = round(max(backup.get("largest_mb", 0.0), size_mb), 2)
        self._write(stop=bool(self.model.stop_training))
        self._prune(self._kept())

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        self.model._initial_epoch = None  # Keras reads it at every fit of this model

    # -- after the fit ---------------------------------------------------------------------
    def complete(self, model: keras.Model, final_epoch: int | None = None) -> None:
        """Mark the fit ended: the model holds the weights of ``final_epoch`` (default the last
        one); only that epoch's backup is kept."""
        final = int(final_epoch) if final_epoch and final_epoch > 0 else self.epochs_done
        self._write(done=True, final_epoch=final)
        self._prune({final} if final else set())

    def skip(self, model: keras.Model) -> None:
        """An earlier attempt finished this fit: restore the weights it kept and its state, as
        they were when it ended."""
        self.set_model(model)
        final = int(self.saved.get("final_epoch") or 0)
        if final:
            model.set_weights(self._weights_of(final))
        self._restore_common()
        logger.info("%s: finished before the kill; epoch %d weights restored", self.fit_name, final)
        self.run.note_resume(self.fit_name, "done")


def resumable_fit(
    model: keras.Model,
    run: RunDir | None,
    history_file: str,
    fit: Callable[[list[keras.callbacks.Callback]], Any],
    *,
    data: Iterable[Any] = (),
    state: dict[str, Any] | None = None,
    final_epoch: Callable[[], int | None] | None = None,
) -> EpochBackup | None:
    """Run ``fit(extra_callbacks)`` (which calls ``model.fit``, ``extra_callbacks`` last) with an
    :class:`EpochBackup`; skip it when an earlier attempt of the run finished it. Without a run,
    ``fit([])``.

    Args:
        model: The model ``fit`` trains.
        run: The run folder, or None (no backup).
        history_file: The fit's history file (names its backup).
        fit: Calls ``model.fit`` with the given callbacks after its own.
        data: The training data (its loader's epoch is restored).
        state: Callbacks with ``resume_state``/``restore_state`` (see :class:`EpochBackup`).
        final_epoch: After the fit, the epoch whose weights the model holds (None: the last).

    Returns:
        The backup (``rows``: the history of every epoch, restored ones included), or None.
    """
    if not isinstance(run, RunDir):  # no run (or a stand-in with only a path): no backup
        fit([])
        return None
    backup = EpochBackup(run, history_file, data=data, state=state)
    if backup.done:
        backup.skip(model)
        return backup
    fit([backup])
    backup.complete(model, final_epoch() if final_epoch else None)
    return backup


# ---------------------------------------------------------------------------------------------
# arrays as batches in an order a resumed fit can repeat


class ArrayBatches(keras.utils.PyDataset):
    """Batches of in-memory arrays, shuffled by ``default_rng([seed, epoch])``, so that the order
    of any epoch is known again after a resume (Keras's own shuffling of arrays draws from the
    backend's random state, which a resumed process cannot replay).

    Args:
        x: Inputs, an array or a dict of arrays with one row per sample.
        y: Targets, likewise.
        batch_size: Samples per batch (the last one may be smaller).
        seed: Seed of the order.
        shuffle: Shuffle every epoch.

    Example:
        >>> b = ArrayBatches({"x": np.arange(5)}, np.arange(5), batch_size=2, seed=0)
        >>> len(b), sorted(np.concatenate([b[i][1] for i in range(len(b))]).tolist())
        (3, [0, 1, 2, 3, 4])
    """

    def __init__(self, x: Any, y: Any, *, batch_size: int, seed: int, shuffle: bool = True):
        super().__init__()
        self.x, self.y = x, y
        self.batch_size, self.seed, self.shuffle = int(batch_size), int(seed), bool(shuffle)
        first = next(iter(x.values())) if isinstance(x, dict) else x
        self.n = len(first)
        self.epoch = 0
        self._order = self._permutation()

    def _permutation(self) -> np.ndarray:
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed, self.epoch]).permutation(self.n)

    def seek_epoch(self, epoch: int) -> None:
        """Continue at ``epoch`` (the order after that many epochs)."""
        self.epoch = int(epoch)
        self._order = self._permutation()

    def on_epoch_end(self) -> None:
        self.seek_epoch(self.epoch + 1)

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        idx = self._order[i * self.batch_size : (i + 1) * self.batch_size]

        def take(a: Any) -> Any:
            return {k: v[idx] for k, v in a.items()} if isinstance(a, dict) else a[idx]

        return take(self.x), take(self.y)


def array_batches(train: Any, fit_kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    """``(train, fit_kwargs)`` with in-memory arrays (``fit_kwargs`` holds ``y``) turned into
    :class:`ArrayBatches` seeded from Python's random state (so a control fit after another
    ``seed_everything`` gets another order); anything else unchanged."""
    if "y" not in fit_kwargs:
        return train, fit_kwargs
    kwargs = dict(fit_kwargs)
    y = kwargs.pop("y")
    batch_size = kwargs.pop("batch_size", None) or 32
    shuffle = kwargs.pop("shuffle", True)
    kwargs.setdefault("validation_batch_size", batch_size)
    batches = ArrayBatches(
        train, y, batch_size=batch_size, seed=random.randrange(2**31), shuffle=bool(shuffle)
    )
    return batches, kwargs
