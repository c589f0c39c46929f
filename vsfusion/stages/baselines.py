"""Stage 0: classical reference rows (``baseline_sensor``, ``baseline_video``) for every results table.

Features come from the same cached ``.npy`` arrays the deep stages read (manifest columns
``sensor`` and ``video``): summary statistics of the sensor recording, depth motion maps of a
one-channel (depth) clip or motion-energy / motion-history images of an RGB clip (see
:mod:`vsfusion.baselines`). Models are fitted on every non-test subject (the manifest's ``train``
and ``val`` splits together, the protocol's training subjects); the model family and its
hyper-parameters are chosen by leave-one-subject-out accuracy over those subjects. The test split is
read only to report the chosen models' scores. There is no separate validation score: the
validation subjects are inside the fit, so ``metrics.json`` reports the LOSO accuracy instead.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd

from vsfusion.baselines import (
    candidate_models,
    select_by_loso,
    sensor_features,
    video_features,
)
from vsfusion.config import BaselinesConfig
from vsfusion.data import DataError, Manifest
from vsfusion.data.io import load_npy
from vsfusion.data.sensor import validate_sensor
from vsfusion.data.skeleton import normalize_skeleton, validate_skeleton
from vsfusion.evaluation.metrics import classification_summary
from vsfusion.stages.common import (
    RunDir,
    StageError,
    load_manifest,
    rows_with,
    seed_everything,
)

__all__ = ["BASELINE_STREAMS", "run_baselines", "parse_streams", "stream_features"]

logger = logging.getLogger(__name__)

#: Baseline stream (manifest column) -> row name in the results tables.
BASELINE_STREAMS: dict[str, str] = {
    "sensor": "baseline_sensor",
    "video": "baseline_video",
    "skeleton": "baseline_skeleton",
}


def parse_streams(text: str) -> list[str]:
    """``"sensor,video"`` -> ``["sensor", "video"]``; a clear error for anything else.

    Example:
        >>> parse_streams("video, sensor")
        ['sensor', 'video']
    """
    wanted = [s.strip() for s in text.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(BASELINE_STREAMS))
    if unknown or not wanted:
        raise StageError(
            f"--streams {text!r}: unknown baseline streams {unknown or wanted}; "
            f"choose from {','.join(BASELINE_STREAMS)}"
        )
    return [s for s in BASELINE_STREAMS if s in wanted]


def stream_features(
    rows: pd.DataFrame, stream: str, layout: str | None = None
) -> tuple[np.ndarray, str]:
    """The feature matrix of ``rows`` for one stream, read from the cached ``.npy`` files.

    Args:
        rows: Manifest rows, every one with a path in column ``stream``.
        stream: ``"sensor"``, ``"video"`` or ``"skeleton"`` (joint trajectories normalised by
            their ``layout`` when it is given, then the sensor's summary statistics over the
            ``joints x coordinates`` channels).
        layout: The skeleton's joint layout name.

    Returns:
        ``((len(rows), d) float32 features, kind)``; kind names the feature family.

    Raises:
        DataError: A missing or unreadable file, a NaN/inf sensor, a clip that is not uint8
            ``(T, H, W, 1 or 3)``, or feature lengths that differ, each naming the file.
    """
    feats: list[np.ndarray] = []
    kind = "summary_statistics"
    for path in rows[stream].astype(str):
        arr = load_npy(path, stream)
        if stream in ("sensor", "skeleton"):
            if stream == "skeleton":
                sk = validate_skeleton(arr, path, joints=layout)
                if layout:
                    sk = normalize_skeleton(sk, layout)
                arr = sk.reshape(sk.shape[0], -1)
                kind = "joint_summary_statistics"
            x = validate_sensor(arr, path)
            if x.shape[0] < 3:
                raise DataError(f"{path}: {stream} has {x.shape[0]} steps; need at least 3")
            f = sensor_features(x)
        else:
            if arr.ndim != 4 or arr.dtype != np.uint8 or arr.shape[-1] not in (1, 3):
                raise DataError(
                    f"{path}: video must be uint8 (T, H, W, 1 or 3), got {arr.dtype} "
                    f"{arr.shape}; re-run video preprocessing"
                )
            f, kind = video_features(np.asarray(arr))
        if feats and f.shape != feats[0].shape:
            raise DataError(
                f"{path}: {stream} gives {f.shape[0]} features but the first sample "
                f"{feats[0].shape[0]}; all samples must have the same channels"
            )
        feats.append(f)
    return np.stack(feats), kind


def _run_stream(
    stream: str, fit_rows: pd.DataFrame, test_rows: pd.DataFrame, manifest: Manifest, cfg: Any
) -> dict[str, Any]:
    start = time.time()
    layout = manifest.streams[stream].attrs.get("layout") if stream == "skeleton" else None
    x_fit, kind = stream_features(fit_rows, stream, layout)
    x_test = stream_features(test_rows, stream, layout)[0] if len(test_rows) else None
    feature_seconds = round(time.time() - start, 1)
    y_fit = manifest.labels(fit_rows)
    groups = fit_rows["subject"].astype(str).to_numpy()
    candidates = candidate_models(stream, x_fit.shape[1], n_trees=cfg.n_trees, seed=cfg.seed)
    try:
        sel = select_by_loso(x_fit, y_fit, groups, candidates, n_jobs=cfg.n_jobs)
    except ValueError as exc:
        raise StageError(f"{manifest.name}: {exc}; the baselines need two or more") from None
    families: dict[str, Any] = {}
    test: dict[str, Any] | None = None
    if x_test is not None:
        y_test = manifest.labels(test_rows)
        k = len(manifest.classes)
        for name, fam in sel.families.items():
            pred = fam["model"].predict(x_test)
            summary = classification_summary(y_test, np.eye(k)[pred], manifest.classes)
            fam["test"] = {"top1": summary["top1"], "macro_f1": summary["macro_f1"]}
            if name == sel.family:
                test = fam["test"]
    for name, fam in sel.families.items():
        families[name] = {key: v for key, v in fam.items() if key != "model"}
    result = {
        "row": BASELINE_STREAMS[stream],
        "features": kind,
        "n_features": int(x_fit.shape[1]),
        "n_fit": len(fit_rows),
        "n_test": len(test_rows),
        "model": sel.family,
        "params": sel.params,
        "loso_accuracy": sel.loso_accuracy,
        "loso_folds": sel.folds,
        "test": test,
        "families": families,
        "feature_seconds": feature_seconds,
        "seconds": round(time.time() - start, 1),
    }
    logger.info(
        "%s: %s chosen by LOSO (%.3f) with %s; test top-1 %s",
        result["row"],
        sel.family,
        sel.loso_accuracy,
        sel.params,
        "n/a" if test is None else f"{test['top1']:.3f}",
    )
    return result


def run_baselines(cfg: BaselinesConfig) -> RunDir:
    """Fit the classical baselines on the training subjects and report them on test.

    ``metrics.json`` holds, per baseline row: the feature family, the chosen model and
    hyper-parameters, the LOSO accuracy and its folds (held-out subjects), test top-1 and macro-F1
    of the chosen model, and every family's LOSO score and test score (the row reports the family
    chosen by LOSO, never by test). Also ``accuracy`` / ``macro_f1`` per row, ``fit_subjects``,
    ``test_subjects`` and the stage's ``seconds``.

    Example:
        >>> run = run_baselines(BaselinesConfig(dataset="demo"))  # doctest: +SKIP
        >>> json.loads((run.path / "metrics.json").read_text())["accuracy"]  # doctest: +SKIP
        {'baseline_sensor': 0.94, 'baseline_video': 0.35}
    """
    streams = parse_streams(cfg.streams)
    if cfg.n_trees < 1 or cfg.n_jobs < 1:
        raise StageError(f"--n_trees {cfg.n_trees} / --n_jobs {cfg.n_jobs}: both must be >= 1")
    seed_everything(cfg.seed)
    manifest = load_manifest(cfg)
    samples = manifest.samples
    fit_all = samples[samples["split"].isin(["train", "val"])].reset_index(drop=True)
    test_all = manifest.split("test")
    run = RunDir.create(cfg)
    rows: dict[str, Any] = {}
    for stream in streams:
        fit_rows, test_rows = rows_with(fit_all, stream), rows_with(test_all, stream)
        if len(fit_rows) == 0:
            logger.info(
                "%s has no %s recordings in its training subjects: %s skipped",
                manifest.name,
                stream,
                BASELINE_STREAMS[stream],
            )
            continue
        if len(test_rows) == 0:
            logger.warning(
                "test split has no %s recordings: only LOSO accuracy is reported", stream
            )
        rows[BASELINE_STREAMS[stream]] = _run_stream(stream, fit_rows, test_rows, manifest, cfg)
    if not rows:
        raise StageError(
            f"{manifest.name} has none of the modalities {streams} in its training subjects; "
            "nothing to fit (check --streams)"
        )
    metrics = {
        "classes": manifest.classes,
        "n_train": int((samples["split"] == "train").sum()),
        "n_val": int((samples["split"] == "val").sum()),
        "n_test": len(test_all),
        "fit_splits": ["train", "val"],
        "fit_subjects": sorted(set(fit_all["subject"].astype(str))),
        "test_subjects": sorted(set(test_all["subject"].astype(str))),
        "selection": "leave-one-subject-out accuracy over fit_subjects (no validation score: "
        "the val split is inside the fit); the test split chooses nothing",
        "accuracy": {k: (r["test"] or {}).get("top1") for k, r in rows.items()},
        "macro_f1": {k: (r["test"] or {}).get("macro_f1") for k, r in rows.items()},
        "loso_accuracy": {k: r["loso_accuracy"] for k, r in rows.items()},
        "streams": rows,
    }
    run.finish(metrics)
    return run
