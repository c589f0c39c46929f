#!/usr/bin/env python
"""How long ``predict.py`` takes on one clip, end to end, with the light backbone's fused model.

A 3 s 640x480 mp4 is synthesised as ``bench/run.py``'s ``write_videos`` does, and a fusion run
folder is built synthetically (random weights, the fusion stage's architecture and files): the
``--backbone`` (default ``x3d_xs``) video classifier at ``--frames`` x ``--crop``, a generator
head to a 128-d InceptionTime sensor embedding sharing the video trunk, ``deploy.keras``
(weighted fusion of video + generated sensor), ``predictor.json`` recording the folder
adapter's cache reader (``read_clip``, 32 frames, 128 px, centre crop), and the ONNX export of
``deploy.keras`` that ``export.py`` writes (checked against Keras there). Measured:

(a) the wall time of whole processes, ``--reps`` times each: ``python predict.py CLIP --model
    RUN`` as a user runs it (``--engine auto``: ONNX Runtime on the export, no TensorFlow), the
    same with ``--engine keras`` (TensorFlow) and with ``--engine keras`` under
    ``KERAS_BACKEND=jax``; and, to see where the time goes, ``python -c pass`` (the interpreter),
    the imports of the ONNX path (``onnxruntime``, ``cv2``) and of the backend
    (``import tensorflow`` / ``import keras``, also as predict.py imports Keras, skipping the
    optional packages TensorFlow and Keras load but inference never uses,
    :func:`vsfusion.runtime.skip_optional_imports`);
(b) in one process, per engine: loading the model, reading and preprocessing the video, the
    first prediction and a second one, and for Keras the first compiled one
    (``Predictor.compiled``: it traces the graph) and a second compiled one, each the median of
    ``--reps`` fresh predictors; and the largest difference between the two engines'
    probabilities of the clip.

Usage: python bench/predict.py [--out bench/predict.json] [--reps 3] [--backbone x3d_xs]
"""

from __future__ import annotations

import argparse
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import vsfusion  # noqa: E402,F401  (turns oneDNN on before TensorFlow loads)

__all__ = ["TARGET_S", "bench_predict", "make_run"]

TARGET_S = 2.0
"""The target: ``python predict.py`` on one 3 s clip, model loading included, on 2 cores."""


def _bench_run_module() -> Any:
    """``bench/run.py`` (loaded by path: ``bench`` is no package, and ``predict`` is also the
    repository's CLI module name)."""
    spec = importlib.util.spec_from_file_location("bench_run", Path(__file__).with_name("run.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_run(folder: Path, backbone: str, frames: int, crop: int, num_classes: int = 8) -> Path:
    """A fusion run folder with ``deploy.keras``, its ONNX export and ``predictor.json`` (random
    weights).

    Returns:
        The run folder.
    """
    import keras

    from vsfusion.data.modality import StreamInfo
    from vsfusion.data.readers import reader_spec
    from vsfusion.data.video import CACHE_FRAMES, CACHE_SIZE, read_clip
    from vsfusion.fusion import FusionSelection
    from vsfusion.inference import PREDICTOR_NAME, predictor_info
    from vsfusion.stages.common import save_model
    from vsfusion.stages.fusion import build_deploy_model

    keras.utils.set_random_seed(0)
    models = _bench_run_module().build_fused_models(backbone, frames, crop, num_classes)
    selection = FusionSelection(
        best="weighted",
        scores={"weighted": 1.0},
        weights={"video": 0.6, "generated_sensor": 0.4},
        mlp=None,
        mlp_epochs=None,
        pool="validation",
        groups={},
    )
    run = folder / "fusion" / "bench"
    save_model(build_deploy_model(models["fused_shared"], selection), run, "deploy")
    reader = functools.partial(
        read_clip, num_frames=CACHE_FRAMES, size=CACHE_SIZE, crop="centre", with_info=True
    )
    stream = StreamInfo("rgb", (None, None, None, 3), 3, {"reader": reader_spec(reader)})
    info = predictor_info(
        classes=[f"class_{i}" for i in range(num_classes)],
        dataset="bench",
        streams={"video": stream},
        loads={"video": {"num_frames": frames, "crop_size": crop, "frame_size": None}},
        models={"video": {"file": "deploy.keras", "inputs": ["video"], "row": "fusion_best"}},
    )
    (run / PREDICTOR_NAME).write_text(json.dumps(info, indent=1) + "\n")
    from vsfusion.config import ExportConfig
    from vsfusion.stages.export import run_export

    run_export(ExportConfig(run=str(run / "deploy.keras"), format="onnx", verbose=0))
    return run


#: ``import keras`` as predict.py does it: without the optional packages it never uses.
LEAN = "from vsfusion.runtime import skip_optional_imports; skip_optional_imports(); import keras"
#: What predict.py imports to run an ONNX export, besides itself.
ONNX_PATH = "import onnxruntime, cv2"


def _wall(cmd: list[str], env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})},
        cwd=REPO,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return time.perf_counter() - start


def _summary(times: list[float]) -> dict[str, Any]:
    return {"median_s": round(statistics.median(times), 3), "times_s": [round(t, 3) for t in times]}


def _in_process(run: Path, clip: Path, reps: int, engine: str) -> dict[str, Any]:
    from vsfusion.inference import Predictor

    names = ("load_s", "preprocess_s", "first_predict_s", "warm_predict_s", "total_s")
    if engine == "keras":
        names += ("compile_s", "warm_compiled_predict_s")
    phases: dict[str, list[float]] = {k: [] for k in names}
    for _ in range(reps):
        t0 = time.perf_counter()
        predictor = Predictor.load(run, engine=engine)
        predictor.model()
        t1 = time.perf_counter()
        x = predictor.prepare_video(clip)
        t2 = time.perf_counter()
        probs = predictor.predict_video(clip)  # reads the video again: the whole call
        t3 = time.perf_counter()
        predictor.predict_video(clip)
        t4 = time.perf_counter()
        first = (t3 - t2) - (t2 - t1)  # the model call of the first prediction
        values = [t1 - t0, t2 - t1, first, t4 - t3, (t1 - t0) + (t3 - t2)]
        if engine == "keras":
            predictor.compiled = True
            predictor.predict_video(clip)  # traces the graph
            t5 = time.perf_counter()
            predictor.predict_video(clip)
            values += [t5 - t4, time.perf_counter() - t5]
        for key, value in zip(phases, values, strict=True):
            phases[key].append(value)
    out: dict[str, Any] = {k: round(statistics.median(v), 3) for k, v in phases.items()}
    out["input_shape"] = list(x.shape)
    out["file"] = predictor.runner_file().relative_to(run).as_posix()
    out["probabilities"] = [float(p) for p in probs]
    return out


def bench_predict(
    *, backbone: str = "x3d_xs", frames: int = 16, crop: int = 112, reps: int = 3, jax: bool = True
) -> dict[str, Any]:
    """The end-to-end and in-process times of predict.py on one 3 s clip (module docstring).

    Returns:
        A JSON-able dict: ``process`` (wall times of whole processes: ``predict_py`` (ONNX
        Runtime, the default when the run has an export), ``predict_py_keras``,
        ``predict_py_jax``, ``python``, ``import_onnx_path``, ``import_tensorflow``,
        ``import_keras``, ``import_keras_lean``), ``in_process`` (phases per engine),
        ``target_s``, ``meets_target`` (the median ``predict.py`` wall time against it) and
        ``keras_engine_meets_target``, ``max_abs_diff_onnx_keras``, and the machine.
        ``jax=False`` leaves out ``predict_py_jax`` (JAX's compile: the slowest row).
    """
    from vsfusion.runtime import machine_info

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        [clip] = _bench_run_module().write_videos(tmp, 1, seconds=3.0)
        run = make_run(tmp, backbone, frames, crop)
        py = sys.executable
        predict = [py, str(REPO / "predict.py"), str(clip), "--model", str(run), "--verbose", "0"]
        keras_engine = [*predict, "--engine", "keras"]

        def wall(cmd: list[str], env: dict[str, str] | None = None) -> dict[str, Any]:
            return _summary([_wall(cmd, env) for _ in range(reps)])

        process = {
            "python": wall([py, "-c", "pass"]),
            "import_onnx_path": wall([py, "-c", ONNX_PATH]),
            "import_tensorflow": wall([py, "-c", "import tensorflow"]),
            "import_keras": wall([py, "-c", "import keras"]),
            "import_keras_lean": wall([py, "-c", LEAN]),
            "predict_py": wall(predict),
            "predict_py_keras": wall(keras_engine),
        }
        if jax:
            process["predict_py_jax"] = wall(keras_engine, {"KERAS_BACKEND": "jax"})
        in_process = {engine: _in_process(run, clip, reps, engine) for engine in ("onnx", "keras")}
    median = process["predict_py"]["median_s"]
    diff = max(
        abs(a - b)
        for a, b in zip(
            in_process["onnx"].pop("probabilities"),
            in_process["keras"].pop("probabilities"),
            strict=True,
        )
    )
    return {
        "backbone": backbone,
        "clip": "3 s, 640x480, 30 frames/s, mp4v; read as 32 frames at 128 px, centre crop",
        "model_input": [frames, crop, crop, 3],
        "reps": reps,
        "process": process,
        "in_process": in_process,
        "target_s": TARGET_S,
        "meets_target": bool(median <= TARGET_S),
        "keras_engine_meets_target": bool(process["predict_py_keras"]["median_s"] <= TARGET_S),
        "import_tensorflow_exceeds_target": bool(
            process["import_tensorflow"]["median_s"] > TARGET_S
        ),
        "max_abs_diff_onnx_keras": float(diff),
        "machine": machine_info(),
    }


def markdown(result: dict[str, Any]) -> str:
    """The result as a Markdown table (what the README quotes)."""
    m = result["machine"]
    p, ip = result["process"], result["in_process"]
    onnx, ks = ip["onnx"], ip["keras"]
    rows = [
        ("`python -c pass`", p["python"]["median_s"], ""),
        ("`python -c 'import onnxruntime, cv2'`", p["import_onnx_path"]["median_s"], ""),
        ("`python -c 'import tensorflow'`", p["import_tensorflow"]["median_s"], ""),
        ("`python -c 'import keras'` (TensorFlow backend)", p["import_keras"]["median_s"], ""),
        ("the same without JAX, scikit-learn, matplotlib", p["import_keras_lean"]["median_s"], ""),
        (
            "**`python predict.py clip.mp4 --model RUN`** (ONNX export)",
            p["predict_py"]["median_s"],
            "",
        ),
        ("the same, `--engine keras`", p["predict_py_keras"]["median_s"], ""),
        (
            "the same, `--engine keras`, `KERAS_BACKEND=jax`",
            p.get("predict_py_jax", {}).get("median_s", "–"),
            "",
        ),
        ("in one process: load the model", onnx["load_s"], ks["load_s"]),
        ("in one process: read + preprocess the clip", onnx["preprocess_s"], ks["preprocess_s"]),
        ("in one process: first model call", onnx["first_predict_s"], ks["first_predict_s"]),
        ("in one process: load + read + preprocess + predict", onnx["total_s"], ks["total_s"]),
        ("in one process: a further prediction", onnx["warm_predict_s"], ks["warm_predict_s"]),
        ("in one process: the first compiled prediction (traces)", "", ks["compile_s"]),
        ("in one process: a further compiled prediction", "", ks["warm_compiled_predict_s"]),
    ]
    lines = [
        f"predict.py on one clip ({result['clip']}), {result['backbone']} fused model at "
        f"{'x'.join(map(str, result['model_input'][:3]))}; CPU {m['cpu_model']} ({m['cpus']} "
        f"threads); median of {result['reps']}; seconds (whole processes in the first column):",
        "",
        f"| what | ONNX Runtime ({onnx['file']}) | Keras ({ks['file']}) |",
        "|---|---:|---:|",
        *[f"| {what} | {a} | {b} |" for what, a, b in rows],
        "",
        f"Target {result['target_s']} s end to end: "
        + ("met" if result["meets_target"] else "**not met**")
        + " with the ONNX export; with Keras "
        + ("met" if result["keras_engine_meets_target"] else "not met")
        + (
            " (importing TensorFlow alone takes longer)."
            if result["import_tensorflow_exceeds_target"]
            else "."
        )
        + f" The two engines' probabilities differ by at most {result['max_abs_diff_onnx_keras']:.1e}.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/predict.json")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--backbone", default="x3d_xs")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--crop", type=int, default=112)
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    result = bench_predict(
        backbone=args.backbone, frames=args.frames, crop=args.crop, reps=args.reps
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    from vsfusion.data.io import atomic_write_text

    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(result))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
