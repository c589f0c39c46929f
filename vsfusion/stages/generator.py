"""Stage 2: learn, from paired training data, to synthesise the sensor network's embedding from video.

The objective (``vsfusion.models.generator``) is Huber(u'_v, u_s) + norm matching + cross-entropy of the
frozen sensor head applied to u'_v. The real embeddings u_s come from the frozen sensor trunk of a
finished sensor run. Three trunk options:

* ``shared``: the video classifier's trunk, frozen. Only the generator head is trained, on video
  embeddings computed once per augmented view; at test time one trunk pass feeds both streams.
* ``finetune``: a copy of the video classifier's trunk (same backbone), trained end to end with
  the head.
* ``scratch``: a new trunk (``--backbone``, default the video run's, else I3D; an I3D optionally
  from ``--pretrain`` weights), trained end to end.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vsfusion.config import GeneratorConfig
from vsfusion.data import ClipLoader, Manifest
from vsfusion.models import (
    build_backbone,
    build_generated_sensor_model,
    build_generator_head,
    build_generator_training_model,
    generator_loss_weights,
    generator_losses,
    split_classifier,
)
from vsfusion.stages.classifiers import make_loader
from vsfusion.stages.common import (
    RunDir,
    StageError,
    check_video_trunk,
    fit_with_selection,
    load_manifest,
    load_model,
    load_pretrained_trunk,
    predict_arrays,
    read_run_config,
    resolve_run,
    save_model,
    seed_everything,
)

__all__ = ["run_generator", "paired_rows", "TargetLoader"]

logger = logging.getLogger(__name__)
FEATURE_VIEWS = 4  # augmented views per training clip when the trunk is shared and frozen
# Epoch selection: validation accuracy of the frozen sensor head on generated embeddings, the
# quality of the stream that gets fused. (The total loss mixes scales: the norm term is in squared
# embedding-norm units and would dominate the choice.)
MONITOR = "val_probs_accuracy"
GENERATOR_TRUNK = "generator_trunk"


def paired_rows(manifest: Manifest, split: str) -> Any:
    """Rows of ``split`` that have both video and sensor (what the generator learns from)."""
    rows = manifest.split(split)
    for modality in ("video", "sensor"):
        if modality not in rows.columns:
            raise StageError(
                f"{manifest.name} has no {modality} modality; the generator needs paired data"
            )
        rows = rows[rows[modality].astype(str) != ""]
    if len(rows) == 0:
        raise StageError(f"{manifest.name}: split '{split}' has no paired video+sensor samples")
    return rows


class TargetLoader(keras.utils.PyDataset):
    """Wraps a video ``ClipLoader`` and replaces its labels by per-sample generator targets."""

    def __init__(self, loader: ClipLoader, targets: dict[str, np.ndarray]):
        super().__init__(workers=loader.workers, use_multiprocessing=False)
        self.loader, self.targets = loader, targets

    def __len__(self) -> int:
        return len(self.loader)

    def __getitem__(self, i: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        x, _ = self.loader[i]
        idx = self.loader.batch_indices(i)
        return {"video": x["video"]}, {k: v[idx] for k, v in self.targets.items()}

    def on_epoch_end(self) -> None:
        self.loader.on_epoch_end()


def _targets(sensor_trunk: keras.Model, loader: ClipLoader) -> dict[str, np.ndarray]:
    u = np.asarray(predict_arrays(sensor_trunk, loader), dtype="float32")
    return {
        "embedding": u,
        "norm": np.linalg.norm(u, axis=1, keepdims=True).astype("float32"),
        "probs": np.asarray(loader.labels, dtype="int64"),
    }


def _compile(model: keras.Model, cfg: GeneratorConfig) -> None:
    """The generator objective with the configured weights, and the metric epochs are selected on."""
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.lr),
        loss=generator_losses(huber_delta=cfg.huber_delta),
        loss_weights=generator_loss_weights(
            huber=cfg.huber_weight, norm=cfg.norm_weight, ce=cfg.ce_weight
        ),
        metrics={"probs": ["accuracy"]},
    )


def _identity_trunk(dim: int) -> keras.Model:
    inp = keras.Input((dim,), name="video_embedding")
    return keras.Model(inp, keras.layers.Identity(name="embedding")(inp), name="precomputed_trunk")


def run_generator(cfg: GeneratorConfig) -> RunDir:
    """Train the generator and save it with the inference model video -> generated sensor stream."""
    seed_everything(cfg.seed)
    manifest = load_manifest(cfg)
    sensor_run = resolve_run(cfg.model_path, cfg, "sensor")
    sensor_cfg = read_run_config(sensor_run)
    sensor_trunk, sensor_head = split_classifier(load_model(sensor_run / "best.keras"))
    video_run: Path | None = None
    video_cfg: dict[str, Any] = {}
    if cfg.trunk in ("shared", "finetune") or cfg.video_model_path:
        video_run = resolve_run(cfg.video_model_path, cfg, "video")
        video_cfg = read_run_config(video_run)
    num_frames = cfg.num_frames or video_cfg.get("num_frames")
    crop_size = cfg.crop_size or video_cfg.get("crop_size")
    if not num_frames or not crop_size:
        raise StageError("--trunk scratch without a video run needs --num_frames and --crop_size")
    video_backbone = video_cfg.get("backbone", "i3d")  # runs from before --backbone used I3D
    backbone = cfg.backbone or video_backbone
    if cfg.trunk != "scratch" and cfg.backbone and cfg.backbone != video_backbone:
        raise StageError(
            f"--trunk {cfg.trunk} uses the video run's {video_backbone} trunk; "
            f"drop --backbone {cfg.backbone} or use --trunk scratch"
        )
    check_video_trunk(backbone, num_frames, crop_size, cfg.pretrain)
    frame_size = video_cfg.get("frame_size")
    if video_cfg and (video_cfg.get("video_crop") or "centre") != (cfg.video_crop or "centre"):
        raise StageError(
            f"the video run {video_run} was trained on --video_crop {video_cfg.get('video_crop')}; "
            f"pass the same --video_crop (got {cfg.video_crop})"
        )

    rows = {s: paired_rows(manifest, s) for s in ("train", "val")}
    sensor_kw = {"sensor_steps": sensor_cfg.get("sensor_steps")}
    targets = {
        s: _targets(sensor_trunk, make_loader(r, manifest, "sensor", cfg, train=False, **sensor_kw))
        for s, r in rows.items()
    }
    embed_dim = targets["train"]["embedding"].shape[1]
    video_kw = {
        "num_frames": num_frames,
        "crop_size": crop_size,
        "frame_size": frame_size,
        "flip": False,
    }
    run = RunDir.create(cfg)
    sensor_head.trainable = False

    if cfg.trunk == "shared":
        assert video_run is not None
        video_trunk, _ = split_classifier(load_model(video_run / "best.keras"))
        video_trunk.trainable = False
        h_dim = int(video_trunk.outputs[0].shape[-1])
        head = build_generator_head(h_dim, embed_dim, hidden=cfg.hidden, dropout=cfg.dropout)
        model = build_generator_training_model(_identity_trunk(h_dim), head, sensor_head)
        # Frozen trunk: compute video embeddings once per augmented view, train the head on arrays.
        train_loader = make_loader(
            rows["train"], manifest, "video", cfg, train=True, shuffle=False, **video_kw
        )
        views = []
        for _ in range(FEATURE_VIEWS):  # a new random crop / temporal jitter per view
            views.append(np.asarray(predict_arrays(video_trunk, train_loader)))
            train_loader.on_epoch_end()
        x_train = {"video_embedding": np.concatenate(views)}
        y_train = {k: np.concatenate([v] * FEATURE_VIEWS) for k, v in targets["train"].items()}
        val_loader = make_loader(rows["val"], manifest, "video", cfg, train=False, **video_kw)
        x_val = {"video_embedding": np.asarray(predict_arrays(video_trunk, val_loader))}
        _compile(model, cfg)
        selection = fit_with_selection(
            model,
            x_train,
            (x_val, targets["val"]),
            cfg,
            run,
            monitor=MONITOR,
            mode="max",
            y=y_train,
            batch_size=cfg.batch_size,
            shuffle=True,
        )
        trunk_for_inference = video_trunk
    else:
        # The generator's own I3D gets its own name so it can sit beside the video trunk in the
        # fused model.
        if cfg.trunk == "finetune":
            assert video_run is not None
            source, _ = split_classifier(load_model(video_run / "best.keras"))
            trunk = build_backbone(
                backbone, tuple(source.inputs[0].shape[1:]), name=GENERATOR_TRUNK
            )
            trunk.set_weights(source.get_weights())
        else:
            probe = make_loader(rows["val"], manifest, "video", cfg, train=False, **video_kw)
            channels = int(probe[0][0]["video"].shape[-1])
            trunk = build_backbone(
                backbone, (num_frames, crop_size, crop_size, channels), name=GENERATOR_TRUNK
            )
            if cfg.pretrain:
                load_pretrained_trunk(trunk, cfg.pretrain)
        h_dim = int(trunk.outputs[0].shape[-1])
        head = build_generator_head(h_dim, embed_dim, hidden=cfg.hidden, dropout=cfg.dropout)
        model = build_generator_training_model(trunk, head, sensor_head, train_trunk=True)
        _compile(model, cfg)
        train = TargetLoader(
            make_loader(rows["train"], manifest, "video", cfg, train=True, **video_kw),
            targets["train"],
        )
        val = TargetLoader(
            make_loader(rows["val"], manifest, "video", cfg, train=False, **video_kw),
            targets["val"],
        )
        selection = fit_with_selection(model, train, val, cfg, run, monitor=MONITOR, mode="max")
        trunk_for_inference = trunk

    inference = build_generated_sensor_model(trunk_for_inference, head, sensor_head)
    save_model(head, run.path, "generator_head")
    if cfg.trunk != "shared":
        save_model(trunk_for_inference, run.path, "generator_trunk")
    save_model(inference, run.path)
    val_out = predict_arrays(
        inference, make_loader(rows["val"], manifest, "video", cfg, train=False, **video_kw)
    )
    real = targets["val"]["embedding"]
    metrics = {
        "trunk": cfg.trunk,
        "backbone": backbone,
        "sensor_run": str(sensor_run.resolve()),
        "video_run": str(video_run.resolve()) if video_run else None,
        "num_frames": int(num_frames),
        "crop_size": int(crop_size),
        "frame_size": frame_size,
        "embed_dim": int(embed_dim),
        "n_train": len(rows["train"]),
        "n_val": len(rows["val"]),
        **selection,
        "val_generated_sensor_accuracy": float(
            np.mean(np.argmax(val_out["probs"], axis=1) == targets["val"]["probs"])
        ),
        "val_embedding_cosine": float(_mean_cosine(val_out["embedding"], real)),
    }
    run.finish(metrics)
    logger.info(
        "generator: val accuracy of the generated sensor stream %.3f, cosine to real %.3f",
        metrics["val_generated_sensor_accuracy"],
        metrics["val_embedding_cosine"],
    )
    return run


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12
    return float(np.mean(num / den))
