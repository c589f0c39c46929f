"""Stage 0 (optional): self-supervised pretraining of the video trunk by momentum contrast.

Two augmented views of each training video (different temporal windows, crops, flips and
intensities; :class:`vsfusion.data.views.ViewPairLoader`) are pulled together and pushed away from
the other videos' views by :class:`vsfusion.models.contrastive.MomentumContrast` (MoCo v2/v3 with
the temporal views of VideoMoCo). Labels are never used.

Which videos: the training split only by default. ``--include_val`` adds the validation split
(subjects carved from the training subjects, never test subjects); ``--transductive`` adds the
test split's videos, unlabeled, and is logged as a warning and recorded in ``metrics.json``
(``transductive: true``). The ids used are listed in ``pretrain_ids.txt`` (``split,id`` lines)
and counted per split in ``metrics.json`` (``videos_per_split``).

The run directory holds ``trunk.keras`` / ``trunk.weights.h5`` (the query trunk, no optimizer
state), ``history.csv`` (loss per epoch) with its ``curves.png``, ``tensorboard/`` (unless
``--no-tensorboard``) and the usual ``config.yaml``, ``run.json`` and ``metrics.json``; ``train_video.py --pretrain <run>`` loads the trunk by layer name.

Example:
    >>> from vsfusion.config import PretrainConfig
    >>> run = run_pretrain(PretrainConfig(dataset="demo", epoch=1))  # doctest: +SKIP
    >>> (run.final / "trunk.keras").is_file()  # doctest: +SKIP
    True
"""

from __future__ import annotations

import logging
import time
from typing import Any

import keras
import pandas as pd

from vsfusion.config import PretrainConfig
from vsfusion.data import DataError, Manifest
from vsfusion.data.io import atomic_write_text
from vsfusion.data.views import ViewPairLoader
from vsfusion.models import build_backbone
from vsfusion.models.contrastive import MomentumContrast
from vsfusion.stages.common import (
    RunDir,
    StageError,
    _loader_error,
    check_video_trunk,
    learning_rate,
    load_manifest,
    require_modality,
    save_model,
    seed_everything,
    tracking_callbacks,
    write_history,
)
from vsfusion.stages.distribute import distributed, fit_data, require_whole_batch
from vsfusion.stages.resume import resumable_fit

__all__ = ["run_pretrain", "pretrain_rows", "PRETRAIN_SPLITS"]

logger = logging.getLogger(__name__)

PRETRAIN_SPLITS = ("train", "val", "test")


def pretrain_rows(manifest: Manifest, cfg: PretrainConfig) -> tuple[pd.DataFrame, dict[str, int]]:
    """The manifest rows pretraining may read, and how many videos come from each split.

    The training split always; the validation split with ``cfg.include_val``; the test split only
    with ``cfg.transductive``. Rows without a video are skipped.

    Example:
        >>> rows, counts = pretrain_rows(manifest, PretrainConfig())  # doctest: +SKIP
        >>> counts  # doctest: +SKIP
        {'train': 215, 'val': 0, 'test': 0}
    """
    use = {"train": True, "val": cfg.include_val, "test": cfg.transductive}
    parts, counts = [], {}
    for split in PRETRAIN_SPLITS:
        if not use[split]:
            counts[split] = 0
            continue
        if split == "train":
            rows = require_modality(manifest, "train", "video")
        else:
            rows = manifest.split(split)
            if "video" in rows.columns:
                rows = rows[rows["video"].fillna("").astype(str) != ""]
            else:
                rows = rows[:0]
        rows = rows.assign(split=split)
        counts[split] = len(rows)
        parts.append(rows)
    return pd.concat(parts, ignore_index=True), counts


class _EpochTimer(keras.callbacks.Callback):
    def __init__(self) -> None:
        super().__init__()
        self.seconds: list[float] = []
        self.losses: list[float] = []

    def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self._t = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
        self.seconds.append(round(time.perf_counter() - self._t, 2))
        self.losses.append(float((logs or {}).get("loss", float("nan"))))

    def resume_state(self) -> dict[str, Any]:
        return {"seconds": self.seconds, "losses": self.losses}

    def restore_state(self, state: dict[str, Any], weights: Any = None) -> None:
        self.seconds, self.losses = list(state["seconds"]), list(state["losses"])


def _check(cfg: PretrainConfig) -> None:
    check_video_trunk(cfg.backbone, cfg.num_frames, cfg.crop_size)
    require_whole_batch("pretraining (momentum contrast)")
    if cfg.batch_size < 2:
        raise StageError(f"--batch_size {cfg.batch_size}: contrastive pretraining needs at least 2")
    if cfg.temperature <= 0:
        raise StageError(f"--temperature {cfg.temperature} must be positive")
    if not 0.0 <= cfg.momentum < 1.0:
        raise StageError(f"--momentum {cfg.momentum} must be in [0, 1)")
    if cfg.queue_size < 0:
        raise StageError(f"--queue_size {cfg.queue_size} must be 0 (off) or positive")
    if not 0.0 < cfg.min_window <= 1.0 or not 0.0 < cfg.min_scale <= 1.0:
        raise StageError("--min_window and --min_scale must be in (0, 1]")


@distributed
def run_pretrain(cfg: PretrainConfig) -> RunDir:
    """Pretrain the ``--backbone`` trunk on unlabeled videos and write a run directory.

    Args:
        cfg: The stage configuration.

    Returns:
        The finished run (``run.final`` is its folder).

    Raises:
        StageError: Bad options, before any run directory exists.
        DataError: Unreadable videos (the run directory is removed by the CLI).
    """
    _check(cfg)
    seed_everything(cfg.seed)
    manifest = load_manifest(cfg)
    rows, counts = pretrain_rows(manifest, cfg)
    if cfg.transductive:
        logger.warning(
            "TRANSDUCTIVE pretraining: %d unlabeled TEST videos are used; recorded in metrics.json",
            counts["test"],
        )
    loader = ViewPairLoader(
        rows,
        manifest.classes,
        batch_size=cfg.batch_size,
        seed=cfg.seed,
        num_frames=cfg.num_frames,
        crop_size=cfg.crop_size,
        min_window=cfg.min_window,
        min_scale=cfg.min_scale,
        workers=cfg.workers,
    )
    channels = int(loader[0]["view1"].shape[-1])
    input_shape = (cfg.num_frames, cfg.crop_size, cfg.crop_size, channels)
    run = RunDir.create(cfg)
    ids = "".join(f"{s},{i}\n" for s, i in zip(rows["split"], rows["id"], strict=True))
    atomic_write_text(run.path / "pretrain_ids.txt", "split,id\n" + ids)
    query = build_backbone(cfg.backbone, input_shape, name=cfg.backbone)
    key = build_backbone(cfg.backbone, input_shape, name=f"{cfg.backbone}_key")
    model = MomentumContrast(
        query,
        key,
        proj_dim=cfg.proj_dim,
        proj_hidden=cfg.proj_hidden,
        temperature=cfg.temperature,
        momentum=cfg.momentum,
        queue_size=cfg.queue_size,
        predictor=cfg.predictor,
    )
    model.calibrate_batchnorm(loader[0])
    lr = learning_rate(cfg, steps_per_epoch=len(loader))
    model.compile(optimizer=keras.optimizers.AdamW(lr, weight_decay=cfg.weight_decay))
    timer = _EpochTimer()

    def fit(extra: list[keras.callbacks.Callback]) -> Any:
        return model.fit(
            fit_data(loader)[0],
            epochs=cfg.epoch,
            callbacks=[timer, *tracking_callbacks(cfg, run), *extra],
            verbose=cfg.verbose,
        )

    try:  # backed up after every epoch; a resumed run continues after the last backup
        resumable_fit(model, run, "history.csv", fit, data=(loader,), state={"timer": timer})
    except Exception:
        error = _loader_error(loader)
        if isinstance(error, DataError):
            raise error from None
        raise
    rows = [
        {"epoch": e + 1, "loss": loss, "seconds": s}
        for e, (loss, s) in enumerate(zip(timer.losses, timer.seconds, strict=True))
    ]
    write_history(run, "history.csv", rows)  # the last epoch's trunk is kept
    save_model(query, run.path, stem="trunk")
    metrics: dict[str, Any] = {
        "backbone": cfg.backbone,
        "input_shape": list(input_shape),
        "transductive": cfg.transductive,
        "include_val": cfg.include_val,
        "splits_used": [s for s in PRETRAIN_SPLITS if counts[s]],
        "videos_per_split": counts,
        "n_videos": int(len(rows)),
        "steps_per_epoch": len(loader),
        "loss": timer.losses,
        "epoch_seconds": timer.seconds,
        "trunk": "trunk.keras",
    }
    run.finish(metrics)
    logger.info(
        "pretrain: loss %.4f -> %.4f over %d epochs on %s videos",
        timer.losses[0],
        timer.losses[-1],
        len(timer.losses),
        counts,
    )
    return run
