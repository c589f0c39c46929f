"""Stage 1: the single-modality classifiers (a video backbone, I3D by default; InceptionTime on sensors).

Both are trained the same way: fit on the training split, select the epoch on the validation
split, then report validation and test metrics of the selected weights.
"""

from __future__ import annotations

import logging
from typing import Any

import keras
import numpy as np

from vsfusion.config import SensorConfig, StageConfig, VideoConfig
from vsfusion.data import ClipLoader, Manifest
from vsfusion.evaluation.metrics import classification_summary
from vsfusion.models import (
    build_backbone,
    build_inception_time,
    fit_normalization,
    split_classifier,
)
from vsfusion.stages.common import (
    RunDir,
    StageError,
    check_video_trunk,
    fit_with_selection,
    learning_rate,
    load_manifest,
    load_pretrained_trunk,
    predict_arrays,
    require_modality,
    save_model,
    seed_everything,
)

__all__ = ["run_video", "run_sensor", "make_loader", "evaluate_classifier"]

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
    manifest: Manifest, modality: str, cfg: StageConfig, **kw: Any
) -> tuple[ClipLoader, ClipLoader, ClipLoader | None]:
    train_rows = require_modality(manifest, "train", modality)
    val_rows = require_modality(manifest, "val", modality)
    test_all = manifest.split("test")
    test_rows = (
        test_all[test_all[modality].astype(str) != ""] if modality in test_all else test_all[:0]
    )
    train = make_loader(train_rows, manifest, modality, cfg, train=True, **kw)
    val = make_loader(val_rows, manifest, modality, cfg, train=False, **kw)
    test = (
        make_loader(test_rows, manifest, modality, cfg, train=False, **kw)
        if len(test_rows)
        else None
    )
    if test is None:
        logger.warning(
            "test split has no %s recordings: only validation metrics are reported", modality
        )
    return train, val, test


def _train_and_report(
    model: keras.Model,
    loaders: tuple[ClipLoader, ClipLoader, ClipLoader | None],
    manifest: Manifest,
    cfg: StageConfig,
    run: RunDir,
    optimizer: keras.optimizers.Optimizer,
    extra: dict[str, Any],
) -> dict[str, Any]:
    train, val, test = loaders
    model.compile(optimizer=optimizer, loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    selection = fit_with_selection(model, train, val, cfg, run)
    save_model(model, run.path)
    metrics = {
        "classes": manifest.classes,
        "n_train": len(train.labels),
        "n_val": len(val.labels),
        "n_test": len(test.labels) if test is not None else 0,
        **selection,
        **extra,
        "val": evaluate_classifier(model, val, manifest.classes),
        "test": evaluate_classifier(model, test, manifest.classes) if test is not None else None,
    }
    run.finish(metrics)
    test_acc = metrics["test"]["top1"] if metrics["test"] else float("nan")
    logger.info("%s: val top-1 %.3f, test top-1 %.3f", cfg.stage, metrics["val"]["top1"], test_acc)
    return metrics


def run_sensor(cfg: SensorConfig) -> RunDir:
    """Train the InceptionTime sensor classifier; normalisation statistics come from training data only."""
    seed_everything(cfg.seed)
    manifest = load_manifest(cfg)
    loaders = _split_loaders(manifest, "sensor", cfg, sensor_steps=cfg.sensor_steps)
    plain_train = make_loader(
        loaders[0].samples, manifest, "sensor", cfg, train=False, sensor_steps=cfg.sensor_steps
    )
    mean, var = fit_normalization(plain_train[i][0]["sensor"] for i in range(len(plain_train)))
    steps, channels = plain_train[0][0]["sensor"].shape[1:]
    run = RunDir.create(cfg)
    model = build_inception_time(
        (steps, channels),
        num_classes=len(manifest.classes),
        dropout=cfg.dropout,
        depth=cfg.depth,
        filters=cfg.filters,
        normalization=(mean, var),
    )
    _train_and_report(
        model,
        loaders,
        manifest,
        cfg,
        run,
        keras.optimizers.Adam(cfg.lr),
        {"input_shape": [int(steps), int(channels)]},
    )
    return run


def run_video(cfg: VideoConfig) -> RunDir:
    """Train the video classifier (``--backbone``): from scratch, fine-tuned from ``--pretrain``
    (a ``pretrain_video.py`` run of the same backbone, or Kinetics-style I3D weights), or, with
    ``--freeze_trunk``, as a linear probe of the (pretrained) trunk."""
    check_video_trunk(cfg.backbone, cfg.num_frames, cfg.crop_size, cfg.pretrain)
    if cfg.optimizer not in ("adam", "sgd"):  # argparse choices guard the CLI; this guards YAML
        raise StageError(f"unknown optimizer {cfg.optimizer!r}; use adam or sgd")
    seed_everything(cfg.seed)
    manifest = load_manifest(cfg)
    kw = {"num_frames": cfg.num_frames, "crop_size": cfg.crop_size}
    loaders = _split_loaders(manifest, "video", cfg, flip=cfg.flip, **kw)
    channels = int(loaders[1][0][0]["video"].shape[-1])
    run = RunDir.create(cfg)
    input_shape = (cfg.num_frames, cfg.crop_size, cfg.crop_size, channels)
    model = build_backbone(
        cfg.backbone, input_shape, num_classes=len(manifest.classes), dropout=cfg.dropout
    )
    pretrained: dict[str, Any] = {"pretrain": None, "pretrained_layers": 0}
    if cfg.pretrain:
        pretrained = load_pretrained_trunk(model, cfg.pretrain)
        logger.info("loaded %d layers from %s", pretrained["pretrained_layers"], cfg.pretrain)
    if cfg.freeze_trunk:
        if not cfg.pretrain:
            logger.warning("--freeze_trunk without --pretrain: a linear probe of random features")
        trunk, _ = split_classifier(model)
        trunk.trainable = False  # Keras 3: BatchNorm of a frozen trunk runs in inference mode
    lr = learning_rate(cfg, steps_per_epoch=len(loaders[0]))
    if cfg.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(lr, momentum=0.9, nesterov=True)
    else:
        optimizer = keras.optimizers.Adam(lr)
    _train_and_report(
        model,
        loaders,
        manifest,
        cfg,
        run,
        optimizer,
        {
            "backbone": cfg.backbone,
            "input_shape": list(input_shape),
            "freeze_trunk": cfg.freeze_trunk,
            **pretrained,
        },
    )
    return run
