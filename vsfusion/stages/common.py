"""What every stage shares: run directories, seeding, data loading, training with best-on-validation
selection, atomic checkpoints and finding the checkpoints of earlier stages.

A run directory ``<checkpoints>/<dataset>/<stage>/<run_name>/`` holds ``config.yaml`` (the resolved
configuration), ``run.json`` (seed, git revision, versions, timings), ``history.csv``, ``best.keras``
and ``best.weights.h5`` (the weights selected on the validation split, without optimizer state) and
``metrics.json``. ``<checkpoints>/<dataset>/<stage>/latest`` names the newest finished run.
A run that trained also holds ``tensorboard/`` (event files of every fit, unless
``--no-tensorboard``; a fit other than the main one in a subfolder named after its history, e.g.
``tensorboard/control/``) and ``curves.png`` (loss and accuracy per epoch of every history file,
the selected epoch marked), written by :meth:`RunDir.finish`.
While a run trains, ``resume/`` in its folder holds the per-epoch backup that ``--resume``
continues a killed run from (:mod:`vsfusion.stages.resume`); it is removed at the finish.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vsfusion.config import StageConfig, config_to_yaml
from vsfusion.data import DATASETS, DataError, Manifest, load_dataset
from vsfusion.data.io import atomic_write_text
from vsfusion.data.splits import parse_subject_splits, subject_split
from vsfusion.runtime import machine_info, setup_logging
from vsfusion.stages import distribute
from vsfusion.stages.tracking import history_rows, tensorboard_callback

__all__ = [
    "StageError",
    "RunDir",
    "setup_logging",
    "seed_everything",
    "load_manifest",
    "rows_with",
    "fit_with_selection",
    "fit_logged",
    "tracking_callbacks",
    "write_history",
    "learning_rate",
    "make_optimizer",
    "check_video_trunk",
    "pretrain_run_dir",
    "load_pretrained_trunk",
    "save_model",
    "load_model",
    "resolve_run",
    "predict_arrays",
    "feed",
]

logger = logging.getLogger(__name__)
REPO_ROOT = Path(__file__).resolve().parents[2]


class StageError(RuntimeError):
    """A stage cannot run with what it was given; the message names the file and the fix."""


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and the Keras backend."""
    keras.utils.set_random_seed(seed)


def git_revision() -> str:
    """The git revision of the code being run, with ``+dirty`` when the tree has changes."""
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return (rev or "unknown") + ("+dirty" if dirty else "")


class RunDir:
    """One stage run's output folder, built in a hidden ``.<name>.incomplete`` folder and renamed to
    ``<name>`` by :meth:`finish`, so a failed or killed run never looks like a finished one.

    Example:
        >>> run = RunDir.create(cfg)            # doctest: +SKIP
        >>> run.write_json("extra.json", {"note": 1})  # doctest: +SKIP
        >>> run.finish({"val_accuracy": 0.9})   # doctest: +SKIP
    """

    _open: list[RunDir] = []  # created and not finished; discard_incomplete() removes them

    def __init__(self, path: Path, final: Path, cfg: StageConfig):
        self.path = path
        self.final = final
        self.cfg = cfg
        self.started = time.time()
        # history files of the fits of this run, in order, and each one's selected epoch
        self.histories: dict[str, int | None] = {}
        # resuming (vsfusion.stages.resume): the folder lock, whether this run continues a killed
        # one, the seconds of earlier attempts, when and from which epochs it was resumed, and
        # the cost of the per-epoch backups
        self.lock: Any = None
        self.resumed = False
        self.elapsed_before = 0.0
        self.first_started: str | None = None
        self.resume_points: list[dict[str, Any]] = []
        self.backup: dict[str, Any] = {}
        # a non-chief worker's temporary folder (removed when the run ends): None elsewhere
        self.scratch: Path | None = None

    @classmethod
    def create(cls, cfg: StageConfig, stage: str | None = None) -> RunDir:
        """A new run of ``cfg``'s stage under ``<checkpoints>/<dataset>/<stage>/`` (``stage``:
        another folder than ``cfg.stage``, e.g. the stream a ``train_stream.py`` run trains), or,
        with ``cfg.resume``, the killed run it names, reopened (:func:`resume.reopen`)."""
        from vsfusion.stages import resume

        stage_dir = Path(cfg.checkpoints) / cfg.dataset / (stage or cfg.stage)
        if getattr(cfg, "resume", None):
            return resume.reopen(cls, cfg, stage_dir)
        name = cfg.run_name or time.strftime("%Y%m%d-%H%M%S") + f"_seed{cfg.seed}"
        final = stage_dir / name
        scratch = None
        if not distribute.is_chief():  # a multi-worker run's copy: the chief writes the run
            scratch = Path(tempfile.mkdtemp(prefix="vsfusion-worker-"))
            final = scratch / name
        if final.exists():
            raise StageError(f"{final} already exists; choose another --run_name or remove it")
        path = final.parent / f".{name}.incomplete"
        if path.exists():  # left by a killed run: an error naming --resume, or removed
            resume.check_leftover(path, cfg)
        path.mkdir(parents=True)
        run = cls(path, final, cfg)
        run.scratch = scratch
        run.lock = resume.lock_run(path)
        cls._open.append(run)
        atomic_write_text(path / "config.yaml", config_to_yaml(cfg))
        run.write_json("run.json", run._info())
        logger.info("run directory %s", final)
        return run

    def _info(self, **extra: Any) -> dict[str, Any]:
        replicas = distribute.current()
        started = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self.started))
        resumed = (
            {"resumed": len(self.resume_points), "resume_points": self.resume_points}
            if self.resume_points
            else {}
        )
        return {
            "stage": self.cfg.stage,
            "seed": self.cfg.seed,
            "git_revision": git_revision(),
            "keras": keras.__version__,
            "backend": keras.backend.backend(),
            "python": platform.python_version(),
            "machine": machine_info(),
            "started": self.first_started or started,
            **({"distribute": replicas.record()} if replicas else {}),
            **resumed,
            **extra,
        }

    def seconds(self) -> float:
        """Wall seconds of this run: this attempt's, plus those of earlier (killed) attempts up
        to their last backup."""
        return self.elapsed_before + time.time() - self.started

    def note_resume(self, fit: str, epoch: int | str) -> None:
        """Record in ``run.json`` that this attempt continued ``fit`` after ``epoch`` (``"done"``:
        an earlier attempt finished it)."""
        if self.resume_points:
            self.resume_points[-1]["fits"][fit] = epoch
            self.write_json("run.json", self._info())

    def write_json(self, name: str, data: Any) -> Path:
        path = self.path / name
        atomic_write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")
        return path

    def finish(self, metrics: dict[str, Any]) -> None:
        """Write metrics.json and the final run.json, move the run to its final name and point
        ``latest`` at it."""
        from vsfusion.stages.resume import STATE_DIR, unlock_run

        seconds = round(self.seconds(), 1)
        self._plot_curves()
        backup = {"backup": self.backup} if self.backup else {}
        info = self._info(seconds=seconds, peak_rss_mb=peak_rss_mb(), **backup)
        self.write_json("run.json", info)
        self.write_json("metrics.json", {**metrics, "seconds": seconds})
        os.replace(self.path, self.final)
        self.path = self.final
        RunDir._open.remove(self)
        atomic_write_text(self.final.parent / "latest", self.final.name + "\n")
        shutil.rmtree(self.final / STATE_DIR, ignore_errors=True)  # the backups and the lock
        unlock_run(self.lock)
        self.lock = None
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)

    def record_history(self, history_file: str, selected_epoch: int | None = None) -> None:
        """Note that this run wrote ``history_file`` (a fit's rows per epoch) and which of its
        epochs was selected (None: the last one was kept); :meth:`finish` plots them."""
        self.histories[history_file] = selected_epoch

    def _plot_curves(self) -> None:
        """``curves.png`` of the recorded histories; a failure is a warning, never a lost run."""
        if not self.histories:
            return
        from vsfusion.evaluation.report import plot_training_curves

        try:
            plot_training_curves(
                [self.path / name for name in self.histories],
                self.path / "curves.png",
                selected=list(self.histories.values()),
                title=f"{self.cfg.stage} run {self.final.name}",
            )
        except Exception as exc:  # noqa: BLE001 - a plot must not lose a trained run
            logger.warning("curves.png not written (%s: %s)", type(exc).__name__, exc)

    @classmethod
    def discard_incomplete(cls) -> None:
        """Remove the folders of runs that were created but did not finish (after an error); a
        resumed run's folder (a killed run's, with its backups) is kept for another --resume."""
        from vsfusion.stages.resume import unlock_run

        while cls._open:
            run = cls._open.pop()
            if run.resumed:
                logger.info("kept the resumed run %s for another --resume", run.path)
            else:
                shutil.rmtree(run.scratch or run.path, ignore_errors=True)
                logger.info("removed incomplete run %s", run.path)
            unlock_run(run.lock)
            run.lock = None


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (Linux ru_maxrss is in KiB)."""
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def load_manifest(cfg: StageConfig) -> Manifest:
    """Load the configured dataset, carving a validation split from training subjects if needed."""
    if cfg.dataset not in DATASETS:
        raise StageError(f"unknown dataset {cfg.dataset!r}; choose one of {sorted(DATASETS)}")
    if not 0.0 < cfg.val_fraction < 1.0:
        raise StageError(
            f"--val_fraction {cfg.val_fraction} must be in (0, 1), e.g. 0.25 (a quarter of the "
            "training subjects validate)"
        )
    root = cfg.data_root or str(Path("data") / cfg.dataset)
    options = {
        "seed": cfg.seed,
        "val_fraction": cfg.val_fraction,
        "cache_dir": cfg.cache_dir or str(Path("cache") / cfg.dataset),
        "video_modality": cfg.video_modality,
        "protocol": cfg.protocol,
        "video_crop": cfg.video_crop,
        "subject_pattern": cfg.subject_pattern,
        "workers": cfg.prep_workers,
    }
    accepted = inspect.signature(DATASETS[cfg.dataset]).parameters
    takes_all = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in accepted.values())
    unused = [
        k
        for k in ("video_modality", "protocol", "video_crop", "subject_pattern")
        if options[k] is not None and k not in accepted
    ]
    if unused and not takes_all:
        raise StageError(f"dataset {cfg.dataset} has no option {unused[0]}; drop --{unused[0]}")
    options = {k: v for k, v in options.items() if v is not None and (takes_all or k in accepted)}
    manifest = load_dataset(cfg.dataset, root, **options)
    if cfg.subjects:
        manifest = _resplit(manifest, cfg.subjects)
    counts = {s: int((manifest.samples["split"] == s).sum()) for s in ("train", "val", "test")}
    logger.info("%s: %d classes, %s samples", cfg.dataset, len(manifest.classes), counts)
    return manifest


def _resplit(manifest: Manifest, text: str) -> Manifest:
    """``manifest`` with the subject splits of ``--subjects`` (see :func:`parse_subject_splits`)."""
    spec = parse_subject_splits(text)
    present = set(manifest.samples["subject"].astype(str))
    absent = sorted({x for subs in spec.values() for x in subs} - present)
    if absent:
        raise DataError(
            f"--subjects {text!r}: subject(s) {absent} are not in {manifest.name} as loaded "
            f"(subjects: {sorted(present)}); check --protocol, which decides the subjects loaded"
        )
    samples = subject_split(manifest.samples, spec["train"], spec["test"], spec["val"])
    return Manifest(samples, manifest.classes, manifest.name, manifest.root, manifest.declared)


def rows_with(rows: Any, modality: str) -> Any:
    """The manifest rows that have a ``modality`` file (none when the column is absent)."""
    if modality not in rows.columns:
        return rows[:0]
    return rows[rows[modality].astype(str) != ""]


def require_modality(manifest: Manifest, split: str, modality: str) -> Any:
    """The rows of ``split`` that have ``modality``; a clear error when there are none."""
    rows = manifest.split(split)
    if modality not in rows.columns:
        raise DataError(f"dataset {manifest.name} has no {modality} modality; this stage needs it")
    have = rows_with(rows, modality)
    if len(have) == 0:
        raise DataError(
            f"{manifest.name}: split '{split}' has no samples with {modality}; this stage needs them"
        )
    return have


# ---------------------------------------------------------------------------------------------
# training with selection on the validation split


class BestOnValidation(keras.callbacks.Callback):
    """Keep the weights of the best epoch on a validation metric, stop after ``patience`` epochs
    without improvement, and restore the best weights at the end. Ties keep the earlier epoch.
    """

    def __init__(self, monitor: str = "val_accuracy", mode: str = "max", patience: int = 10):
        super().__init__()
        self.monitor, self.mode, self.patience = monitor, mode, patience
        self.best: float | None = None
        self.best_epoch = -1
        self.best_weights: list[np.ndarray] | None = None
        self.history: list[dict[str, float]] = []

    def _better(self, value: float) -> bool:
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        logs = dict(logs or {})
        self.history.append({"epoch": epoch + 1, **{k: float(v) for k, v in logs.items()}})
        if self.monitor not in logs:
            raise StageError(f"metric {self.monitor!r} not logged; available: {sorted(logs)}")
        value = float(logs[self.monitor])
        if self._better(value):
            self.best, self.best_epoch = value, epoch + 1
            self.best_weights = [np.array(w) for w in self.model.get_weights()]
        elif epoch + 1 - self.best_epoch >= self.patience:
            logger.info("early stop: no %s improvement for %d epochs", self.monitor, self.patience)
            self.model.stop_training = True

    def on_train_end(self, logs: dict[str, float] | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)

    def resume_state(self) -> dict[str, Any]:
        """What a resumed fit needs (the patience count follows from ``best_epoch``); the best
        weights are the backup of epoch ``weights_epoch`` (:class:`resume.EpochBackup`)."""
        return {
            "best": self.best,
            "best_epoch": self.best_epoch,
            "history": self.history,
            "weights_epoch": self.best_epoch,
        }

    def restore_state(self, state: dict[str, Any], weights: list[np.ndarray] | None) -> None:
        self.best, self.best_epoch = state.get("best"), int(state.get("best_epoch", -1))
        self.history = list(state.get("history", []))
        self.best_weights = weights


def check_video_trunk(
    backbone: str, num_frames: int | None = None, crop_size: int | None = None, pretrain: Any = None
) -> None:
    """A ``StageError`` naming the fix when ``backbone`` is unknown, cannot take a
    ``num_frames`` x ``crop_size`` clip, or is asked to load ``--pretrain`` weights it cannot hold:
    a Kinetics-style I3D file into another backbone, or a ``pretrain_video.py`` run of another
    backbone. Checked before any run directory is created."""
    from vsfusion.models import backbone_spec, check_clip

    try:
        backbone_spec(backbone)
        if num_frames is not None and crop_size is not None:
            check_clip(backbone, (num_frames, crop_size, crop_size, 3))
    except ValueError as exc:
        raise StageError(str(exc)) from None
    if not pretrain:
        return
    run = pretrain_run_dir(pretrain)
    if run is None:
        if backbone != "i3d":
            raise StageError(
                f"--pretrain loads Kinetics-style I3D files; it cannot initialise --backbone "
                f"{backbone}; drop --pretrain or use --backbone i3d (or pass a pretrain_video.py "
                f"run of {backbone})"
            )
        if not Path(pretrain).is_file():
            raise StageError(
                f"--pretrain {pretrain} does not exist; pass a Kinetics-style I3D .h5 file or a "
                "pretrain_video.py run folder"
            )
        return
    pretrained = read_run_config(run).get("backbone")
    if pretrained != backbone:
        raise StageError(
            f"{run / PRETRAIN_TRUNK} holds a {pretrained} trunk but --backbone is {backbone}; "
            f"use --backbone {pretrained} or a pretrain run of {backbone}"
        )


#: The trunk file a ``pretrain_video.py`` run writes (and ``trunk.weights.h5`` beside it).
PRETRAIN_TRUNK = "trunk.keras"


def pretrain_run_dir(path: str | os.PathLike) -> Path | None:
    """The ``pretrain_video.py`` run that ``--pretrain path`` names, or None for another file.

    A folder, or a file named ``trunk.keras`` / ``trunk.weights.h5``, must be a finished pretrain
    run (``trunk.keras``, ``metrics.json`` and a ``config.yaml`` of stage ``pretrain``); any other
    ``.h5`` file (Kinetics-style I3D weights) gives None.

    Raises:
        StageError: ``path`` is neither an ``.h5`` file nor a finished pretrain run.

    Example:
        >>> pretrain_run_dir("checkpoints/UTD-MHAD/pretrain/run1")  # doctest: +SKIP
        PosixPath('checkpoints/UTD-MHAD/pretrain/run1')
        >>> pretrain_run_dir("rgb_imagenet_and_kinetics.h5") is None
        True
    """
    p = Path(path)
    if p.is_dir():
        run = p
    elif p.name in (PRETRAIN_TRUNK, "trunk.weights.h5"):
        run = p.parent
    elif p.suffix == ".h5":
        return None
    else:
        raise StageError(
            f"--pretrain {p} does not exist or is not a run folder; pass a pretrain_video.py run "
            "folder (or its trunk.keras) or a Kinetics-style I3D .h5"
        )
    config = run / "config.yaml"
    if not (run / PRETRAIN_TRUNK).is_file() or not (run / "metrics.json").is_file():
        raise StageError(
            f"--pretrain {p}: {run} is not a finished pretrain run (no {PRETRAIN_TRUNK}/metrics.json); "
            "run pretrain_video.py or pass its run folder"
        )
    if not config.is_file() or read_run_config(run).get("stage") != "pretrain":
        raise StageError(
            f"--pretrain {p}: {config} is not the config of a pretrain_video.py run; "
            "pass a pretrain run folder or a Kinetics-style I3D .h5"
        )
    return run


def _trunk_of(model: keras.Model) -> keras.Model:
    from vsfusion.models.heads import _is_trunk, split_classifier

    return model if _is_trunk(model) else split_classifier(model)[0]


def load_pretrained_trunk(model: keras.Model, path: str | os.PathLike) -> dict[str, Any]:
    """Initialise the trunk of ``model`` from ``--pretrain path``, by layer name.

    ``path`` is a ``pretrain_video.py`` run (folder, ``trunk.keras`` or ``trunk.weights.h5``):
    every weighted layer of the trunk must be in the pretrained trunk with the same shapes (the
    clip size may differ; the channels may not), and nothing is assigned otherwise. Any other
    path is a Kinetics-style I3D ``.h5`` file (:func:`vsfusion.models.load_i3d_weights`).

    Args:
        model: A trunk, or a classifier nesting one (:func:`vsfusion.models.split_classifier`).
        path: The ``--pretrain`` value.

    Returns:
        What to record in the run's metrics: ``pretrain`` (the run or file), ``pretrain_kind``
        (``"vsfusion"`` or ``"kinetics_i3d"``) and ``pretrained_layers`` (how many layers).

    Raises:
        StageError: One line naming the file and the fix when the weights do not fit.

    Example:
        >>> info = load_pretrained_trunk(classifier, "checkpoints/UTD-MHAD/pretrain/run1")  # doctest: +SKIP
        >>> info["pretrained_layers"]  # doctest: +SKIP
        196
    """
    from vsfusion.models import load_i3d_weights

    run = pretrain_run_dir(path)
    if run is None:
        try:
            loaded = load_i3d_weights(model, path)
        except (OSError, ValueError, KeyError) as exc:
            raise StageError(
                f"--pretrain {path}: {str(exc).splitlines()[0][:300]}; "
                "pass a Kinetics-style I3D .h5 for this clip's channels or drop --pretrain"
            ) from None
        return {
            "pretrain": str(path),
            "pretrain_kind": "kinetics_i3d",
            "pretrained_layers": len(loaded),
        }
    file = run / PRETRAIN_TRUNK
    source = load_model(file)
    target = _trunk_of(model)
    src = {layer.name: layer for layer in source.layers if layer.weights}
    dst = {layer.name: layer for layer in target.layers if layer.weights}
    problems = [f"{n} not in the pretrained trunk" for n in dst if n not in src]
    problems += [f"{n} not in trunk {target.name}" for n in src if n not in dst]
    for n in dst.keys() & src.keys():
        have = [tuple(w.shape) for w in src[n].weights]
        want = [tuple(w.shape) for w in dst[n].weights]
        if have != want:
            problems.append(f"{n}: pretrained {have} vs {want}")
    if problems:
        raise StageError(
            f"--pretrain {file} does not fit trunk {target.name} ({len(problems)} layers, e.g. "
            f"{'; '.join(sorted(problems)[:2])}); pretrain with the same --backbone and "
            "--video-modality (channels) or drop --pretrain"
        )
    for n, layer in dst.items():
        for variable, value in zip(layer.weights, src[n].weights, strict=True):
            variable.assign(keras.ops.convert_to_numpy(value))
    logger.info("loaded %d trunk layers from %s", len(dst), file)
    return {"pretrain": str(run), "pretrain_kind": "vsfusion", "pretrained_layers": len(dst)}


def make_optimizer(cfg: Any, steps_per_epoch: int) -> keras.optimizers.Optimizer:
    """Adam, or with ``cfg.optimizer == "sgd"`` Nesterov SGD (momentum 0.9), at the stage's
    :func:`learning_rate`. ``cfg`` needs ``lr`` and ``epoch`` (and optionally ``schedule``,
    ``warmup_epochs``, ``optimizer``)."""
    lr = learning_rate(cfg, steps_per_epoch=steps_per_epoch)
    if getattr(cfg, "optimizer", "adam") == "sgd":
        return keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    return keras.optimizers.Adam(lr)


def learning_rate(
    cfg: StageConfig, steps_per_epoch: int
) -> float | keras.optimizers.schedules.LearningRateSchedule:
    """The stage's learning rate: ``cfg.lr`` constant, or with ``cfg.schedule == "cosine"`` a linear
    warm-up over ``cfg.warmup_epochs`` to ``cfg.lr`` and a cosine decay to 0 at ``cfg.epoch``.

    Example:
        >>> from vsfusion.config import VideoConfig
        >>> sched = learning_rate(VideoConfig(lr=1e-3, epoch=10, schedule="cosine"), 4)
        >>> round(float(sched(4)), 6), round(float(sched(40)), 6)
        (0.001, 0.0)
    """
    schedule = getattr(cfg, "schedule", "constant")
    if schedule == "constant":
        return cfg.lr
    if schedule != "cosine":
        raise StageError(f"unknown schedule {schedule!r}; use constant or cosine")
    total = max(1, cfg.epoch * steps_per_epoch)
    warmup = min(total - 1, round(getattr(cfg, "warmup_epochs", 0.0) * steps_per_epoch))
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else cfg.lr,
        decay_steps=total - warmup,
        warmup_target=cfg.lr if warmup else None,
        warmup_steps=warmup,
    )


def _loader_error(data: Any) -> DataError | None:
    """The DataError a loader (or a loader wrapped in ``.loader``) raised, if any."""
    for obj in (data, getattr(data, "loader", None)):
        error = getattr(obj, "last_error", None)
        if isinstance(error, DataError):
            return error
    return None


def _fit_label(history_file: str) -> str:
    """The TensorBoard subfolder of the fit writing ``history_file``: ``""`` for ``history.csv``,
    ``control`` for ``history_control.csv``."""
    stem = Path(history_file).stem
    return "" if stem == "history" else stem.removeprefix("history_")


def tracking_callbacks(
    cfg: StageConfig, run: RunDir | None, history_file: str = "history.csv"
) -> list[keras.callbacks.Callback]:
    """The TensorBoard logger of the fit that writes ``history_file`` in ``run`` (under
    ``tensorboard/``, or ``tensorboard/<name>/`` for ``history_<name>.csv``), or nothing when
    ``cfg.tensorboard`` is off, there is no run, or no logger can work here."""
    if run is None or not getattr(cfg, "tensorboard", False):
        return []
    callback = tensorboard_callback(run.path / "tensorboard" / _fit_label(history_file))
    return [callback] if callback is not None else []


def write_history(
    run: RunDir, history_file: str, rows: list[dict[str, Any]], selected_epoch: int | None = None
) -> None:
    """Write a fit's ``rows`` (``epoch`` first) to ``history_file`` atomically and record it for
    the run's ``curves.png``."""
    if not rows:
        return
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(run.path / history_file, buf.getvalue())
    run.record_history(history_file, selected_epoch)


def fit_logged(
    model: keras.Model,
    train: Any,
    cfg: StageConfig,
    run: RunDir,
    *,
    epochs: int,
    history_file: str,
    **fit_kwargs: Any,
) -> list[dict[str, Any]]:
    """``model.fit`` for ``epochs`` without selection (the last epoch is kept), with the
    TensorBoard logger and the per-epoch backup (:func:`resume.resumable_fit`), writing
    ``history_file``; returns its rows."""
    from vsfusion.stages.resume import resumable_fit

    history: list[Any] = []
    fit_train, _, fit_kwargs = distribute.fit_data(train, None, fit_kwargs)

    def fit(extra: list[keras.callbacks.Callback]) -> None:
        with distribute.fitting(model, fit_train):
            history.append(
                model.fit(
                    fit_train,
                    epochs=epochs,
                    verbose=cfg.verbose,
                    callbacks=[*tracking_callbacks(cfg, run, history_file), *extra],
                    **fit_kwargs,
                )
            )

    backup = resumable_fit(model, run, history_file, fit, data=(train,))
    # a resumed fit's Keras history lacks the epochs of earlier attempts; the backup has them all
    rows = backup.rows if backup is not None else history_rows(history[0])
    write_history(run, history_file, rows)
    return rows


def fit_with_selection(
    model: keras.Model,
    train: Any,
    val: Any,
    cfg: StageConfig,
    run: RunDir | None,
    *,
    monitor: str = "val_accuracy",
    mode: str = "max",
    history_file: str = "history.csv",
    report: tuple[str, ...] = (),
    **fit_kwargs: Any,
) -> dict[str, Any]:
    """Fit ``model`` on ``train``, select the epoch on ``val`` and write ``history_file``.

    The test split is never seen here. With ``cfg.tensorboard`` the fit logs to the run's
    ``tensorboard/`` folder (:func:`tracking_callbacks`); with a run, every epoch is backed up
    and a resumed run continues the fit (:func:`resume.resumable_fit`; in-memory ``x``/``y``
    arrays become :class:`resume.ArrayBatches`). Returns ``{"best_epoch", monitor,
    "epochs_run"}`` and, for each logged metric in ``report``, its value at the selected epoch.
    """
    from vsfusion.stages.resume import array_batches, resumable_fit

    best = BestOnValidation(monitor=monitor, mode=mode, patience=cfg.patience)
    train, fit_kwargs = array_batches(train, fit_kwargs)  # arrays: an order a resume repeats
    # --distribute: batches that split over the replicas (unchanged on one device)
    fit_train, fit_val, fit_kwargs = distribute.fit_data(train, val, fit_kwargs)

    def fit(extra: list[keras.callbacks.Callback]) -> Any:
        with distribute.fitting(model, fit_train):
            return model.fit(
                fit_train,
                validation_data=fit_val,
                epochs=cfg.epoch,
                callbacks=[best, *tracking_callbacks(cfg, run, history_file), *extra],
                verbose=cfg.verbose,
                **fit_kwargs,
            )

    try:
        resumable_fit(
            model,
            run,
            history_file,
            fit,
            data=(train,),
            state={"selection": best},
            final_epoch=lambda: best.best_epoch,
        )
    except Exception:
        data_error = _loader_error(train) or _loader_error(val)
        if data_error is not None:  # the backend wrapped it: report the loader's own message
            raise data_error from None
        raise
    if run is not None:
        write_history(run, history_file, best.history, best.best_epoch)
    logger.info("best epoch %d: %s = %.4f", best.best_epoch, monitor, best.best or float("nan"))
    chosen = next((row for row in best.history if row["epoch"] == best.best_epoch), {})
    return {
        "best_epoch": best.best_epoch,
        monitor: best.best,
        "epochs_run": len(best.history),
        **{key: chosen.get(key) for key in report},
    }


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_model(model: keras.Model, directory: Path, stem: str = "best") -> Path:
    """Save ``<stem>.keras`` (architecture + weights, no optimizer) and ``<stem>.weights.h5`` atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    clean = keras.models.clone_model(model)
    clean.set_weights(model.get_weights())
    if getattr(clean, "optimizer", None) is not None:
        # clone_model compiles the clone of a compiled model with a fresh optimizer, whose
        # variables would be saved beside the weights (3x the file for Adam)
        clean.optimizer = None
        clean.compiled = False
    target = directory / f"{stem}.keras"
    for suffix, writer in ((".keras", clean.save), (".weights.h5", clean.save_weights)):
        final = directory / f"{stem}{suffix}"
        tmp = directory / f".{stem}.tmp{suffix}"
        try:
            writer(str(tmp))
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
    return target


def load_model(path: str | Path) -> keras.Model:
    """Load a ``.keras`` checkpoint written by vsfusion, with a one-line error when it is unusable."""
    import vsfusion.fusion  # noqa: F401  (registers custom layers)
    import vsfusion.models  # noqa: F401

    path = Path(path)
    if not path.is_file():
        raise StageError(
            f"checkpoint {path} does not exist; train that stage first or pass its path"
        )
    try:
        return keras.models.load_model(path, compile=False)
    except Exception as exc:  # noqa: BLE001 - any failure means the file is unusable
        raise StageError(
            f"checkpoint {path} could not be read ({exc.__class__.__name__}: {str(exc).splitlines()[0][:160]}); "
            "re-run the stage that writes it"
        ) from None


def resolve_run(path: str | None, cfg: StageConfig, stage: str) -> Path:
    """Find an earlier stage's run directory from a run dir, a checkpoint file or ``latest``.

    Args:
        path: a run directory, a ``.keras`` file inside one, or None for the newest run of ``stage``
            under ``<checkpoints>/<dataset>/<stage>/``.
        cfg: the current stage's configuration (for the checkpoints root and dataset).
        stage: the stage whose run is wanted ("video", "sensor", "generator").
    """
    if path is None:
        stage_dir = Path(cfg.checkpoints) / cfg.dataset / stage
        latest = stage_dir / "latest"
        if not latest.is_file():
            raise StageError(
                f"no finished {stage} run under {stage_dir}; run that stage first or pass its path"
            )
        run = stage_dir / latest.read_text().strip()
    else:
        p = Path(path)
        run = p.parent if p.suffix in (".keras", ".h5") else p
    if not (run / "best.keras").is_file() or not (run / "metrics.json").is_file():
        raise StageError(
            f"{run} is not a finished {stage} run (no best.keras/metrics.json); re-run {stage}"
        )
    return run


def read_run_config(run: Path) -> dict[str, Any]:
    """The resolved configuration a run was made with.

    Raises:
        StageError: The run's ``config.yaml`` is missing or is not a YAML mapping.
    """
    import yaml

    path = Path(run) / "config.yaml"
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise StageError(
            f"{path} could not be read ({exc.__class__.__name__}); re-run the stage that wrote {run}"
        ) from None
    if not isinstance(data, dict):
        raise StageError(f"{path} is not a run configuration; re-run the stage that wrote {run}")
    return data


def feed(model: keras.Model, x: dict[str, Any]) -> Any:
    """Pick from a dict batch the inputs ``model`` takes (matched by input name)."""
    names = [t.name for t in model.inputs]
    missing = [n for n in names if n not in x]
    if missing:
        raise StageError(f"model {model.name} needs inputs {missing}; the batch has {sorted(x)}")
    return {n: x[n] for n in names}


def predict_arrays(
    model: keras.Model, loader: Any, *, select: Callable[[Any], Any] | None = None
) -> dict[str, np.ndarray] | np.ndarray:
    """``model.predict`` over a (non-shuffled) loader: the outputs of every sample, in order.

    Each batch's inputs are picked by name (:func:`feed`); under ``--distribute`` the batches are
    split over the replicas (:func:`vsfusion.stages.distribute.predict_batches`). Works for
    models with a single output (returns an array) and dict outputs (returns a dict of arrays);
    ``select`` picks from the outputs.
    """
    out = distribute.predict_batches(model, loader, inputs=lambda x: feed(model, x))
    if isinstance(out, dict):
        out = {k: np.asarray(v) for k, v in out.items()}
    else:
        out = np.asarray(out)
    return select(out) if select else out
