"""Stage 2: learn, from paired training data, to synthesise the sensor network's embedding from video.

Three methods (``--method``); every one is trained on the training split and its epochs are chosen
on validation, and the fused model takes only video at test time:

* ``regress`` (the original recipe): a generator head maps the video embedding to ``u'_v`` with
  Huber(u'_v, u_s) + norm matching + cross-entropy of the frozen sensor head applied to ``u'_v``
  (``vsfusion.models.generator``); ``u_s`` comes from the frozen sensor trunk of a finished sensor
  run. Three trunk options:

  - ``shared``: the video classifier's trunk, frozen. Only the generator head is trained, on video
    embeddings computed once per augmented view; at test time one trunk pass feeds both streams.
  - ``finetune``: a copy of the video classifier's trunk (same backbone), trained end to end.
  - ``scratch``: a new trunk (``--backbone``, default the video run's, else I3D; an I3D
    optionally from ``--pretrain`` weights), trained end to end.

* ``privileged``: a video network (its own trunk, ``scratch`` by default, with the video run's
  augmentation, schedule and label smoothing) trained on the labels with an auxiliary generator
  head on its embedding that regresses ``u_s`` as above and matches the sensor head's soft
  predictions at ``--kd_temperature`` (learning using privileged information: the sensor shapes
  the trunk during training only). The generated stream is the frozen sensor head on the
  auxiliary output.
* ``cmc``: a copy of the video trunk (``finetune``; or ``scratch``) is first aligned with ``u_s``
  by cross-modal InfoNCE across the batch (CMC, Tian et al. 2020) plus label cross-entropy; then,
  frozen, it gets a ``regress`` head as with a shared trunk.

With ``--control`` (default) the matching control is trained too, on another seed and without any
sensor target, so the fusion stage can tell the sensor's contribution from a refitted head or an
ensemble: ``video_head_control`` (shared trunk) is a head of the generator's size and budget on the
same frozen embedding views with a softmax layer, trained with plain cross-entropy;
``video_ensemble`` (own trunk) is the same network and training loop with every sensor term off.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import keras
import numpy as np

from vsfusion.config import GeneratorConfig
from vsfusion.data import ClipLoader, DataError, Manifest
from vsfusion.data.modality import modality as modality_spec
from vsfusion.models import (
    SoftTargetCrossentropy,
    Temper,
    build_backbone,
    build_classifier_head,
    build_cmc_model,
    build_control_head,
    build_generated_sensor_model,
    build_generator_head,
    build_generator_training_model,
    build_privileged_model,
    build_source_trunk,
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
    make_optimizer,
    predict_arrays,
    read_run_config,
    resolve_run,
    save_model,
    seed_everything,
)
from vsfusion.stages.distribute import distributed, require_whole_batch

__all__ = [
    "run_generator",
    "paired_rows",
    "check_runs",
    "stream_pair",
    "stream_options",
    "merge_options",
    "TargetLoader",
]

logger = logging.getLogger(__name__)
FEATURE_VIEWS = 4  # augmented views per training clip when the trunk is shared and frozen
# Epoch selection: validation accuracy of the frozen sensor head on generated embeddings, the
# quality of the stream that gets fused. (The total loss mixes scales: the norm term is in squared
# embedding-norm units and would dominate the choice.)
MONITOR = "val_probs_accuracy"
GENERATOR_TRUNK = "generator_trunk"
CONTROL_TRUNK = "control_trunk"
# The class head's validation accuracy: what own-trunk controls and cmc's alignment select on.
CLASS_MONITOR = "val_class_probs_accuracy"
# The controls have one output, which Keras logs without the output's name.
CONTROL_MONITOR = "val_accuracy"
CONTROL_SEED_OFFSET = 1000  # the control's seed is the run's + this
# cmc's head on its aligned, frozen trunk trains on embeddings like a shared trunk's head, with
# the fast preset's generator budget (the method's own budget is the video network's).
CMC_HEAD_BUDGET = {"epoch": 80, "patience": 20, "batch_size": 32, "lr": 1e-3}


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
        raise StageError(
            f"{manifest.name}: split '{split}' has no samples with both video and sensor "
            "recordings, so no generator can be trained; give it paired recordings (or other "
            "--subjects)"
        )
    return rows


class TargetLoader(keras.utils.PyDataset):
    """Wraps a video ``ClipLoader``: its clips, per-sample targets (and extra per-sample inputs).

    Args:
        loader: The video loader (its labels are dropped; pass them in ``targets`` if needed).
        targets: Per-sample arrays, indexed like the loader's samples, keyed by model output.
        inputs: Per-sample arrays fed as extra model inputs beside ``"video"``.
        batch_targets: Outputs whose target is the position in the batch, ``0..B-1`` (InfoNCE).
    """

    def __init__(
        self,
        loader: ClipLoader,
        targets: dict[str, np.ndarray],
        inputs: dict[str, np.ndarray] | None = None,
        batch_targets: tuple[str, ...] = (),
    ):
        super().__init__(workers=loader.workers, use_multiprocessing=False)
        self.loader, self.targets = loader, targets
        self.inputs, self.batch_targets = dict(inputs or {}), tuple(batch_targets)

    def __len__(self) -> int:
        return len(self.loader)

    def __getitem__(self, i: int) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
        x, _ = self.loader[i]
        idx = self.loader.batch_indices(i)
        y = {k: v[idx] for k, v in self.targets.items()}
        y.update({k: np.arange(len(idx), dtype="int64") for k in self.batch_targets})
        return {"video": x["video"], **{k: v[idx] for k, v in self.inputs.items()}}, y

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


# --------------------------------------------------------------------------------------------
# inputs


def check_runs(
    sensor_run: Path, video_run: Path | None, cfg: GeneratorConfig, classes: list[str]
) -> None:
    """A ``StageError`` naming both runs and what differs when they cannot serve one generator:
    another dataset, another class list, or (shared and finetuned trunks) another clip size."""
    sensor_cfg, video_cfg = read_run_config(sensor_run), read_run_config(video_run or sensor_run)
    differs = []
    for what, run_cfg in (("sensor", sensor_cfg), ("video", video_cfg)):
        if run_cfg.get("dataset") and run_cfg.get("dataset") != cfg.dataset:
            differs.append(f"the {what} run is of dataset {run_cfg.get('dataset')}")
    for what, run in (("sensor", sensor_run), ("video", video_run)):
        if run is None:
            continue
        info = (
            json.loads((run / "metrics.json").read_text())
            if (run / "metrics.json").is_file()
            else {}
        )
        if info.get("classes") and list(info["classes"]) != list(classes):
            differs.append(f"the {what} run has {len(info['classes'])} other classes")
    if video_run is not None and cfg.trunk != "scratch":
        for key in ("num_frames", "crop_size"):
            ours = getattr(cfg, key)
            if ours and video_cfg.get(key) and int(ours) != int(video_cfg[key]):
                differs.append(f"--{key} {ours} but the video run's is {video_cfg[key]}")
    if differs:
        raise StageError(
            f"sensor run {sensor_run} and video run {video_run} cannot serve a generator on "
            f"{cfg.dataset}: {'; '.join(differs)}; train both stages on this dataset and clip size"
        )


# --------------------------------------------------------------------------------------------
# training pieces


def _embedding_views(
    trunk: keras.Model, rows: dict[str, Any], manifest: Manifest, cfg: GeneratorConfig, kw: dict
) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings of a frozen trunk: ``FEATURE_VIEWS`` augmented views of every training clip
    (stacked view after view) and one centre view of every validation clip."""
    loader = make_loader(rows["train"], manifest, "video", cfg, train=True, shuffle=False, **kw)
    views = []
    for _ in range(FEATURE_VIEWS):  # a new random crop / temporal jitter per view
        views.append(np.asarray(predict_arrays(trunk, loader)))
        loader.on_epoch_end()
    val = make_loader(rows["val"], manifest, "video", cfg, train=False, **kw)
    return np.concatenate(views), np.asarray(predict_arrays(trunk, val))


def _fit_regress_head(
    views: tuple[np.ndarray, np.ndarray],
    targets: dict[str, dict[str, np.ndarray]],
    sensor_head: keras.Model,
    cfg: GeneratorConfig,
    run: RunDir,
) -> tuple[keras.Model, dict[str, Any]]:
    """The regress generator head on precomputed embeddings of a frozen trunk."""
    x_train, x_val = views
    h_dim, embed_dim = int(x_train.shape[1]), int(targets["train"]["embedding"].shape[1])
    head = build_generator_head(h_dim, embed_dim, hidden=cfg.hidden, dropout=cfg.dropout)
    model = build_generator_training_model(_identity_trunk(h_dim), head, sensor_head)
    _compile(model, cfg)
    y_train = {k: np.concatenate([v] * FEATURE_VIEWS) for k, v in targets["train"].items()}
    selection = fit_with_selection(
        model,
        {"video_embedding": x_train},
        ({"video_embedding": x_val}, targets["val"]),
        cfg,
        run,
        monitor=MONITOR,
        mode="max",
        y=y_train,
        batch_size=cfg.batch_size,
        shuffle=True,
    )
    return head, selection


def _fit_head_control(
    views: tuple[np.ndarray, np.ndarray],
    labels: dict[str, np.ndarray],
    embed_dim: int,
    num_classes: int,
    cfg: GeneratorConfig,
    run: RunDir,
) -> tuple[keras.Model, dict[str, Any]]:
    """``video_head_control``: the generator head's size and budget on the same views, with a
    softmax layer trained by plain cross-entropy, another seed and no sensor."""
    seed_everything(cfg.seed + CONTROL_SEED_OFFSET)
    x_train, x_val = views
    head = build_control_head(
        int(x_train.shape[1]),
        num_classes,
        hidden=cfg.hidden,
        output_dim=embed_dim,
        dropout=cfg.dropout,
    )
    inputs = keras.Input((int(x_train.shape[1]),), name="video_embedding")
    model = keras.Model(inputs, {"probs": head(inputs)["probs"]}, name="control")
    model.compile(
        optimizer=keras.optimizers.Adam(cfg.lr),
        loss={"probs": keras.losses.SparseCategoricalCrossentropy()},
        metrics={"probs": ["accuracy"]},
    )
    selection = fit_with_selection(
        model,
        {"video_embedding": x_train},
        ({"video_embedding": x_val}, {"probs": labels["val"]}),
        cfg,
        run,
        monitor=CONTROL_MONITOR,
        y={"probs": np.concatenate([labels["train"]] * FEATURE_VIEWS)},
        batch_size=cfg.batch_size,
        shuffle=True,
        history_file="history_control.csv",
    )
    return head, selection


def _video_recipe(video_cfg: dict[str, Any]) -> dict[str, Any]:
    """What an own-trunk network takes from the video run's training: augmentation (no flip: the
    watch is on one wrist), schedule, optimizer, label smoothing and the class head's dropout."""
    return {
        "scale_jitter": float(video_cfg.get("scale_jitter") or 0.0),
        "erase_prob": float(video_cfg.get("erase_prob") or 0.0),
        "schedule": video_cfg.get("schedule") or "constant",
        "warmup_epochs": float(video_cfg.get("warmup_epochs") or 0.0),
        "optimizer": video_cfg.get("optimizer") or "adam",
        "label_smoothing": float(video_cfg.get("label_smoothing") or 0.0),
        "dropout": float(video_cfg.get("dropout", 0.5)),
    }


def _optimizer(
    cfg: GeneratorConfig, recipe: dict[str, Any], steps: int
) -> keras.optimizers.Optimizer:
    """The video run's optimizer and schedule at this run's learning rate and epochs."""
    keys = ("schedule", "warmup_epochs", "optimizer")
    return make_optimizer(
        SimpleNamespace(lr=cfg.lr, epoch=cfg.epoch, **{k: recipe[k] for k in keys}), steps
    )


class _OwnTrunk:
    """Builds and trains the video networks of the own-trunk methods and their control, which
    share the trunk's initialisation rule, the loaders' augmentation and the training budget."""

    def __init__(
        self,
        cfg: GeneratorConfig,
        backbone: str,
        clip: tuple[int, int, int, int],
        source: keras.Model | None,
        recipe: dict[str, Any],
        manifest: Manifest,
        rows: dict[str, Any],
        video_kw: dict[str, Any],
    ):
        self.cfg, self.backbone, self.clip, self.source = cfg, backbone, clip, source
        self.recipe, self.manifest, self.rows = recipe, manifest, rows
        self.train_kw = {
            **video_kw,
            "scale_jitter": recipe["scale_jitter"],
            "erase_prob": recipe["erase_prob"],
        }
        self.val_kw = video_kw

    def trunk(self, name: str) -> keras.Model:
        trunk = build_backbone(self.backbone, self.clip, name=name)
        if self.source is not None:  # finetune: a copy of the video classifier's trunk
            trunk.set_weights(self.source.get_weights())
        elif self.cfg.pretrain:
            load_pretrained_trunk(trunk, self.cfg.pretrain)
        return trunk

    def class_head(self, trunk: keras.Model, name: str) -> keras.Model:
        h_dim = int(trunk.outputs[0].shape[-1])
        num_classes = len(self.manifest.classes)
        return build_classifier_head(h_dim, num_classes, self.recipe["dropout"], name=name)

    def loaders(self, targets: dict, **kw: Any) -> tuple[TargetLoader, TargetLoader]:
        """Training (augmented) and validation loaders yielding ``targets[split]``."""
        cfg, m = self.cfg, self.manifest
        train = make_loader(self.rows["train"], m, "video", cfg, train=True, **self.train_kw)
        val = make_loader(self.rows["val"], m, "video", cfg, train=False, **self.val_kw)
        inputs = kw.pop("inputs", {})
        return (
            TargetLoader(train, targets["train"], inputs.get("train"), **kw),
            TargetLoader(val, targets["val"], inputs.get("val"), **kw),
        )

    def fit(
        self,
        model: keras.Model,
        losses: dict[str, Any],
        weights: dict[str, float],
        loaders: tuple[TargetLoader, TargetLoader],
        run: RunDir,
        monitor: str,
        history_file: str = "history.csv",
        report: tuple[str, ...] = (),
    ) -> dict[str, Any]:
        metrics = {k: ["accuracy"] for k in ("probs", "class_probs") if k in losses}
        model.compile(
            optimizer=_optimizer(self.cfg, self.recipe, len(loaders[0])),
            loss=losses,
            loss_weights=weights,
            metrics=metrics,
        )
        return fit_with_selection(
            model,
            *loaders,
            self.cfg,
            run,
            monitor=monitor,
            history_file=history_file,
            report=report,
        )

    def control(
        self, labels: dict[str, np.ndarray], run: RunDir
    ) -> tuple[keras.Model, keras.Model, dict[str, Any]]:
        """``video_ensemble``: the same network and loop on labels alone, another seed."""
        seed_everything(self.cfg.seed + CONTROL_SEED_OFFSET)
        trunk = self.trunk(CONTROL_TRUNK)
        class_head = self.class_head(trunk, "control_class_head")
        model = build_privileged_model(trunk, class_head, name="video_ensemble")
        loss = SoftTargetCrossentropy(self.recipe["label_smoothing"])
        targets = {s: {"class_probs": y} for s, y in labels.items()}
        selection = self.fit(
            model,
            {"class_probs": loss},
            {"class_probs": 1.0},
            self.loaders(targets),
            run,
            CONTROL_MONITOR,
            "history_control.csv",
        )
        h_dim = int(trunk.outputs[0].shape[-1])
        head = build_control_head(h_dim, len(self.manifest.classes), hidden=None)
        head.get_layer("control_probs").set_weights(class_head.get_layer("probs").get_weights())
        return trunk, head, selection


def _control_info(kind: str, cfg: GeneratorConfig, selection: dict[str, Any], monitor: str) -> dict:
    return {
        "kind": kind,
        "seed": cfg.seed + CONTROL_SEED_OFFSET,
        "best_epoch": selection["best_epoch"],
        "val_accuracy": selection.get(monitor),
        "epochs_run": selection["epochs_run"],
    }


@distributed
def run_generator(cfg: GeneratorConfig) -> RunDir:
    """Train the generator (``--method``), and its control unless ``--no-control``; save them with
    the inference model video -> generated sensor stream."""
    if cfg.method in ("privileged", "cmc") and cfg.trunk == "shared":
        raise StageError(
            f"--method {cfg.method} trains a video trunk of its own; use --trunk scratch or finetune"
        )
    if cfg.method == "cmc":
        require_whole_batch("--method cmc")
    seed_everything(cfg.seed)
    manifest = load_manifest(cfg)
    if cfg.sources or cfg.target:
        sources, target = stream_pair(cfg, manifest)
        if (sources, target) != (["video"], "sensor"):
            return _run_cross_stream(cfg, manifest, sources, target)
    sensor_run = resolve_run(cfg.model_path, cfg, "sensor")
    video_run: Path | None = None
    video_cfg: dict[str, Any] = {}
    if cfg.trunk in ("shared", "finetune") or cfg.video_model_path or cfg.method != "regress":
        video_run = resolve_run(cfg.video_model_path, cfg, "video")
        video_cfg = read_run_config(video_run)
    check_runs(sensor_run, video_run, cfg, list(manifest.classes))
    sensor_cfg = read_run_config(sensor_run)
    sensor_trunk, sensor_head = split_classifier(load_model(sensor_run / "best.keras"))
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
    labels = {s: t["probs"] for s, t in targets.items()}
    embed_dim = int(targets["train"]["embedding"].shape[1])
    num_classes = len(manifest.classes)
    video_kw = {
        "num_frames": num_frames,
        "crop_size": crop_size,
        "frame_size": frame_size,
        "flip": False,  # the sensor target belongs to the unmirrored clip
    }
    run = RunDir.create(cfg)
    sensor_head.trainable = False
    control: dict[str, Any] | None = None
    extra: dict[str, Any] = {}

    if cfg.trunk == "shared":
        assert video_run is not None
        trunk, _ = split_classifier(load_model(video_run / "best.keras"))
        trunk.trainable = False
        views = _embedding_views(trunk, rows, manifest, cfg, video_kw)
        head, selection = _fit_regress_head(views, targets, sensor_head, cfg, run)
        if cfg.control:
            c_head, c_sel = _fit_head_control(views, labels, embed_dim, num_classes, cfg, run)
            save_model(c_head, run.path, "control_head")
            control = _control_info("video_head_control", cfg, c_sel, CONTROL_MONITOR)
    else:
        source = None
        if cfg.trunk == "finetune":
            assert video_run is not None
            source, _ = split_classifier(load_model(video_run / "best.keras"))
        probe = make_loader(rows["val"], manifest, "video", cfg, train=False, **video_kw)
        clip = (
            int(num_frames),
            int(crop_size),
            int(crop_size),
            int(probe[0][0]["video"].shape[-1]),
        )
        own = _OwnTrunk(
            cfg, backbone, clip, source, _video_recipe(video_cfg), manifest, rows, video_kw
        )
        # The generator's own trunk gets its own name so it can sit beside the video trunk in
        # the fused model.
        trunk = own.trunk(GENERATOR_TRUNK)
        h_dim = int(trunk.outputs[0].shape[-1])
        head = build_generator_head(h_dim, embed_dim, hidden=cfg.hidden, dropout=cfg.dropout)
        if cfg.method == "regress":
            selection = own.fit(
                build_generator_training_model(trunk, head, sensor_head, train_trunk=True),
                generator_losses(huber_delta=cfg.huber_delta),
                _regress_weights(cfg),
                own.loaders(targets),
                run,
                MONITOR,
            )
        elif cfg.method == "privileged":
            selection, extra = _fit_privileged(own, trunk, head, sensor_head, targets, cfg, run)
        else:
            selection, extra = _fit_cmc(own, trunk, targets, cfg, run)
            trunk.trainable = False
            views = _embedding_views(trunk, rows, manifest, cfg, video_kw)
            head_cfg = dataclasses.replace(cfg, **CMC_HEAD_BUDGET)
            head, selection = _fit_regress_head(views, targets, sensor_head, head_cfg, run)
            extra["head_selection"] = selection
        if cfg.control:
            c_trunk, c_head, c_sel = own.control(labels, run)
            save_model(c_trunk, run.path, CONTROL_TRUNK)
            save_model(c_head, run.path, "control_head")
            control = _control_info("video_ensemble", cfg, c_sel, CONTROL_MONITOR)

    inference = build_generated_sensor_model(trunk, head, sensor_head)
    save_model(head, run.path, "generator_head")
    if cfg.trunk != "shared":
        save_model(trunk, run.path, GENERATOR_TRUNK)
    save_model(inference, run.path)
    val_out = predict_arrays(
        inference, make_loader(rows["val"], manifest, "video", cfg, train=False, **video_kw)
    )
    metrics = {
        "method": cfg.method,
        "trunk": cfg.trunk,
        "backbone": backbone,
        "sensor_run": str(sensor_run.resolve()),
        "video_run": str(video_run.resolve()) if video_run else None,
        "num_frames": int(num_frames),
        "crop_size": int(crop_size),
        "frame_size": frame_size,
        "embed_dim": embed_dim,
        "n_train": len(rows["train"]),
        "n_val": len(rows["val"]),
        **selection,
        **extra,
        "control": control,
        **_validation_quality(val_out, targets["val"]),
    }
    run.finish(metrics)
    logger.info(
        "generator (%s, %s trunk): val accuracy of the generated sensor stream %.3f, cosine to "
        "real %.3f; control %s",
        cfg.method,
        cfg.trunk,
        metrics["val_generated_sensor_accuracy"],
        metrics["val_embedding_cosine"],
        f"{control['kind']} val accuracy {control['val_accuracy']:.3f}" if control else "off",
    )
    return run


def _regress_weights(cfg: GeneratorConfig) -> dict[str, float]:
    return generator_loss_weights(huber=cfg.huber_weight, norm=cfg.norm_weight, ce=cfg.ce_weight)


def _fit_privileged(
    own: _OwnTrunk,
    trunk: keras.Model,
    head: keras.Model,
    sensor_head: keras.Model,
    targets: dict[str, dict[str, np.ndarray]],
    cfg: GeneratorConfig,
    run: RunDir,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Labels for the class head; ``u_s`` (Huber, norm) and the sensor head's tempered
    predictions on ``u_s`` (soft-target cross-entropy, weight ``kd_weight * T^2``) for the
    auxiliary head. Epochs are chosen on the generated stream's validation accuracy."""
    t = cfg.kd_temperature
    class_head = own.class_head(trunk, "class_head")
    model = build_privileged_model(trunk, class_head, head, sensor_head, temperature=t)
    soft = Temper(t)
    full = {}
    for split, tg in targets.items():
        teacher = keras.ops.convert_to_numpy(soft(sensor_head(tg["embedding"], training=False)))
        full[split] = {**tg, "class_probs": tg["probs"], "kd": teacher.astype("float32")}
    losses = {
        **generator_losses(huber_delta=cfg.huber_delta),
        "class_probs": SoftTargetCrossentropy(own.recipe["label_smoothing"]),
        "kd": SoftTargetCrossentropy(),
    }
    weights = {**_regress_weights(cfg), "class_probs": 1.0, "kd": cfg.kd_weight * t * t}
    selection = own.fit(
        model, losses, weights, own.loaders(full), run, MONITOR, report=(CLASS_MONITOR,)
    )
    return selection, {"val_class_accuracy": selection.pop(CLASS_MONITOR)}


def _fit_cmc(
    own: _OwnTrunk,
    trunk: keras.Model,
    targets: dict[str, dict[str, np.ndarray]],
    cfg: GeneratorConfig,
    run: RunDir,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Stage 1 of ``cmc``: align the trunk with ``u_s`` (symmetric InfoNCE over the batch) beside
    label cross-entropy; epochs chosen on the class head's validation accuracy."""
    model = build_cmc_model(
        trunk,
        own.class_head(trunk, "class_head"),
        int(targets["train"]["embedding"].shape[1]),
        proj_dim=cfg.cmc_dim,
        hidden=cfg.hidden,
        temperature=cfg.cmc_temperature,
    )
    nce = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    losses = {
        "class_probs": SoftTargetCrossentropy(own.recipe["label_smoothing"]),
        "cmc_video": nce,
        "cmc_sensor": nce,
    }
    weights = {"class_probs": cfg.cmc_ce_weight, "cmc_video": 0.5, "cmc_sensor": 0.5}
    loaders = own.loaders(
        {s: {"class_probs": t["probs"]} for s, t in targets.items()},
        inputs={s: {"sensor_embedding": t["embedding"]} for s, t in targets.items()},
        batch_targets=("cmc_video", "cmc_sensor"),
    )
    selection = own.fit(
        model, losses, weights, loaders, run, CLASS_MONITOR, "history_alignment.csv"
    )
    return selection, {"alignment": selection}


def _validation_quality(out: dict[str, np.ndarray], val: dict[str, np.ndarray]) -> dict[str, float]:
    """Validation accuracy of the generated stream and mean cosine of its embedding to the real one."""
    return {
        "val_generated_sensor_accuracy": float(
            np.mean(np.argmax(out["probs"], axis=1) == val["probs"])
        ),
        "val_embedding_cosine": float(_mean_cosine(out["embedding"], val["embedding"])),
    }


def _mean_cosine(a: np.ndarray, b: np.ndarray) -> float:
    num = np.sum(a * b, axis=1)
    den = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1) + 1e-12
    return float(np.mean(num / den))


# --------------------------------------------------------------------------------------------
# any streams -> any stream (--from / --to)


def stream_pair(cfg: GeneratorConfig, manifest: Manifest) -> tuple[list[str], str]:
    """The columns of ``--from`` (default ``video``) and ``--to`` (default ``sensor``), each named
    by column or kind; a ``StageError`` lists the streams the dataset has."""

    def column(name: str, flag: str) -> str:
        try:
            return manifest.resolve_stream(name)
        except DataError as exc:
            raise StageError(f"{flag} {name}: {exc}") from None

    names = [n.strip() for n in (cfg.sources or "video").split(",") if n.strip()]
    if not names:
        raise StageError("--from is empty; name the streams available at test time")
    sources = [column(n, "--from") for n in names]
    target = column(cfg.target or "sensor", "--to")
    if len(set(sources)) != len(sources) or target in sources:
        raise StageError(
            f"--from {','.join(sources)} --to {target}: name each stream once, and the target is "
            "not a source"
        )
    return sources, target


def stream_options(column: str, kind: str, run_cfg: dict[str, Any]) -> dict[str, Any]:
    """Loader options that reproduce how a classifier run of ``column`` read its stream at test
    time: clip size for clip kinds, the sequence length otherwise (``sensor_steps`` of a sensor
    run, ``length`` of a ``train_stream.py`` run)."""
    if modality_spec(kind).trunk == "i3d":
        return {
            "num_frames": run_cfg.get("num_frames"),
            "crop_size": run_cfg.get("crop_size"),
            "frame_size": run_cfg.get("frame_size"),
        }
    length = run_cfg.get("length", run_cfg.get("sensor_steps"))
    return {"lengths": {column: length}} if length else {}


def merge_options(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Loader options of several streams as one (their ``lengths`` merged; ``None`` values left
    out)."""
    out: dict[str, Any] = {}
    for part in parts:
        for k, v in part.items():
            if k == "lengths":
                out.setdefault("lengths", {}).update(v)
            elif v is not None:
                out[k] = v
    return out


def _paired(manifest: Manifest, split: str, columns: list[str]) -> Any:
    rows = manifest.split(split)
    for c in columns:
        rows = rows[rows[c].astype(str) != ""]
    if len(rows) == 0:
        raise StageError(
            f"{manifest.name}: split '{split}' has no samples with all of {columns}, so no "
            "generator can be trained; give it paired recordings (or other --subjects)"
        )
    return rows.reset_index(drop=True)


def _stream_runs(
    cfg: GeneratorConfig, manifest: Manifest, columns: list[str], target: str
) -> dict[str, Path]:
    """The classifier run of each stream (``--runs stream=RUN``, else ``--model_path`` for the
    target and ``--video_model_path`` for ``video``, else the stream's newest run), checked to be
    of this dataset's classes."""
    given: dict[str, str] = {}
    for item in (cfg.stream_runs or "").split(","):
        if not item.strip():
            continue
        name, sep, path = item.partition("=")
        if not sep or not path.strip():
            raise StageError(f"--runs {cfg.stream_runs!r}: give stream=RUN pairs, comma-separated")
        try:
            column = manifest.resolve_stream(name.strip())
        except DataError as exc:
            raise StageError(f"--runs {name.strip()}: {exc}") from None
        given[column] = path.strip()
    unused = sorted(set(given) - set(columns))
    if unused:
        raise StageError(f"--runs names {unused}, which are not among {columns}; drop them")
    runs = {}
    for c in columns:
        path = cfg.model_path if c == target else cfg.video_model_path if c == "video" else None
        runs[c] = resolve_run(given.get(c, path), cfg, c)
        classes = json.loads((runs[c] / "metrics.json").read_text()).get("classes")
        dataset = read_run_config(runs[c]).get("dataset")
        if (classes and list(classes) != list(manifest.classes)) or dataset != cfg.dataset:
            raise StageError(
                f"{runs[c]} ({c} run) is of dataset {dataset} with {len(classes or [])} classes, "
                f"not of {cfg.dataset} with {len(manifest.classes)}; train {c} on this dataset"
            )
    return runs


def _run_cross_stream(
    cfg: GeneratorConfig, manifest: Manifest, sources: list[str], target: str
) -> RunDir:
    """``--from A,B --to C``: a regress head on the frozen trunks of the sources' classifier
    runs (embeddings concatenated) learns C's classifier embedding, under C's frozen head; the
    control (``--control``) is a head of the same size and budget on the same embeddings trained
    on the labels alone."""
    if cfg.method != "regress" or cfg.trunk != "shared":
        raise StageError(
            f"--from {','.join(sources)} --to {target}: only --method regress on the frozen "
            f"(--trunk shared) trunks of each stream's classifier; drop --method {cfg.method} / "
            f"--trunk {cfg.trunk}"
        )
    runs = _stream_runs(cfg, manifest, [*sources, target], target)
    streams = manifest.streams
    options = {c: stream_options(c, streams[c].kind, read_run_config(runs[c])) for c in runs}
    target_trunk, target_head = split_classifier(load_model(runs[target] / "best.keras"))
    target_head.trainable = False
    trunks = [split_classifier(load_model(runs[c] / "best.keras"))[0] for c in sources]
    for t in trunks:
        t.trainable = False
    try:
        source_trunk = build_source_trunk(trunks)
    except ValueError as exc:
        raise StageError(f"--from {','.join(sources)}: {exc}") from None
    rows = {s: _paired(manifest, s, [*sources, target]) for s in ("train", "val")}
    targets = {
        s: _targets(
            target_trunk,
            ClipLoader(
                r,
                manifest.classes,
                modalities=(target,),
                streams=streams,
                batch_size=cfg.batch_size,
                workers=cfg.workers,
                **options[target],
            ),
        )
        for s, r in rows.items()
    }
    labels = {s: t["probs"] for s, t in targets.items()}
    source_kw = {**merge_options([options[c] for c in sources]), "flip": False}

    def loader(split: str, train: bool) -> ClipLoader:
        return ClipLoader(
            rows[split],
            manifest.classes,
            modalities=tuple(sources),
            streams=streams,
            batch_size=cfg.batch_size,
            shuffle=False,
            train=train,
            seed=cfg.seed,
            workers=cfg.workers,
            **source_kw,
        )

    run = RunDir.create(cfg)
    train_loader = loader("train", True)
    views = []
    for _ in range(FEATURE_VIEWS):
        views.append(np.asarray(predict_arrays(source_trunk, train_loader)))
        train_loader.on_epoch_end()
    val_loader = loader("val", False)
    embeddings = (np.concatenate(views), np.asarray(predict_arrays(source_trunk, val_loader)))
    head, selection = _fit_regress_head(embeddings, targets, target_head, cfg, run)
    embed_dim = int(targets["train"]["embedding"].shape[1])
    control = None
    if cfg.control:
        c_head, c_sel = _fit_head_control(
            embeddings, labels, embed_dim, len(manifest.classes), cfg, run
        )
        save_model(c_head, run.path, "control_head")
        control = _control_info("head_control", cfg, c_sel, CONTROL_MONITOR)
    inference = build_generated_sensor_model(source_trunk, head, target_head)
    save_model(head, run.path, "generator_head")
    save_model(inference, run.path)
    val_out = predict_arrays(inference, val_loader)
    metrics = {
        "method": cfg.method,
        "trunk": cfg.trunk,
        "sources": sources,
        "target": target,
        "stream_runs": {c: str(p.resolve()) for c, p in runs.items()},
        "stream_options": options,
        "sensor_run": str(runs[target].resolve()),
        "video_run": str(runs["video"].resolve()) if "video" in runs else None,
        "embed_dim": embed_dim,
        "n_train": len(rows["train"]),
        "n_val": len(rows["val"]),
        **selection,
        "control": control,
        **_validation_quality(val_out, targets["val"]),
    }
    run.finish(metrics)
    logger.info(
        "generator %s -> %s: val accuracy of the generated stream %.3f, cosine to real %.3f",
        "+".join(sources),
        target,
        metrics["val_generated_sensor_accuracy"],
        metrics["val_embedding_cosine"],
    )
    return run
