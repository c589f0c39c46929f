"""Stage 3: late fusion of the video stream with the self-learned (generated) sensor stream.

Only video is needed on the test split. Every choice that could be tuned is made on the validation
split: the weight of the weighted rule, the early stopping of the learned fusion MLP (trained on the
training split's embeddings), and which fusion rule is "best" for the McNemar test against
video-only. When the test split also has real sensors, the sensor-only stream and the real-sensor
("oracle") fusion, weighted with its own validation-chosen weight, are reported as well.

With a shared trunk the deployable ``fused.keras`` costs one video-trunk pass for both streams.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vsfusion.config import FusionConfig
from vsfusion.data import Manifest
from vsfusion.evaluation.metrics import (
    classification_summary,
    confusion,
    mcnemar_exact,
    per_class_report,
)
from vsfusion.evaluation.report import (
    build_results,
    plot_confusion,
    write_per_class_report,
    write_results,
)
from vsfusion.fusion import FUSION_RULES, choose_fusion_weight, fit_fusion_mlp, fuse_weighted
from vsfusion.models import call_on_inputs, model_inputs_like, split_classifier
from vsfusion.stages.classifiers import make_loader
from vsfusion.stages.common import (
    RunDir,
    StageError,
    load_manifest,
    load_model,
    predict_arrays,
    read_run_config,
    require_modality,
    resolve_run,
    save_model,
    seed_everything,
)

__all__ = ["run_fusion", "build_fused_model"]

logger = logging.getLogger(__name__)


def build_fused_model(
    video_classifier: keras.Model,
    generator_head: keras.Model,
    sensor_head: keras.Model,
    generator_trunk: keras.Model | None = None,
) -> keras.Model:
    """Video in; video probabilities, video embedding, generated embedding and its probabilities out.

    Args:
        video_classifier: the trained video classifier (trunk + head, any backbone).
        generator_head: maps a video embedding to a synthetic sensor embedding.
        sensor_head: the trained (frozen) sensor classifier head.
        generator_trunk: the generator's own trunk; None when it shares the video trunk, in which
            case one trunk pass feeds both streams.
    """
    video_trunk, video_head = split_classifier(video_classifier)
    inputs = model_inputs_like(video_trunk)
    h_v = call_on_inputs(video_trunk, inputs)
    h_g = h_v if generator_trunk is None else call_on_inputs(generator_trunk, inputs)
    u_g = generator_head(h_g)
    outputs = {
        "video_probs": video_head(h_v),
        "video_embedding": h_v,
        "generated_embedding": u_g,
        "generated_probs": sensor_head(u_g),
    }
    return keras.Model(inputs, outputs, name="fused")


def _video_streams(
    fused: keras.Model, rows: Any, manifest: Manifest, cfg: FusionConfig, video_kw: dict[str, Any]
) -> dict[str, np.ndarray]:
    loader = make_loader(rows, manifest, "video", cfg, train=False, **video_kw)
    out = dict(predict_arrays(fused, loader))
    out["labels"] = np.asarray(loader.labels)
    return out


def _has_all(rows: Any, modality: str) -> bool:
    return (
        modality in rows.columns
        and bool((rows[modality].astype(str) != "").all())
        and len(rows) > 0
    )


def run_fusion(cfg: FusionConfig) -> RunDir:
    """Evaluate every fusion rule on the test split, selecting everything on validation."""
    seed_everything(cfg.seed)
    manifest = load_manifest(cfg)
    gen_run = resolve_run(cfg.model_path, cfg, "generator")
    gen_info = json.loads((gen_run / "metrics.json").read_text())
    sensor_run = Path(gen_info["sensor_run"])
    video_run = Path(gen_info["video_run"]) if gen_info.get("video_run") else None
    if video_run is None:
        raise StageError(
            f"{gen_run} was trained without a video run; fusion needs the video classifier"
        )
    sensor_model = load_model(sensor_run / "best.keras")
    _, sensor_head = split_classifier(sensor_model)
    generator_trunk = (
        None if gen_info["trunk"] == "shared" else load_model(gen_run / "generator_trunk.keras")
    )
    fused = build_fused_model(
        load_model(video_run / "best.keras"),
        load_model(gen_run / "generator_head.keras"),
        sensor_head,
        generator_trunk,
    )
    sensor_steps = read_run_config(sensor_run).get("sensor_steps")
    video_kw = {
        "num_frames": gen_info["num_frames"],
        "crop_size": gen_info["crop_size"],
        "frame_size": gen_info.get("frame_size"),
    }

    train_rows = require_modality(manifest, "train", "video")
    val_rows = require_modality(manifest, "val", "video")
    test_rows = require_modality(manifest, "test", "video")
    val_has_sensor = _has_all(val_rows, "sensor")
    test_has_sensor = _has_all(test_rows, "sensor") and val_has_sensor
    run = RunDir.create(cfg)
    save_model(fused, run.path, "fused")

    def streams(rows: Any, with_sensor: bool) -> dict[str, np.ndarray]:
        s = _video_streams(fused, rows, manifest, cfg, video_kw)
        if with_sensor:
            s["sensor_probs"] = _sensor_probs(sensor_model, rows, manifest, cfg, sensor_steps)
        return s

    tr = streams(train_rows, False)
    va = streams(val_rows, val_has_sensor)
    te = streams(test_rows, test_has_sensor)

    # --- every choice below looks at validation (or training) data only ---
    weight = choose_fusion_weight(va["video_probs"], va["generated_probs"], va["labels"])
    mlp = fit_fusion_mlp(
        {"video_embedding": tr["video_embedding"], "sensor_embedding": tr["generated_embedding"]},
        tr["labels"],
        {"video_embedding": va["video_embedding"], "sensor_embedding": va["generated_embedding"]},
        va["labels"],
        num_classes=len(manifest.classes),
        hidden=cfg.mlp_hidden,
        epochs=cfg.mlp_epochs,
        seed=cfg.seed,
    )
    save_model(mlp, run.path, "fusion_mlp")

    def fused_probs(s: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        p_v, p_g = s["video_probs"], s["generated_probs"]
        out = {"video": p_v, "generated_sensor": p_g}
        for rule, fn in FUSION_RULES.items():
            out[f"fusion_{rule}"] = fn(p_v, p_g)
        out["fusion_weighted"] = fuse_weighted(p_v, p_g, weight)
        feats = {
            "video_embedding": s["video_embedding"],
            "sensor_embedding": s["generated_embedding"],
        }
        out["fusion_learned"] = keras.ops.convert_to_numpy(mlp(feats, training=False))
        return out

    val_probs, test_probs = fused_probs(va), fused_probs(te)
    oracle_weight = None
    if test_has_sensor:
        oracle_weight = choose_fusion_weight(va["video_probs"], va["sensor_probs"], va["labels"])
        test_probs["sensor"] = te["sensor_probs"]
        test_probs["oracle_fusion"] = fuse_weighted(
            te["video_probs"], te["sensor_probs"], oracle_weight
        )
        val_probs["oracle_fusion"] = fuse_weighted(
            va["video_probs"], va["sensor_probs"], oracle_weight
        )

    fusion_keys = [k for k in val_probs if k.startswith("fusion_")]
    val_acc = {k: float(np.mean(np.argmax(val_probs[k], 1) == va["labels"])) for k in fusion_keys}
    best = max(fusion_keys, key=lambda k: (val_acc[k], -fusion_keys.index(k)))

    # --- test evaluation (reporting only) ---
    classes, y_test = manifest.classes, te["labels"]
    summaries = {k: classification_summary(y_test, p, classes) for k, p in test_probs.items()}
    preds = {k: np.argmax(p, axis=1) for k, p in test_probs.items()}
    mc = mcnemar_exact(y_test, preds[best], preds["video"])
    for key in ("video", best):
        write_per_class_report(
            per_class_report(y_test, preds[key], classes), run.path / f"per_class_{key}.csv"
        )
        cm = confusion(y_test, preds[key], len(classes))
        plot_confusion(
            cm, classes, run.path / f"confusion_{key}.png", title=f"{manifest.name}: {key}"
        )
    results = build_results(
        dataset=manifest.name,
        n_train=len(train_rows),
        n_val=len(val_rows),
        n_test=len(test_rows),
        seed=cfg.seed,
        accuracy={k: s["top1"] for k, s in summaries.items()},
        macro_f1={k: s["macro_f1"] for k, s in summaries.items()},
        mcnemar_p=mc["p_value"],
        extra={
            "top5": {k: s["top5"] for k, s in summaries.items()},
            "best_fusion": best,
            "best_fusion_selected_on": "validation accuracy",
            "val_accuracy": val_acc,
            "fusion_weight": weight,
            "oracle_fusion_weight": oracle_weight,
            "mcnemar": mc,
            "mcnemar_pair": [best, "video"],
            "generator_trunk": gen_info["trunk"],
        },
    )
    write_results(run.path, results)
    if cfg.out:
        write_results(cfg.out, results)
    run.finish({"results": results, "generator_run": str(gen_run.resolve())})
    logger.info(
        "test accuracy: video %.3f, generated sensor %.3f, best fusion (%s) %.3f, McNemar p = %.3g",
        results["accuracy"]["video"],
        results["accuracy"]["generated_sensor"],
        best,
        results["accuracy"][best],
        mc["p_value"],
    )
    return run


def _sensor_probs(
    sensor_model: keras.Model,
    rows: Any,
    manifest: Manifest,
    cfg: FusionConfig,
    sensor_steps: int | None,
) -> np.ndarray:
    loader = make_loader(rows, manifest, "sensor", cfg, train=False, sensor_steps=sensor_steps)
    return np.asarray(predict_arrays(sensor_model, loader))
