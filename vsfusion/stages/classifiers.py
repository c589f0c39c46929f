"""Stage 1: the single-modality classifiers (a video backbone, I3D by default; InceptionTime on sensors).

Both are trained the same way: fit on the training split with the stage's augmentation,
schedule and label smoothing, select the epoch on the validation split, then report validation
and test metrics of the selected weights. With ``--final_fit`` the model is retrained on the
training and validation subjects for the selected number of epochs and test metrics are those of
the refit model (recorded under ``final_fit`` in ``metrics.json``; its loss per epoch in
``history_final_fit.csv``, ``curves.png`` and ``tensorboard/final_fit/``).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from typing import Any

import keras
import numpy as np
import pandas as pd

from vsfusion.config import ClassifierConfig, SensorConfig, StageConfig, StreamConfig, VideoConfig
from vsfusion.data import ClipLoader, DataError, Manifest, dataset_fact
from vsfusion.data.augment import SensorAugment
from vsfusion.data.modality import modality
from vsfusion.evaluation.metrics import classification_summary
from vsfusion.models import (
    build_backbone,
    build_inception_time,
    classification_loss,
    fit_normalization,
    split_classifier,
)
from vsfusion.models.trunks import trunk_builder
from vsfusion.stages.common import (
    RunDir,
    StageError,
    check_video_trunk,
    fit_logged,
    fit_with_selection,
    load_manifest,
    load_pretrained_trunk,
    make_optimizer,
    predict_arrays,
    require_modality,
    rows_with,
    save_model,
    seed_everything,
)
from vsfusion.stages.distribute import distributed

__all__ = [
    "ClassifierPlan",
    "plan_video",
    "plan_sensor",
    "plan_stream",
    "fit_classifier",
    "run_video",
    "run_sensor",
    "run_stream",
    "make_loader",
    "evaluate_classifier",
    "sensor_augment",
]

logger = logging.getLogger(__name__)


def make_loader(
    rows: Any,
    manifest: Manifest,
    modality: str,
    cfg: StageConfig,
    *,
    train: bool,
    shuffle: bool | None = None,
    **kw: Any,
) -> ClipLoader:
    """A loader over ``rows`` for one modality with the stage's batch size and seed.

    ``train`` turns on augmentation and, unless ``shuffle`` says otherwise, shuffling.
    """
    return ClipLoader(
        rows,
        manifest.classes,
        modalities=(modality,),
        streams=manifest.streams,
        batch_size=cfg.batch_size,
        shuffle=train if shuffle is None else shuffle,
        train=train,
        seed=cfg.seed,
        workers=cfg.workers,
        **kw,
    )


def evaluate_classifier(
    model: keras.Model, loader: ClipLoader, classes: list[str]
) -> dict[str, Any]:
    """Top-1/top-5/macro-F1 of ``model`` on a non-shuffled loader."""
    probs = predict_arrays(model, loader)
    return classification_summary(np.asarray(loader.labels), probs, classes)


def _split_loaders(
    manifest: Manifest, modality: str, cfg: StageConfig, *, test: bool = True, **kw: Any
) -> tuple[ClipLoader, ClipLoader, ClipLoader | None]:
    """Training, validation and (unless ``test`` is False, or it has no ``modality``) test
    loaders; with ``test=False`` no test row is read."""
    train_rows = require_modality(manifest, "train", modality)
    val_rows = require_modality(manifest, "val", modality)
    train = make_loader(train_rows, manifest, modality, cfg, train=True, **kw)
    val = make_loader(val_rows, manifest, modality, cfg, train=False, **kw)
    if not test:
        return train, val, None
    test_rows = rows_with(manifest.split("test"), modality)
    loader = (
        make_loader(test_rows, manifest, modality, cfg, train=False, **kw)
        if len(test_rows)
        else None
    )
    if loader is None:
        logger.warning(
            "test split has no %s recordings: only validation metrics are reported", modality
        )
    return train, val, loader


@dataclasses.dataclass
class ClassifierPlan:
    """What a classifier stage trains, built from its config before anything is fitted.

    Attributes:
        manifest: The dataset the loaders read.
        build: ``build(train_loader) -> keras.Model``: a fresh, uncompiled classifier whose input
            normalisation (if any) comes from ``train_loader``'s samples.
        train: Training loader (augmented, shuffled).
        val: Validation loader (the epoch is selected on it).
        test: Test loader, or None (no test recordings, or planned with ``test=False``).
        refit_loader: ``refit_loader()``: a training loader over training + validation subjects
            (``--final_fit``).
        extra: What the run's ``metrics.json`` records about the model (input shape, trunk, ...).
        late_extra: More of it, known only after ``build`` ran (e.g. pretrained layers).
        folder: The run's folder under ``<checkpoints>/<dataset>/`` when not the stage's name
            (a stream's column).

    Example:
        >>> plan = plan_sensor(SensorConfig(dataset="demo", epoch=2), test=False)  # doctest: +SKIP
        >>> model, selection = fit_classifier(plan, cfg, run=None)  # doctest: +SKIP
        >>> selection["best_epoch"], plan.test is None  # doctest: +SKIP
        (2, True)
    """

    manifest: Manifest
    build: Callable[[ClipLoader], keras.Model]
    train: ClipLoader
    val: ClipLoader
    test: ClipLoader | None
    refit_loader: Callable[[], ClipLoader]
    extra: dict[str, Any]
    late_extra: Callable[[], dict[str, Any]] | None = None
    folder: str | None = None


def _compile(model: keras.Model, cfg: ClassifierConfig, steps_per_epoch: int) -> None:
    loss, metrics = classification_loss(cfg.label_smoothing)
    model.compile(optimizer=make_optimizer(cfg, steps_per_epoch), loss=loss, metrics=metrics)


def fit_classifier(
    plan: ClassifierPlan,
    cfg: ClassifierConfig,
    run: RunDir | None,
    *,
    history_file: str = "history.csv",
) -> tuple[keras.Model, dict[str, Any]]:
    """The stage's training: build ``plan``'s model, compile it with the stage's optimizer, loss
    and schedule, and fit it on the training split with the epoch selected on validation
    (:func:`~vsfusion.stages.common.fit_with_selection`; the test loader is not used).

    Returns:
        The model with the selected epoch's weights, and the selection (``best_epoch``,
        ``val_accuracy``, ``epochs_run``).

    Example:
        >>> plan = plan_sensor(cfg, test=False)  # doctest: +SKIP
        >>> model, selection = fit_classifier(plan, cfg, run)  # doctest: +SKIP
    """
    model = plan.build(plan.train)
    _compile(model, cfg, len(plan.train))
    selection = fit_with_selection(model, plan.train, plan.val, cfg, run, history_file=history_file)
    return model, selection


def _train_and_report(plan: ClassifierPlan, cfg: ClassifierConfig, run: RunDir) -> dict[str, Any]:
    """Fit ``plan`` with the epoch chosen on validation; with ``cfg.final_fit`` refit
    ``plan.build(plan.refit_loader())`` on training + validation for that many epochs (a cosine
    schedule then decays to 0 at the refit's last epoch) and report test metrics of the refit
    model. Validation metrics are always those of the model selected on validation (the refit
    model has seen the validation subjects)."""
    manifest, train, val, test = plan.manifest, plan.train, plan.val, plan.test
    model, selection = fit_classifier(plan, cfg, run)
    val_metrics = evaluate_classifier(model, val, manifest.classes)
    refit: dict[str, Any] | None = None
    if cfg.final_fit:
        both = plan.refit_loader()
        seed_everything(cfg.seed)
        model = plan.build(both)
        epochs = int(selection["best_epoch"])
        # The refit's schedule ends at its last epoch: a cosine schedule anneals to 0 there
        # instead of stopping part-way down the selection run's longer horizon.
        _compile(model, dataclasses.replace(cfg, epoch=epochs), len(both))
        logger.info(
            "final fit: %d epochs on %d training + validation samples", epochs, len(both.labels)
        )
        fit_logged(model, both, cfg, run, epochs=epochs, history_file="history_final_fit.csv")
        refit = {"epochs": epochs, "schedule_epochs": epochs, "n_samples": len(both.labels)}
    save_model(model, run.path)
    metrics = {
        "classes": manifest.classes,
        "n_train": len(train.labels),
        "n_val": len(val.labels),
        "n_test": len(test.labels) if test is not None else 0,
        **selection,
        **plan.extra,
        **(plan.late_extra() if plan.late_extra else {}),
        "final_fit": refit,
        "val": val_metrics,
        "test": evaluate_classifier(model, test, manifest.classes) if test is not None else None,
    }
    run.finish(metrics)
    test_acc = metrics["test"]["top1"] if metrics["test"] else float("nan")
    logger.info("%s: val top-1 %.3f, test top-1 %.3f", cfg.stage, metrics["val"]["top1"], test_acc)
    return metrics


def _run(plan: ClassifierPlan, cfg: ClassifierConfig) -> RunDir:
    run = RunDir.create(cfg, stage=plan.folder)
    _train_and_report(plan, cfg, run)
    return run


def sensor_augment(cfg: SensorConfig, channels: int) -> SensorAugment | None:
    """The training augmentation of ``cfg`` for recordings of ``channels`` channels (None: off).

    The rotation unit is ``cfg.unit_channels``, else the dataset's ``SENSOR_UNIT_CHANNELS``, else
    no rotation (an unknown channel layout is not rotated)."""
    if not cfg.augment:
        return None
    unit = cfg.unit_channels
    if unit is None:
        unit = dataset_fact(cfg.dataset, "SENSOR_UNIT_CHANNELS", 0)
        if unit and channels % unit:
            unit = 0
    aug = SensorAugment(
        rotate_deg=cfg.rotate_deg,
        unit_channels=int(unit),
        warp=cfg.time_warp,
        scale=cfg.gain,
        jitter=cfg.jitter,
    )
    try:
        aug.check(channels)
    except ValueError as exc:
        raise StageError(f"--unit_channels: {exc}") from None
    return aug


def _train_plus_val(manifest: Manifest, modality: str) -> Any:
    rows = pd.concat([require_modality(manifest, s, modality) for s in ("train", "val")])
    return rows.reset_index(drop=True)


def plan_sensor(
    cfg: SensorConfig, manifest: Manifest | None = None, *, test: bool = True
) -> ClassifierPlan:
    """The sensor stage's InceptionTime classifier and loaders (seeded with ``cfg.seed``);
    normalisation statistics come from training data only.

    Args:
        cfg: The stage's configuration.
        manifest: The dataset, when already loaded (default: :func:`load_manifest` of ``cfg``).
        test: Also make the test loader; False reads no test row.
    """
    seed_everything(cfg.seed)
    manifest = manifest if manifest is not None else load_manifest(cfg)
    kw: dict[str, Any] = {"sensor_steps": cfg.sensor_steps}
    probe = make_loader(
        require_modality(manifest, "val", "sensor"), manifest, "sensor", cfg, train=False, **kw
    )
    steps, channels = probe[0][0]["sensor"].shape[1:]
    kw["sensor_augment"] = sensor_augment(cfg, int(channels))
    train, val, test_loader = _split_loaders(manifest, "sensor", cfg, test=test, **kw)

    def build(train: ClipLoader) -> keras.Model:
        plain = make_loader(train.samples, manifest, "sensor", cfg, train=False, **kw)
        mean, var = fit_normalization(plain[i][0]["sensor"] for i in range(len(plain)))
        return build_inception_time(
            (steps, channels),
            num_classes=len(manifest.classes),
            dropout=cfg.dropout,
            depth=cfg.depth,
            filters=cfg.filters,
            segments=cfg.segments,
            stats=cfg.stats,
            normalization=(mean, var),
        )

    def refit_loader() -> ClipLoader:
        return make_loader(
            _train_plus_val(manifest, "sensor"), manifest, "sensor", cfg, train=True, **kw
        )

    augment = kw["sensor_augment"]
    extra = {
        "input_shape": [int(steps), int(channels)],
        "augment": dataclasses.asdict(augment) if augment else None,
    }
    return ClassifierPlan(manifest, build, train, val, test_loader, refit_loader, extra)


@distributed
def run_sensor(cfg: SensorConfig) -> RunDir:
    """Train the InceptionTime sensor classifier (:func:`plan_sensor`), select the epoch on
    validation and report validation and test metrics."""
    return _run(plan_sensor(cfg), cfg)


def plan_video(
    cfg: VideoConfig, manifest: Manifest | None = None, *, test: bool = True
) -> ClassifierPlan:
    """The video stage's classifier (``--backbone``, optionally ``--pretrain``-ed and
    ``--freeze_trunk``-frozen) and loaders (seeded with ``cfg.seed``); ``manifest`` and ``test``
    as in :func:`plan_sensor`."""
    check_video_trunk(cfg.backbone, cfg.num_frames, cfg.crop_size, cfg.pretrain)
    if cfg.optimizer not in ("adam", "sgd"):  # argparse choices guard the CLI; this guards YAML
        raise StageError(f"unknown optimizer {cfg.optimizer!r}; use adam or sgd")
    seed_everything(cfg.seed)
    manifest = manifest if manifest is not None else load_manifest(cfg)
    kw = {
        "num_frames": cfg.num_frames,
        "crop_size": cfg.crop_size,
        "frame_size": cfg.frame_size,
        "flip": cfg.flip,
        "scale_jitter": cfg.scale_jitter,
        "erase_prob": cfg.erase_prob,
        "mixup": cfg.mixup,
    }
    train, val, test_loader = _split_loaders(manifest, "video", cfg, test=test, **kw)
    channels = manifest.stream("video").channels
    input_shape = (cfg.num_frames, cfg.crop_size, cfg.crop_size, channels)
    pretrained: dict[str, Any] = {"pretrain": None, "pretrained_layers": 0}

    def build(train: ClipLoader) -> keras.Model:
        model = build_backbone(
            cfg.backbone, input_shape, num_classes=len(manifest.classes), dropout=cfg.dropout
        )
        if cfg.pretrain:
            pretrained.update(load_pretrained_trunk(model, cfg.pretrain))
            logger.info("loaded %d layers from %s", pretrained["pretrained_layers"], cfg.pretrain)
        if cfg.freeze_trunk:
            if not cfg.pretrain:
                logger.warning(
                    "--freeze_trunk without --pretrain: a linear probe of random features"
                )
            trunk, _ = split_classifier(model)
            trunk.trainable = False  # Keras 3: BatchNorm of a frozen trunk runs in inference mode
        return model

    def refit_loader() -> ClipLoader:
        return make_loader(
            _train_plus_val(manifest, "video"), manifest, "video", cfg, train=True, **kw
        )

    extra = {
        "backbone": cfg.backbone,
        "input_shape": list(input_shape),
        "freeze_trunk": cfg.freeze_trunk,
    }
    return ClassifierPlan(
        manifest,
        build,
        train,
        val,
        test_loader,
        refit_loader,
        extra,
        late_extra=lambda: dict(pretrained),
    )


@distributed
def run_video(cfg: VideoConfig) -> RunDir:
    """Train the video classifier (``--backbone``): from scratch, fine-tuned from ``--pretrain``
    (a ``pretrain_video.py`` run of the same backbone, or Kinetics-style I3D weights), or, with
    ``--freeze_trunk``, as a linear probe of the (pretrained) trunk (:func:`plan_video`)."""
    return _run(plan_video(cfg), cfg)


def plan_stream(
    cfg: StreamConfig, manifest: Manifest | None = None, *, test: bool = True
) -> ClassifierPlan:
    """The classifier of one sequence stream (``--stream``) with the trunk its kind names (or
    ``--trunk``), and its loaders (seeded with ``cfg.seed``); ``manifest`` and ``test`` as in
    :func:`plan_sensor`. ``folder`` is the stream's column."""
    seed_everything(cfg.seed)
    manifest = manifest if manifest is not None else load_manifest(cfg)
    try:
        column = manifest.resolve_stream(cfg.stream)
    except DataError as exc:
        raise StageError(f"--stream: {exc}") from None
    info = manifest.streams[column]
    spec = modality(info.kind)
    if spec.trunk in ("i3d",):
        raise StageError(
            f"--stream {cfg.stream} is a {info.kind} clip stream; train it with train_video.py"
        )
    trunk = cfg.trunk or spec.trunk or "inception_time"
    try:
        builder = trunk_builder(trunk)
    except ValueError as exc:
        raise StageError(f"--trunk: {exc}") from None
    plain_kw: dict[str, Any] = {"lengths": {column: cfg.length} if cfg.length else None}
    augment = spec.augmentation(info) if cfg.augment else None
    kw = {**plain_kw, "flip": cfg.flip, "augment": {column: augment} if augment else None}
    plain = make_loader(
        require_modality(manifest, "val", column), manifest, column, cfg, train=False, **plain_kw
    )
    sample_shape = tuple(int(d) for d in plain[0][0][column].shape[1:])
    train, val, test_loader = _split_loaders(manifest, column, cfg, test=test, **kw)

    def build(train: ClipLoader) -> keras.Model:
        rows = make_loader(train.samples, manifest, column, cfg, train=False, **plain_kw)
        batches = (rows[i][0][column] for i in range(len(rows)))
        flat = (b.reshape(-1, b.shape[-1]) for b in batches)
        try:
            return builder(
                sample_shape,
                len(manifest.classes),
                input_name=column,
                dropout=cfg.dropout,
                normalization=fit_normalization(flat),
                attrs=dict(info.attrs),
                width=cfg.width,
            )
        except ValueError as exc:
            raise StageError(f"--trunk {trunk} on {column} ({info.kind}): {exc}") from None

    def refit_loader() -> ClipLoader:
        return make_loader(
            _train_plus_val(manifest, column), manifest, column, cfg, train=True, **kw
        )

    extra = {
        "stream": column,
        "kind": info.kind,
        "trunk": trunk,
        "input_shape": list(sample_shape),
        "augment": type(augment).__name__ if augment else None,
    }
    return ClassifierPlan(
        manifest, build, train, val, test_loader, refit_loader, extra, folder=column
    )


@distributed
def run_stream(cfg: StreamConfig) -> RunDir:
    """Train a classifier for one sequence stream (``--stream``: a column or a kind) with the
    trunk its kind names (or ``--trunk``), the kind's augmentation and the left-right mirror
    (:func:`plan_stream`).

    The run goes to ``<checkpoints>/<dataset>/<column>/``, where the generator and fusion stages
    look for a stream's classifier."""
    return _run(plan_stream(cfg), cfg)
