#!/usr/bin/env python
"""CPU latency of the fused model exported: Keras against ONNX Runtime and LiteRT, batch 1.

For each video backbone (default: the light x3d_xs and I3D) the fusion stage's deployable model
is built synthetically (random weights; :func:`vsfusion.stages.fusion.build_fused_model` on the
backbone's classifier, a 128-d generator head and the head of a 128-d InceptionTime sensor
classifier, the weighted rule on top as in ``deploy.keras``), exported with
:func:`vsfusion.export.export_model` to ONNX and to LiteRT (float32), and each of the three run on
one clip at a time: Keras ``predict_on_batch``, an ONNX Runtime session and the LiteRT
interpreter, both with as many threads as the machine has CPUs. The time per clip is the median
of ``reps`` calls after two warm-up calls, the three runtimes' calls interleaved (the order
rotating each round) so that load from other processes falls on all alike. Reported per
backbone: the median and every call (seconds), clips/s, the speed-up over Keras, the export time
and file size, and the largest difference of the probabilities from Keras on that clip.

Usage: python bench/export.py [--out bench/export.json] [--backbones x3d_xs,i3d] [--frames 16]
       [--size 56] [--reps 15]; ``bench/run.py`` runs it too (``--skip export`` leaves it out).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

import vsfusion  # noqa: E402,F401  (turns oneDNN on before TensorFlow loads)

RUNTIMES: tuple[str, ...] = ("keras", "onnx", "litert")
LABELS = {"keras": "Keras (TensorFlow)", "onnx": "ONNX Runtime", "litert": "LiteRT"}


def build_deploy_model(backbone: str, frames: int, size: int, num_classes: int = 8):
    """The fusion stage's ``deploy.keras`` architecture on ``backbone``, with random weights:
    video in, the weighted fusion of the video and generated-sensor probabilities out."""
    from vsfusion.fusion import FusionSelection, build_fused_predictor
    from vsfusion.models import (
        backbone_spec,
        build_backbone,
        build_generator_head,
        build_inception_time,
        split_classifier,
    )
    from vsfusion.stages.fusion import build_fused_model

    video = build_backbone(backbone, (frames, size, size, 3), num_classes=num_classes)
    _, sensor_head = split_classifier(build_inception_time((128, 6), num_classes=num_classes))
    generator = build_generator_head(backbone_spec(backbone).embed_dim, 128)
    fused = build_fused_model(video, generator, sensor_head)
    weights = {"video": 0.6, "generated_sensor": 0.4}
    selection = FusionSelection("weighted", {}, weights, None, None, "validation", {})
    probs = {"video": "video_probs", "generated_sensor": "generated_probs"}
    return build_fused_predictor(fused, selection, probs, name="deploy")


def bench_backbone(backbone: str, frames: int, size: int, reps: int, threads: int) -> dict:
    """Latency per clip of one backbone's fused model in Keras, ONNX Runtime and LiteRT."""
    import keras
    from run import _interleaved_times  # bench/run.py: the interleaved timing of every bench

    from vsfusion.export import ARTIFACTS, export_model, keras_predict, load_exported

    keras.utils.set_random_seed(0)
    model = build_deploy_model(backbone, frames, size)
    x = {"video": np.random.default_rng(0).uniform(0, 255, (1, frames, size, size, 3))}
    x["video"] = x["video"].astype("float32")
    reference = keras_predict(model, x)
    out: dict = {"backbone": backbone, "clip": [frames, size, size, 3], "threads": threads}
    fns = {"keras": lambda: model.predict_on_batch(x)}
    out["export_s"], out["size_mib"], out["max_abs_diff"] = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("onnx", "litert"):
            path = Path(tmp) / ARTIFACTS[fmt]
            start = time.perf_counter()
            export_model(model, path, fmt)
            out["export_s"][fmt] = round(time.perf_counter() - start, 1)
            out["size_mib"][fmt] = round(path.stat().st_size / 2**20, 1)
            runner = load_exported(path, fmt, threads=threads)
            out["max_abs_diff"][fmt] = float(np.abs(runner(x) - reference).max())
            fns[fmt] = lambda runner=runner: runner(x)
        times = _interleaved_times(fns, reps)
    median = {name: statistics.median(t) for name, t in times.items()}
    out.update(
        reps=reps,
        timing=f"batch 1, median of {reps} interleaved calls after 2 warm-up calls",
        clip_s={name: round(t, 5) for name, t in median.items()},
        times_s={name: [round(t, 5) for t in ts] for name, ts in times.items()},
        clips_per_s={name: round(1 / t, 2) for name, t in median.items()},
        speedup_vs_keras={name: round(median["keras"] / t, 2) for name, t in median.items()},
    )
    return out


def bench_export(
    backbones: tuple[str, ...] = ("x3d_xs", "i3d"),
    frames: int = 16,
    size: int = 56,
    reps: int = 15,
    threads: int | None = None,
) -> dict:
    """Latency per clip of the fused model of each backbone in each runtime (see the module).

    Returns:
        ``{"machine": ..., "runs": [one dict per backbone]}``, JSON-able.

    Example:
        >>> result = bench_export(("i3d",), frames=8, size=32, reps=3)  # doctest: +SKIP
        >>> sorted(result["runs"][0]["clip_s"])  # doctest: +SKIP
        ['keras', 'litert', 'onnx']
    """
    from vsfusion.export import export_versions
    from vsfusion.runtime import machine_info

    threads = threads or os.cpu_count() or 1
    runs = []
    for backbone in backbones:
        runs.append(bench_backbone(backbone, frames, size, reps, threads))
        print(json.dumps(runs[-1]["clip_s"]), file=sys.stderr, flush=True)
    return {"machine": machine_info(), "versions": export_versions(), "runs": runs}


def markdown_lines(result: dict | None) -> list[str]:
    """The latency table of :func:`bench_export` as Markdown lines (empty without a result)."""
    if not result or not result.get("runs"):
        return []
    first = result["runs"][0]
    m = result["machine"]
    lines = [
        "",
        f"Fused model (deploy.keras architecture, random weights) per clip on {m['cpu_model']} "
        f"({first['threads']} threads; {first['timing']}):",
        "",
        "| backbone | clip | runtime | ms/clip | clips/s | vs Keras | export s | MiB | max diff |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        clip = "x".join(str(d) for d in r["clip"][:3])
        for name in RUNTIMES:
            lines.append(
                f"| {r['backbone']} | {clip} | {LABELS[name]} | {1000 * r['clip_s'][name]:.1f} | "
                f"{r['clips_per_s'][name]} | {r['speedup_vs_keras'][name]:.2f}x | "
                f"{r['export_s'].get(name, '-')} | {r['size_mib'].get(name, '-')} | "
                f"{r['max_abs_diff'].get(name, 0.0):.1e} |"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/export.json")
    parser.add_argument("--backbones", default="x3d_xs,i3d")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=56, help="crop size (the demo's is 56)")
    parser.add_argument("--reps", type=int, default=15)
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    result = bench_export(tuple(args.backbones.split(",")), args.frames, args.size, args.reps)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    text = "\n".join(markdown_lines(result)).strip() + "\n"
    for path, content in (
        (out, json.dumps(result, indent=2) + "\n"),
        (out.with_suffix(".md"), text),
    ):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(content)
        tmp.replace(path)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
