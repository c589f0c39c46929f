"""Stage 3: late fusion of the video stream with the self-learned (generated) sensor stream.

Only video is needed on the test split. Nothing is chosen on the test split: every fusion rule's
parameter (the weighted rule's weight, the learned MLP's epochs) and which rule is "best" are
chosen by :func:`vsfusion.fusion.select_fusion` on a pool of predictions that no stream was fitted
on. With ``--oof`` (generator runs that held one group of the training subjects out as their test
split; ``reproduce.py`` makes them with ``--oof_folds``) the pool is their out-of-fold predictions
on the training subjects pooled with the validation split; without, the validation split alone.

Every results table carries the control that matches the generator:

* ``video_head_control`` (shared trunk): a head of the generator's size trained with plain
  cross-entropy on the same frozen video embedding, no sensor;
* ``video_ensemble`` (the generator has its own trunk): a second video network of the same
  architecture and budget, another seed, no sensor.

The control is reported alone and fused with ``video`` by the same selection
(``*_fusion``), and the best fusion is compared (exact McNemar) with ``video`` and with the
control's fusion. When the test split has real sensors, ``sensor`` and ``oracle_fusion`` (video +
real sensor, selected the same way) complete the missing-modality matrix.

``fused.keras`` returns the streams (video in; video and generated-sensor probabilities and
embeddings out); ``deploy.keras`` is the whole predictor: video in, the fused class probabilities
of the chosen rule out, with the rule and its weights (or the learned MLP and its
standardisation) inside the graph (:func:`vsfusion.fusion.build_fused_predictor`). With a shared
trunk both cost one video-trunk pass for both streams. When the validation pool has sensor
recordings, ``deploy_sensor.keras`` is the same for a deployment that has the sensor: video and
real sensor in, their fusion chosen on the pool (the ``oracle_fusion`` row) out.
``predictor.json`` names the class list, each deployable model's inputs and how the cache read
and the loader transformed each input (:mod:`vsfusion.inference`, ``predict.py``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

import keras
import numpy as np

from vsfusion.config import FusionConfig
from vsfusion.data import Manifest
from vsfusion.data.io import atomic_save_npz, atomic_write_text
from vsfusion.data.splits import parse_subject_splits
from vsfusion.evaluation.metrics import (
    classification_summary,
    confusion,
    mcnemar_exact,
    per_class_report,
)
from vsfusion.evaluation.report import (
    build_results,
    plot_confusion,
    plot_embedding_tsne,
    plot_per_class_delta,
    write_per_class_report,
    write_results,
)
from vsfusion.fusion import (
    RULE_ORDER,
    SENSOR_INPUT,
    VIDEO_INPUT,
    FusionSelection,
    apply_fusion,
    build_fused_predictor,
    select_fusion,
)
from vsfusion.inference import PREDICTOR_NAME, predictor_info
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
    rows_with,
    save_model,
    seed_everything,
)

__all__ = [
    "run_fusion",
    "build_deploy_model",
    "build_deploy_sensor_model",
    "build_fused_model",
    "GeneratorBundle",
]

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


def _control_kind(info: dict[str, Any]) -> str | None:
    control = info.get("control")
    return control.get("kind") if isinstance(control, dict) else None


@dataclasses.dataclass
class GeneratorBundle:
    """A finished generator run with everything needed to compute its streams on any split."""

    run: Path
    info: dict[str, Any]
    config: dict[str, Any]
    fused: keras.Model
    evaluation: keras.Model  # fused outputs plus the control's, one pass per trunk
    sensor_trunk: keras.Model
    sensor_head: keras.Model
    sensor_steps: int | None
    classes: list[str]

    @property
    def control(self) -> str | None:
        """``"video_head_control"``, ``"video_ensemble"`` or None (trained without control)."""
        return _control_kind(self.info)

    @classmethod
    def load(cls, run: Path) -> GeneratorBundle:
        info = json.loads((run / "metrics.json").read_text())
        if not info.get("video_run"):
            raise StageError(
                f"{run} was trained without a video run; fusion needs the video classifier"
            )
        sensor_run, video_run = Path(info["sensor_run"]), Path(info["video_run"])
        for what, path in (("sensor", sensor_run), ("video", video_run)):
            if not (path / "best.keras").is_file():
                raise StageError(
                    f"generator run {run} needs the {what} run {path}, which is missing; "
                    f"re-run the {what} stage and the generator"
                )
        classes = json.loads((video_run / "metrics.json").read_text()).get("classes")
        sensor_classes = json.loads((sensor_run / "metrics.json").read_text()).get("classes")
        if classes and sensor_classes and list(classes) != list(sensor_classes):
            raise StageError(
                f"video run {video_run} and sensor run {sensor_run} of generator run {run} "
                "have different class lists; retrain them on the same dataset"
            )
        sensor_trunk, sensor_head = split_classifier(load_model(sensor_run / "best.keras"))
        own_trunk = (run / "generator_trunk.keras").is_file()
        fused = build_fused_model(
            load_model(video_run / "best.keras"),
            load_model(run / "generator_head.keras"),
            sensor_head,
            load_model(run / "generator_trunk.keras") if own_trunk else None,
        )
        evaluation = fused
        if _control_kind(info):
            head = load_model(run / "control_head.keras")
            trunk = (
                load_model(run / "control_trunk.keras")
                if (run / "control_trunk.keras").is_file()
                else None
            )
            inputs = model_inputs_like(fused)
            out = dict(fused(inputs))
            h = out["video_embedding"] if trunk is None else call_on_inputs(trunk, inputs)
            c = head(h)
            out["control_probs"], out["control_embedding"] = c["probs"], c["embedding"]
            evaluation = keras.Model(inputs, out, name="fused_with_control")
        return cls(
            run=run,
            info=info,
            config=read_run_config(run),
            fused=fused,
            evaluation=evaluation,
            sensor_trunk=sensor_trunk,
            sensor_head=sensor_head,
            sensor_steps=read_run_config(sensor_run).get("sensor_steps"),
            classes=list(classes or []),
        )

    def streams(
        self, rows: Any, manifest: Manifest, cfg: FusionConfig, with_sensor: bool
    ) -> dict[str, np.ndarray]:
        """Every stream's probabilities and embeddings on ``rows`` (plus labels and subjects)."""
        video_kw = {
            "num_frames": self.info["num_frames"],
            "crop_size": self.info["crop_size"],
            "frame_size": self.info.get("frame_size"),
        }
        loader = make_loader(rows, manifest, "video", cfg, train=False, **video_kw)
        out = {k: np.asarray(v) for k, v in predict_arrays(self.evaluation, loader).items()}
        out["labels"] = np.asarray(loader.labels)
        out["groups"] = rows["subject"].astype(str).to_numpy()
        out["ids"] = rows["id"].astype(str).to_numpy()
        if with_sensor:
            sensor = make_loader(
                rows, manifest, "sensor", cfg, train=False, sensor_steps=self.sensor_steps
            )
            emb = np.asarray(predict_arrays(self.sensor_trunk, sensor))
            out["sensor_embedding"] = emb
            out["sensor_probs"] = keras.ops.convert_to_numpy(self.sensor_head(emb))
            if not np.array_equal(np.asarray(sensor.labels), out["labels"]):
                raise StageError("video and sensor loaders disagree on the sample order")
        return out


def _has_all(rows: Any, modality: str) -> bool:
    return len(rows) > 0 and len(rows_with(rows, modality)) == len(rows)


def _subjects(rows: Any) -> list[str]:
    return sorted(set(rows["subject"].astype(str)))


def _load_folds(
    cfg: FusionConfig, main: GeneratorBundle, train_subjects: list[str]
) -> list[tuple[GeneratorBundle, FusionConfig]]:
    """The out-of-fold generator runs of ``--oof``, checked against this run."""
    if not cfg.oof:
        return []
    folds, held = [], set()
    for text in (p.strip() for p in cfg.oof.split(",")):
        if not text:
            continue
        run = resolve_run(text, cfg, "generator")
        fold = GeneratorBundle.load(run)
        fold_cfg = dataclasses.replace(cfg, subjects=fold.config.get("subjects"))
        if fold.config.get("dataset") != cfg.dataset or not fold_cfg.subjects:
            raise StageError(
                f"--oof run {run} is not a fold of {cfg.dataset} (dataset "
                f"{fold.config.get('dataset')}, subjects {fold_cfg.subjects}); reproduce.py "
                "--oof_folds makes them"
            )
        differs = [
            k
            for k in ("method", "trunk", "num_frames", "crop_size")
            if fold.info.get(k) != main.info.get(k)
        ]
        if fold.control != main.control:
            differs.append("control")
        if differs:
            raise StageError(
                f"--oof run {run} differs from generator run {main.run} in {', '.join(differs)}; "
                "train the folds with the same generator settings"
            )
        folds.append((fold, fold_cfg))
        out = set(parse_subject_splits(fold_cfg.subjects)["test"])
        bad = sorted(out - set(train_subjects))
        if bad or out & held:
            raise StageError(
                f"--oof run {run} holds out subject(s) {sorted(out)}; each fold must hold out "
                f"training subjects of this run ({', '.join(train_subjects)}), none twice"
            )
        held |= out
    return folds


#: Results row (and fused-stream name) of each stream the video stream is fused with; the
#: control's row is its kind (``video_head_control`` or ``video_ensemble``).
_SECOND_ROWS = {"generated": "generated_sensor", "sensor": "sensor"}


def _row(second: str, control: str | None) -> str:
    return (control or "control") if second == "control" else _SECOND_ROWS[second]


def _stream_probs(s: dict[str, np.ndarray], second: str, row: str) -> dict[str, np.ndarray]:
    """``{"video": ..., row: ...}``: the two streams' probabilities, video first."""
    return {"video": s["video_probs"], row: s[f"{second}_probs"]}


def _pool(parts: list[dict[str, np.ndarray]], second: str, row: str) -> dict[str, object] | None:
    """The selection pool of video + ``second`` stream, or None if a part lacks that stream."""
    if not parts or any(f"{second}_probs" not in p for p in parts):
        return None
    cat = {k: np.concatenate([p[k] for p in parts]) for k in ("labels", "groups")}
    return {
        **cat,
        "probs": {
            "video": np.concatenate([p["video_probs"] for p in parts]),
            row: np.concatenate([p[f"{second}_probs"] for p in parts]),
        },
        "embeddings": {
            VIDEO_INPUT: np.concatenate([p["video_embedding"] for p in parts]),
            SENSOR_INPUT: np.concatenate([p[f"{second}_embedding"] for p in parts]),
        },
    }


def _features(s: dict[str, np.ndarray], second: str) -> dict[str, np.ndarray]:
    return {VIDEO_INPUT: s["video_embedding"], SENSOR_INPUT: s[f"{second}_embedding"]}


def build_deploy_model(fused: keras.Model, selection: FusionSelection) -> keras.Model:
    """``deploy.keras``: ``fused``'s inputs (video) to the chosen fusion of video + generated sensor.

    Args:
        fused: From :func:`build_fused_model` (outputs ``video_probs``, ``video_embedding``,
            ``generated_embedding``, ``generated_probs``).
        selection: The selection of the video + ``generated_sensor`` fusion.

    Returns:
        A model with one ``(B, K)`` output, the rule and weights (or MLP) inside the graph.

    Example:
        >>> deploy = build_deploy_model(bundle.fused, selections["generated"])  # doctest: +SKIP
        >>> [t.name for t in deploy.inputs], deploy.output_shape  # doctest: +SKIP
        (['video'], (None, 27))
    """
    return build_fused_predictor(
        fused,
        selection,
        {"video": "video_probs", "generated_sensor": "generated_probs"},
        {VIDEO_INPUT: "video_embedding", SENSOR_INPUT: "generated_embedding"},
        name="deploy",
    )


#: File stem of the video + real-sensor deployable model.
DEPLOY_SENSOR_STEM = "deploy_sensor"


def build_deploy_sensor_model(
    fused: keras.Model,
    sensor_trunk: keras.Model,
    sensor_head: keras.Model,
    selection: FusionSelection,
) -> keras.Model:
    """``deploy_sensor.keras``: video and the real sensor in, their chosen fusion out.

    The counterpart of :func:`build_deploy_model` for a deployment that has the sensor: the rule
    and weights (or the MLP) are those chosen on the validation / out-of-fold pool for video +
    real sensor, the ``oracle_fusion`` row of the results.

    Args:
        fused: From :func:`build_fused_model` (``video_probs``, ``video_embedding`` used).
        sensor_trunk: The sensor classifier's trunk (normalisation inside).
        sensor_head: The sensor classifier's head.
        selection: The selection of the video + ``sensor`` fusion.

    Returns:
        A model with inputs ``video`` and ``sensor`` and one ``(B, K)`` output.

    Example:
        >>> m = build_deploy_sensor_model(bundle.fused, bundle.sensor_trunk, bundle.sensor_head,
        ...                               selections["sensor"])  # doctest: +SKIP
        >>> [t.name for t in m.inputs]  # doctest: +SKIP
        ['video', 'sensor']
    """
    inputs = {**model_inputs_like(fused), **model_inputs_like(sensor_trunk)}
    out = call_on_inputs(fused, inputs)
    u = call_on_inputs(sensor_trunk, inputs)
    # ``fused`` already holds the sensor head (on the generated embedding): a copy classifies the
    # real one, because a layer shared between a nested model and its outer graph does not
    # survive keras.models.clone_model (save_model clones)
    real_head = keras.models.clone_model(sensor_head)
    real_head.set_weights(sensor_head.get_weights())
    streams = keras.Model(
        inputs,
        {
            "video_probs": out["video_probs"],
            "video_embedding": out["video_embedding"],
            "sensor_probs": real_head(u),
            "sensor_embedding": u,
        },
        name="streams_with_sensor",
    )
    return build_fused_predictor(
        streams,
        selection,
        {"video": "video_probs", "sensor": "sensor_probs"},
        {VIDEO_INPUT: "video_embedding", SENSOR_INPUT: "sensor_embedding"},
        name="deploy_sensor",
    )


def _write_predictor(
    run: RunDir,
    main: GeneratorBundle,
    manifest: Manifest,
    deploy: keras.Model,
    gen_sel: FusionSelection,
    deploy_sensor: keras.Model | None,
    sensor_sel: FusionSelection | None,
) -> None:
    """``predictor.json``: what ``predict.py`` needs to read new recordings as the cache did."""
    loads: dict[str, dict[str, Any]] = {
        "video": {k: main.info.get(k) for k in ("num_frames", "crop_size", "frame_size")}
    }
    models = {
        "video": {
            "file": "deploy.keras",
            "inputs": [t.name for t in deploy.inputs],
            "row": "fusion_best",
            "rule": gen_sel.describe(),
        }
    }
    missing = {}
    if deploy_sensor is not None and sensor_sel is not None:
        # the sensor run's --sensor_steps, else the stored length its trunk was built for
        steps = main.sensor_steps or main.sensor_trunk.inputs[0].shape[1]
        loads["sensor"] = {"length": None if steps is None else int(steps)}
        models["video+sensor"] = {
            "file": f"{DEPLOY_SENSOR_STEM}.keras",
            "inputs": [t.name for t in deploy_sensor.inputs],
            "row": "oracle_fusion",
            "rule": sensor_sel.describe(),
        }
    else:
        missing["video+sensor"] = (
            "the validation split has no sensor recordings, so no video + real-sensor fusion "
            "was chosen"
        )
    info = predictor_info(
        classes=manifest.classes,
        dataset=manifest.name,
        streams=manifest.streams,
        loads=loads,
        models=models,
        missing=missing,
    )
    atomic_write_text(run.path / PREDICTOR_NAME, json.dumps(info, indent=1) + "\n")


def _accuracy(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean(np.argmax(p, axis=1) == y))


def _save_predictions(path: Path, probs: dict[str, np.ndarray], te: dict[str, np.ndarray]) -> None:
    """``predictions.npz``: test labels, subjects, sample ids and every row's probabilities."""
    extra = {"ids": te["ids"].astype(str)} if "ids" in te else {}
    atomic_save_npz(
        path,
        labels=te["labels"],
        subjects=te["groups"].astype(str),
        **extra,
        **{f"probs_{k}": np.asarray(v, dtype=np.float32) for k, v in probs.items()},
    )


def run_fusion(cfg: FusionConfig) -> RunDir:
    """Evaluate every fusion rule on the test split; everything is chosen without the test split."""
    seed_everything(cfg.seed)
    manifest = load_manifest(cfg)
    generator_run = resolve_run(cfg.model_path, cfg, "generator")
    if "sources" in json.loads((generator_run / "metrics.json").read_text()):
        from vsfusion.stages.stream_fusion import run_stream_fusion

        return run_stream_fusion(cfg, generator_run, manifest)
    main = GeneratorBundle.load(generator_run)
    if main.classes and main.classes != list(manifest.classes):
        raise StageError(
            f"generator run {main.run} was trained on other classes than {manifest.name} has "
            f"({len(main.classes)} vs {len(manifest.classes)}); use runs of this dataset"
        )
    train_rows = require_modality(manifest, "train", "video")
    val_rows = require_modality(manifest, "val", "video")
    test_rows = require_modality(manifest, "test", "video")
    folds = _load_folds(cfg, main, _subjects(train_rows))
    run = RunDir.create(cfg)
    save_model(main.fused, run.path, "fused")

    # --- streams; the pool (out-of-fold + validation) is all that selection looks at ---
    val_has_sensor = _has_all(val_rows, "sensor")
    va = main.streams(val_rows, manifest, cfg, val_has_sensor)
    oof = []
    for fold, fold_cfg in folds:
        fold_manifest = load_manifest(fold_cfg)
        rows = require_modality(fold_manifest, "test", "video")
        oof.append(
            fold.streams(rows, fold_manifest, fold_cfg, val_has_sensor and _has_all(rows, "sensor"))
        )
    te = main.streams(test_rows, manifest, cfg, _has_all(test_rows, "sensor") and val_has_sensor)
    parts = [*oof, va]
    n_groups = len({g for p in parts for g in p["groups"]})
    tr = main.streams(train_rows, manifest, cfg, False) if n_groups < 2 else None
    selections: dict[str, FusionSelection] = {}
    control = main.control
    for second in ("generated", "control", "sensor"):
        pool = _pool(parts, second, _row(second, control))
        # the video + real-sensor fusion is chosen whenever the pool has sensors: a deployment
        # with a sensor needs it (deploy_sensor.keras) even when the test split has none
        if pool is None or (second != "sensor" and f"{second}_probs" not in te):
            continue
        train_kw = {}
        if tr is not None:
            if second == "sensor":  # the oracle's learned rule needs training embeddings
                tr.update(main.streams(train_rows, manifest, cfg, True))
            train_kw = {"train_features": _features(tr, second), "y_train": tr["labels"]}
        selections[second] = select_fusion(
            pool,
            num_classes=len(manifest.classes),
            max_epochs=cfg.mlp_epochs,
            hidden=cfg.mlp_hidden,
            seed=cfg.seed,
            **train_kw,
        )
    gen_sel = selections["generated"]
    save_model(gen_sel.mlp, run.path, "fusion_mlp")
    deploy = build_deploy_model(main.fused, gen_sel)
    save_model(deploy, run.path, "deploy")
    deploy_sensor = None
    if "sensor" in selections:
        deploy_sensor = build_deploy_sensor_model(
            main.fused, main.sensor_trunk, main.sensor_head, selections["sensor"]
        )
        save_model(deploy_sensor, run.path, "deploy_sensor")
    _write_predictor(run, main, manifest, deploy, gen_sel, deploy_sensor, selections.get("sensor"))

    # --- test evaluation (reporting only) ---
    y = te["labels"]
    probs: dict[str, np.ndarray] = {
        "video": te["video_probs"],
        "generated_sensor": te["generated_probs"],
    }
    fused = apply_fusion(
        gen_sel, _stream_probs(te, "generated", "generated_sensor"), _features(te, "generated")
    )
    for rule in RULE_ORDER:
        probs[f"fusion_{rule}"] = fused[rule]
    probs["fusion_best"] = fused["best"]
    if control and "control" in selections:
        probs[control] = te["control_probs"]
        probs[f"{control}_fusion"] = apply_fusion(
            selections["control"], _stream_probs(te, "control", control), _features(te, "control")
        )["best"]
    if "sensor" in selections and "sensor_probs" in te:
        probs["sensor"] = te["sensor_probs"]
        probs["oracle_fusion"] = apply_fusion(
            selections["sensor"], _stream_probs(te, "sensor", "sensor"), _features(te, "sensor")
        )["best"]
    classes = manifest.classes
    summaries = {k: classification_summary(y, p, classes) for k, p in probs.items()}
    preds = {k: np.argmax(p, axis=1) for k, p in probs.items()}
    tests = [("fusion_best", "video")]
    if control and f"{control}_fusion" in preds:
        tests.append(("fusion_best", f"{control}_fusion"))
    mcnemar = [
        {"pair": list(pair), **mcnemar_exact(y, preds[pair[0]], preds[pair[1]])} for pair in tests
    ]
    for key in ("video", "fusion_best"):
        write_per_class_report(
            per_class_report(y, preds[key], classes), run.path / f"per_class_{key}.csv"
        )
        plot_confusion(
            confusion(y, preds[key], len(classes)),
            classes,
            run.path / f"confusion_{key}.png",
            title=f"{manifest.name}: {key}",
        )
    figures = {
        "Per-class change in accuracy, video to fusion_best": plot_per_class_delta(
            y, preds["video"], preds["fusion_best"], classes, run.path / "per_class_delta.png"
        ).name
    }
    if "sensor_embedding" in te:
        figures["t-SNE of real and generated sensor embeddings (test split)"] = plot_embedding_tsne(
            te["sensor_embedding"],
            te["generated_embedding"],
            y,
            classes,
            run.path / "tsne_sensor_embeddings.png",
            seed=cfg.seed,
        ).name
    _save_predictions(run.path / "predictions.npz", probs, te)

    matrix: dict[str, dict[str, Any]] = {"video only": {"stream": "video", "rule": None}}
    if "sensor" in probs:
        matrix["sensor only"] = {"stream": "sensor", "rule": None}
        matrix["video + real sensor"] = {
            "stream": "oracle_fusion",
            "rule": selections["sensor"].describe(),
        }
    matrix["video + generated sensor"] = {"stream": "fusion_best", "rule": gen_sel.describe()}
    fold_info = [
        {
            "run": str(fold.run.resolve()),
            "subjects": fold_cfg.subjects,
            "held_out": sorted(set(part["groups"])),
            "n": int(len(part["labels"])),
        }
        for (fold, fold_cfg), part in zip(folds, oof, strict=True)
    ]
    results = build_results(
        dataset=manifest.name,
        n_train=len(train_rows),
        n_val=len(val_rows),
        n_test=len(test_rows),
        seed=cfg.seed,
        accuracy={k: s["top1"] for k, s in summaries.items()},
        macro_f1={k: s["macro_f1"] for k, s in summaries.items()},
        mcnemar_p=mcnemar[0]["p_value"],
        extra={
            "top5": {k: s["top5"] for k, s in summaries.items()},
            "best_fusion": f"fusion_{gen_sel.best}",
            "best_fusion_rule": gen_sel.describe(),
            "generator_method": main.info.get("method", "regress"),
            "generator_trunk": main.info["trunk"],
            "control": control,
            "mcnemar_pair": ["fusion_best", "video"],
            "mcnemar_tests": mcnemar,
            "missing_modality": matrix,
            "selection": {
                "pool": gen_sel.pool,
                "pool_groups": gen_sel.groups,
                "folds": fold_info,
                **{name: sel.summary() for name, sel in selections.items()},
            },
            "figures": figures,
            "deploy": {
                "file": "deploy.keras",
                "inputs": {t.name: list(t.shape[1:]) for t in deploy.inputs},
                "clip": {k: main.info.get(k) for k in ("num_frames", "crop_size", "frame_size")},
                "output": "fused class probabilities (fusion_best)",
                "rule": gen_sel.describe(),
                "streams": list(gen_sel.streams),
                "with_sensor": None
                if deploy_sensor is None
                else {
                    "file": f"{DEPLOY_SENSOR_STEM}.keras",
                    "inputs": {t.name: list(t.shape[1:]) for t in deploy_sensor.inputs},
                    "output": "fused class probabilities of video + real sensor (oracle_fusion)",
                    "rule": selections["sensor"].describe(),
                },
            },
        },
    )
    write_results(run.path, results)
    if cfg.out:
        write_results(cfg.out, relocate_figures(results, run.final, Path(cfg.out)))
    run.finish({"results": results, "generator_run": str(main.run.resolve())})
    logger.info(
        "test accuracy: video %.3f, generated sensor %.3f, fusion_best (%s) %.3f, %s; McNemar "
        "p = %.3g vs video%s",
        results["accuracy"]["video"],
        results["accuracy"]["generated_sensor"],
        gen_sel.describe(),
        results["accuracy"]["fusion_best"],
        f"control {control} fused {results['accuracy'].get(f'{control}_fusion')}"
        if control
        else "no control",
        mcnemar[0]["p_value"],
        f", {mcnemar[1]['p_value']:.3g} vs the control's fusion" if len(mcnemar) > 1 else "",
    )
    return run


def relocate_figures(results: dict[str, Any], run_dir: Path, out_dir: Path) -> dict[str, Any]:
    """``results`` with its figure links made relative to ``out_dir`` (where results.md goes)."""
    figures = (results.get("extra") or {}).get("figures")
    if not figures:
        return results
    moved = {t: os.path.relpath(run_dir / f, out_dir) for t, f in figures.items()}
    return {**results, "extra": {**results["extra"], "figures": moved}}


def load_predictions(run: Path) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """The test labels and per-row probabilities a fusion run saved in ``predictions.npz``."""
    path = Path(run) / "predictions.npz"
    if not path.is_file():
        raise StageError(f"{path} is missing; re-run the fusion stage")
    try:
        with np.load(path) as data:
            probs = {k[len("probs_") :]: data[k] for k in data.files if k.startswith("probs_")}
            return data["labels"], probs
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        raise StageError(
            f"{path} could not be read ({exc.__class__.__name__}); re-run the fusion stage"
        ) from None
