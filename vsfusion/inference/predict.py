"""``predict.py``: the top-k classes of new videos (and sensor recordings) from a fusion run.

The input is a video file, a folder of videos (searched recursively, with a progress bar), a
cached clip ``.npy``, or a webcam index; ``--sensor`` adds the video's sensor recording (then
the run's video + real-sensor model predicts). Reading and preprocessing are the training
cache's and loader's (:class:`vsfusion.inference.Predictor`). ``--engine`` chooses what runs the
model: Keras, or ONNX Runtime on the run's ONNX export (``auto``, the default, takes the export
when there is one); with ONNX Runtime the process never imports Keras or TensorFlow, which is
most of the start-up time of a single prediction. The top-k classes are printed;
``--out`` writes every prediction to ``.json`` and/or ``.csv``, each written to a temporary file
and renamed once every input is predicted, so a failure leaves no partial output.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import sys
from pathlib import Path
from typing import Any

from vsfusion.config import ConfigError, PredictConfig
from vsfusion.data.errors import DataError
from vsfusion.data.io import atomic_write_text

__all__ = [
    "COMPILE_FROM",
    "OUTPUT_SUFFIXES",
    "format_prediction",
    "run_predict",
    "write_predictions",
]

logger = logging.getLogger(__name__)

OUTPUT_SUFFIXES = (".json", ".csv")
COMPILE_FROM = 4
"""From this many videos on, predictions go through the compiled model (see
:attr:`vsfusion.inference.Predictor.compiled`)."""


def _outputs(text: str | None) -> list[Path]:
    outs = [Path(p.strip()) for p in (text or "").split(",") if p.strip()]
    for p in outs:
        if p.suffix.lower() not in OUTPUT_SUFFIXES:
            raise ConfigError(
                f"--out {p}: unknown format {p.suffix or '(no suffix)'!r}; name a .json or .csv "
                "file (comma-separated for both)"
            )
        if p.is_dir():
            raise ConfigError(f"--out {p}: is a folder; name a .json or .csv file")
    return outs


def _sources(text: str | None) -> tuple[list[Path] | None, int | None]:
    """``(video files, None)`` or ``(None, webcam index)`` of the positional input."""
    from vsfusion.data.video import VIDEO_EXTENSIONS, find_videos

    if not text:
        raise ConfigError(
            "no input; pass a video file, a folder of videos or a webcam index, e.g. "
            "python predict.py clip.mp4 --model checkpoints/<dataset>/fusion/latest"
        )
    path = Path(text)
    if path.is_dir():
        videos = find_videos(path)
        if not videos:
            raise DataError(
                f"{path}: no videos ({', '.join(VIDEO_EXTENSIONS)}) in this folder or below; "
                "pass a folder holding videos"
            )
        return videos, None
    if path.is_file():
        return [path], None
    if text.strip().isdigit():
        return None, int(text)
    raise DataError(
        f"{path}: no such video file or folder; pass a video, a folder of videos or a webcam "
        "index (0 is the first camera)"
    )


def format_prediction(name: str, ranked: list[tuple[str, float]], model: str) -> str:
    """The printed block of one prediction: the input, the model file, the ranked classes.

    Example:
        >>> print(format_prediction("a.mp4", [("wave", 0.9), ("clap", 0.1)], "deploy.keras"))
        a.mp4 (deploy.keras)
          1. wave  0.9000
          2. clap  0.1000
    """
    width = max(len(c) for c, _ in ranked)
    lines = [f"{name} ({model})"]
    lines += [f"  {i}. {c:<{width}}  {p:.4f}" for i, (c, p) in enumerate(ranked, 1)]
    return "\n".join(lines)


def write_predictions(path: Path, report: dict[str, Any]) -> Path:
    """Write :func:`run_predict`'s report to ``.json`` (all of it) or ``.csv`` (one row per
    input and rank: ``input,sensor,model,rank,class,probability``), atomically.

    Example:
        >>> import tempfile
        >>> r = {"predictions": [{"input": "a.mp4", "sensor": None, "model": "deploy.keras",
        ...      "top_k": [{"class": "wave", "probability": 0.9}]}]}
        >>> p = write_predictions(Path(tempfile.mkdtemp()) / "p.csv", r)
        >>> p.read_text().splitlines()[1]
        'a.mp4,,deploy.keras,1,wave,0.9'
    """
    if path.suffix.lower() == ".json":
        return atomic_write_text(path, json.dumps(report, indent=1) + "\n")
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["input", "sensor", "model", "rank", "class", "probability"])
    for pred in report["predictions"]:
        for rank, item in enumerate(pred["top_k"], 1):
            writer.writerow(
                [
                    pred["input"],
                    pred["sensor"] or "",
                    pred["model"],
                    rank,
                    item["class"],
                    repr(item["probability"]),
                ]
            )
    return atomic_write_text(path, buf.getvalue())


def run_predict(cfg: PredictConfig) -> dict[str, Any]:
    """Predict every input of ``cfg``, print the top-k classes, write ``--out``.

    Returns:
        ``{"model": run folder, "classes": [...], "predictions": [{"input", "sensor", "model",
        "top_k": [{"class", "probability"}], "probabilities": {class: p}}]}``.

    Raises:
        ConfigError: Bad options (no input or model, ``--top_k`` < 1, an unknown ``--out``
            format, ``--sensor`` with a folder).
        DataError: A missing or unreadable video, sensor file or model (one line naming it).

    Example:
        >>> cfg = PredictConfig(input="clip.mp4", model="checkpoints/demo/fusion/latest")
        >>> run_predict(cfg)["predictions"][0]["top_k"][0]  # doctest: +SKIP
        {'class': 'wave', 'probability': 0.93}
    """
    from tqdm.auto import tqdm

    from vsfusion.inference import Predictor, capture_frames

    if cfg.top_k < 1:
        raise ConfigError(f"--top_k {cfg.top_k}: must be at least 1")
    if not cfg.seconds > 0:
        raise ConfigError(f"--seconds {cfg.seconds}: must be positive")
    outs = _outputs(cfg.out)
    if not cfg.model:
        raise ConfigError(
            "no model; pass --model checkpoints/<dataset>/fusion/<run> (or .../fusion/latest, "
            "or a deploy.keras)"
        )
    videos, webcam = _sources(cfg.input)
    if cfg.sensor is not None and videos is not None and len(videos) > 1:
        raise ConfigError(
            f"--sensor {cfg.sensor}: one recording pairs with one video, and {cfg.input} is a "
            "folder; predict its videos one at a time to add their sensors"
        )
    if cfg.sensor is not None and not Path(cfg.sensor).is_file():
        raise DataError(f"{cfg.sensor}: sensor file not found; check the path")
    predictor = Predictor.load(cfg.model, engine=cfg.engine)
    with_sensor = cfg.sensor is not None
    runner = predictor.runner_file(with_sensor)
    model_file = runner.relative_to(predictor.run).as_posix()
    predictor.model(with_sensor)  # load now: a bad checkpoint fails before any input is read

    items: list[tuple[str, Any]]
    if webcam is not None:
        items = [(f"webcam {webcam}", capture_frames(webcam, cfg.seconds))]
    else:
        items = [(str(v), v) for v in videos or []]
    # Keras: a compiled call costs one trace (seconds) and then runs ~8x faster than an eager one
    predictor.compiled = len(items) >= COMPILE_FROM
    predictions = []
    bar = tqdm(items, desc="predict", unit="video", disable=len(items) < 2 or cfg.verbose < 1)
    for name, video in bar:
        probs = predictor.predict_video(video, sensor=cfg.sensor)
        ranked = predictor.top_k(probs, cfg.top_k)
        predictions.append(
            {
                "input": name,
                "sensor": cfg.sensor,
                "model": model_file,
                "top_k": [{"class": c, "probability": p} for c, p in ranked],
                "probabilities": {
                    c: float(p) for c, p in zip(predictor.classes, probs, strict=True)
                },
            }
        )
    report = {
        "model": str(predictor.run.resolve()),
        "classes": predictor.classes,
        "predictions": predictions,
    }
    for pred in predictions:
        ranked = [(t["class"], t["probability"]) for t in pred["top_k"]]
        sys.stdout.write(format_prediction(pred["input"], ranked, pred["model"]) + "\n")
    for path in outs:
        write_predictions(path, report)
        logger.info("wrote %s", path)
    return report
