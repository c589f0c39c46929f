#!/usr/bin/env python
"""Benchmarks: how fast each stage's work runs here, and how far it is from what the CPU can do.

1. Machine: CPU model, SIMD level, threads, oneDNN state, and the peak: float32 matmul GFLOP/s on
   all cores (best of several 2048x2048 products with NumPy's BLAS and with the Keras backend's
   matmul, oneDNN under TensorFlow; the higher counts), measured in the same run.
2. Backbones (each in a child process, so that the oneDNN setting is its own): for every video
   backbone at the demo clip (16x56x56) and at 16x112x112, forward (inference) and training
   clips/s, achieved GFLOP/s (2 x the papers' multiply-adds per clip; training counted as 3x the
   forward) and its ratio to the peak. I3D's training step also runs with oneDNN off
   (``TF_ENABLE_ONEDNN_OPTS=0``, TensorFlow's default on CPUs without AVX-512 VNNI/BF16 or AMX)
   to give the speed-up of this toolkit's default.
3. Fused model at test time (in the same child process): the fusion stage's deployable model,
   ``vsfusion.stages.fusion.build_fused_model``, built synthetically (``--fused_backbone``
   classifier, ``build_generator_head(embed_dim, 128)``, the head of a 128-d InceptionTime sensor
   classifier), against one pass of the video classifier alone, at every clip size with batch 8:
   inference clips/s of (a) the video classifier, (b) the fused model whose generator shares the
   video trunk and (c) the fused model whose generator has its own trunk of the same backbone.
   Each time is the median of ``--reps`` ``predict_on_batch`` calls after two warm-up calls, the
   three models' calls interleaved (the order rotating each round) so that load from other
   processes falls on all three alike. Reported: the ratios fused / video time and whether each
   meets the project's targets, at most 1.2x with the shared trunk and 2.1x with its own.
4. Preparation throughput (videos/s): ``vsfusion.data.processed.prepare_videos`` (that is,
   ``build_cache``) against a plain baseline that decodes every frame with
   ``cv2.VideoCapture.read`` and then samples.
5. Loader throughput (clips/s, training augmentation) against the fastest training step at the
   same clip size.
6. Exported fused model (``bench/export.py``, in this process): CPU latency per clip, batch 1, of
   the fused model of ``--export_backbones`` at the smallest clip size in Keras, ONNX Runtime and
   LiteRT.
7. ``predict.py`` end to end on one 3 s clip with the light backbone's fused model, against the
   2 s target (``bench/predict.py``).
8. serve.py's page on 127.0.0.1 (``bench/serve.py``): upload answer time and a bounded live load
   (``--serve_clients`` WebSocket clients for ``--serve_seconds``), on ``--serve_run`` or a demo
   run trained for it.

``--imitate avx2`` caps oneDNN at AVX2 (``ONEDNN_MAX_CPU_ISA``) and OpenBLAS at its Haswell kernels
(``OPENBLAS_CORETYPE``) in the child processes, to measure on an AVX-512 machine what a CPU
without AVX-512 would do; the figures are then labelled so. Videos are synthesised
(deterministic, 640x480 mp4, 3 s at 30 fps), so nothing is downloaded.
Writes ``--out`` (JSON) and the same path with ``.md`` (Markdown tables) and prints the tables.

Usage: python bench/run.py [--out bench/results.json] [--videos 48] [--imitate avx2]
       [--backbones i3d,x3d_xs,r2plus1d_18] [--sizes 56,112] [--frames 16]
       [--fused_backbone i3d] [--reps 15] [--export_backbones x3d_xs,i3d]
       [--skip backbones,onednn,fused,prep,loader,export,predict,serve,distribute]
       [--serve_run RUN] [--serve_clients 20] [--serve_seconds 60]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402

import vsfusion  # noqa: E402,F401  (turns oneDNN on before TensorFlow loads)

if TYPE_CHECKING:
    import keras


def write_videos(folder: Path, n: int, seconds: float = 3.0, fps: int = 30) -> list[Path]:
    """n deterministic 640x480 mp4 clips of a moving square over noise."""
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        path = folder / f"clip_{i:03d}.mp4"
        writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (640, 480))
        base = rng.integers(0, 120, (480, 640, 3), dtype=np.uint8)
        for t in range(int(seconds * fps)):
            frame = base.copy()
            x = 40 + (t * 13 + i * 29) % 520
            frame[200:280, x : x + 80] = (30, 200, 240)
            writer.write(frame)
        writer.release()
        paths.append(path)
    return paths


def baseline_decode_all(paths: list[Path], num_frames: int, size: int) -> float:
    """Plain sequential: read every frame, then sample, resize, crop. Returns seconds."""
    from vsfusion.data.video import center_crop, resize_shorter, uniform_indices

    start = time.perf_counter()
    for path in paths:
        cap = cv2.VideoCapture(str(path))
        frames = []
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
        cap.release()
        clip = np.stack(frames)[uniform_indices(len(frames), num_frames)]
        center_crop(resize_shorter(clip, size), size)
    return time.perf_counter() - start


def bench_preparation(n_videos: int, workers: int, num_frames: int, size: int) -> dict:
    from vsfusion.data.processed import prepare_videos

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        paths = write_videos(src, n_videos)
        base_s = baseline_decode_all(paths, num_frames, size)
        out = {}
        for w in sorted({1, workers}):
            dst = Path(tmp) / f"dst{w}"
            start = time.perf_counter()
            result = prepare_videos(src, dst, num_frames=num_frames, size=size, workers=w)
            seconds = time.perf_counter() - start
            assert not result.attrs["failed"], result.attrs["failed"]
            out[f"prepare_videos_workers{w}_videos_per_s"] = round(n_videos / seconds, 2)
        out["baseline_sequential_decode_all_videos_per_s"] = round(n_videos / base_s, 2)
        out["speedup_vs_baseline"] = round(
            out[f"prepare_videos_workers{workers}_videos_per_s"]
            / out["baseline_sequential_decode_all_videos_per_s"],
            2,
        )
        out.update(
            {
                "videos": n_videos,
                "source": "640x480 mp4v, 3 s at 30 fps",
                "num_frames": num_frames,
                "size": size,
            }
        )
        return out


def bench_loader(num_frames: int, crop: int, batch_size: int) -> dict:
    """Clips/s of ``ClipLoader`` over the demo's training split with training augmentation."""
    from vsfusion.data import ClipLoader
    from vsfusion.data.demo import load

    with tempfile.TemporaryDirectory() as tmp:
        manifest = load(Path(tmp) / "demo", seed=0)
        loader = ClipLoader(
            manifest.split("train"),
            manifest.classes,
            modalities=("video", "sensor"),
            batch_size=batch_size,
            shuffle=True,
            train=True,
            num_frames=num_frames,
            crop_size=crop,
            flip=True,
        )
        loader[0]  # warm the page cache
        start = time.perf_counter()
        n = 0
        for _epoch in range(2):
            for i in range(len(loader)):
                n += len(loader[i][1])
            loader.on_epoch_end()
        rate = n / (time.perf_counter() - start)
    return {"clip": [num_frames, crop, crop, 3], "loader_clips_per_s": round(rate, 1)}


def peak_gflops(n: int = 2048, repeats: int = 7) -> dict[str, float]:
    """Best float32 matmul rate on all cores (GFLOP/s), the ceiling this run compares to: NumPy's
    BLAS and the Keras backend's own matmul (oneDNN under TensorFlow), and the higher of the two."""
    import keras

    rng = np.random.default_rng(0)
    a = rng.random((n, n), dtype=np.float32)
    b = rng.random((n, n), dtype=np.float32)
    ka, kb = keras.ops.convert_to_tensor(a), keras.ops.convert_to_tensor(b)
    rates = {}
    for name, fn in (
        ("numpy", lambda: a @ b),
        ("keras", lambda: keras.ops.convert_to_numpy(keras.ops.matmul(ka, kb))),
    ):
        fn()  # warm-up: thread pool start, page faults
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
        rates[name] = round(2 * n**3 / best / 1e9, 1)
    rates["peak"] = max(rates.values())
    return rates


def _time(fn, steps: int, warmup: int = 2) -> float:
    for _ in range(warmup):  # the first call traces the graph
        fn()
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def bench_backbone(name: str, frames: int, size: int, batch: int, steps: int, train: bool) -> dict:
    """Forward and (optionally) training clips/s of one backbone on random clips."""
    import keras

    from vsfusion.models import build_backbone, count_macs

    keras.utils.set_random_seed(0)
    model = build_backbone(name, (frames, size, size, 3), num_classes=8)
    x = {"video": np.random.default_rng(0).uniform(0, 255, (batch, frames, size, size, 3))}
    x["video"] = x["video"].astype("float32")
    y = np.arange(batch) % 8
    macs = count_macs(model)
    out = {
        "backbone": name,
        "clip": [frames, size, size, 3],
        "batch": batch,
        "gmacs_per_clip": round(macs / 1e9, 3),
        "params_m": round(model.count_params() / 1e6, 2),
    }
    fwd = _time(lambda: model.predict_on_batch(x), steps)
    out["forward_clips_per_s"] = round(batch / fwd, 2)
    out["forward_gflops_per_s"] = round(2 * macs * batch / fwd / 1e9, 1)
    if train:
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        step = _time(lambda: model.train_on_batch(x, y), steps)
        out["train_clips_per_s"] = round(batch / step, 2)
        out["train_step_s"] = round(step, 3)
        out["train_gflops_per_s"] = round(3 * 2 * macs * batch / step / 1e9, 1)
    return out


#: What ``--skip`` can leave out.
SKIPS = (
    "backbones",
    "onednn",
    "fused",
    "prep",
    "loader",
    "export",
    "predict",
    "serve",
    "distribute",
)


def _predict_bench():  # noqa: ANN202 - the module bench/predict.py
    """``bench/predict.py`` (7. in the docstring), loaded by path: ``predict`` is also the CLI."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_predict", Path(__file__).with_name("predict.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: The fused models compared with one video classifier pass, and the most time each may take
#: relative to it (the project's targets for the fusion stage's model at test time).
FUSED_TARGETS: dict[str, float] = {"fused_shared": 1.2, "fused_own": 2.1}
FUSED_LABELS: dict[str, str] = {
    "video": "video classifier",
    "fused_shared": "fused, shared trunk",
    "fused_own": "fused, own trunk",
}


def build_fused_models(
    backbone: str, frames: int, size: int, num_classes: int = 8
) -> dict[str, keras.Model]:
    """The video classifier and the two fused models of the fusion stage built on it.

    The pieces are synthetic (random weights) with the fusion stage's architecture: the video
    classifier ``backbone`` with ``num_classes`` classes, the generator head from its embedding to
    128-d, the head of a 128-d InceptionTime sensor classifier, and for the own-trunk variant a
    second trunk of the same backbone named ``generator_trunk``.

    Args:
        backbone: A key of ``vsfusion.models.BACKBONES``.
        frames: Frames per clip.
        size: Height and width of the clip.
        num_classes: Classes of the video and sensor classifiers.

    Returns:
        ``{"video": classifier, "fused_shared": model, "fused_own": model}``; the fused models
        share the classifier's layers (and the generator and sensor heads) rather than copy them.
    """
    from vsfusion.models import (
        backbone_spec,
        build_backbone,
        build_generator_head,
        build_inception_time,
        split_classifier,
    )
    from vsfusion.stages.fusion import build_fused_model

    clip = (frames, size, size, 3)
    video = build_backbone(backbone, clip, num_classes=num_classes)
    sensor = build_inception_time((128, 6), num_classes=num_classes)
    _, sensor_head = split_classifier(sensor)
    generator_head = build_generator_head(backbone_spec(backbone).embed_dim, 128)
    own_trunk = build_backbone(backbone, clip, name="generator_trunk")
    return {
        "video": video,
        "fused_shared": build_fused_model(video, generator_head, sensor_head),
        "fused_own": build_fused_model(video, generator_head, sensor_head, own_trunk),
    }


def _interleaved_times(
    fns: dict[str, Callable[[], object]], reps: int, warmup: int = 2
) -> dict[str, list[float]]:
    """Seconds of ``reps`` calls of each function, the functions' calls interleaved.

    Every function is first called ``warmup`` times (the first call traces the graph). Each round
    then calls every function once, the order rotated by one each round, so that a slow spell of
    the machine (another process, frequency changes) falls on all of them alike.
    """
    names = list(fns)
    for name in names:
        for _ in range(warmup):
            fns[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            start = time.perf_counter()
            fns[name]()
            times[name].append(time.perf_counter() - start)
    return times


def bench_fused(backbone: str, frames: int, size: int, batch: int, reps: int) -> dict:
    """Inference time of the fused models against one pass of the video classifier alone.

    Args:
        backbone: Video backbone of the classifier and of the generator's own trunk.
        frames: Frames per clip.
        size: Height and width of the clip.
        batch: Clips per ``predict_on_batch`` call.
        reps: Timed calls per model; each time reported is their median.

    Returns:
        Per model (``video``, ``fused_shared``, ``fused_own``): the median seconds per batch
        (``batch_s``), every timed call (``times_s``), ``clips_per_s`` and multiply-adds per clip
        (``gmacs_per_clip``); per fused model the ratio of its median to the video classifier's
        (``ratio_to_video``), its ``target`` and whether the ratio meets it (``meets_target``).
    """
    import keras

    from vsfusion.models import count_macs

    keras.utils.set_random_seed(0)
    models = build_fused_models(backbone, frames, size)
    x = {"video": np.random.default_rng(0).uniform(0, 255, (batch, frames, size, size, 3))}
    x["video"] = x["video"].astype("float32")
    times = _interleaved_times(
        {name: (lambda m=m: m.predict_on_batch(x)) for name, m in models.items()}, reps
    )
    median = {name: statistics.median(t) for name, t in times.items()}
    ratio = {name: median[name] / median["video"] for name in FUSED_TARGETS}
    return {
        "backbone": backbone,
        "clip": [frames, size, size, 3],
        "batch": batch,
        "reps": reps,
        "timing": f"median of {reps} interleaved predict_on_batch calls after 2 warm-up calls",
        "gmacs_per_clip": {n: round(count_macs(m) / 1e9, 3) for n, m in models.items()},
        "batch_s": {name: round(t, 6) for name, t in median.items()},
        "times_s": {name: [round(t, 6) for t in ts] for name, ts in times.items()},
        "clips_per_s": {name: round(batch / t, 2) for name, t in median.items()},
        "ratio_to_video": {name: round(r, 3) for name, r in ratio.items()},
        "target": dict(FUSED_TARGETS),
        "meets_target": {name: bool(ratio[name] <= FUSED_TARGETS[name]) for name in ratio},
    }


def child_main(spec: dict) -> dict:
    """Run inside a child process: machine info, peak, and the requested backbone and fused-model
    benchmarks (each job a ``bench_backbone`` or, with ``"kind": "fused"``, a ``bench_fused``
    keyword dict)."""
    from vsfusion.runtime import machine_info

    peak = peak_gflops()
    results = {"peak_gflops": peak["peak"], "matmul_gflops": peak, "runs": [], "fused": []}
    for job in spec["jobs"]:
        job = dict(job)
        if job.pop("kind", "backbone") == "fused":
            results["fused"].append(bench_fused(**job))
            print(json.dumps(results["fused"][-1]["ratio_to_video"]), file=sys.stderr, flush=True)
        else:
            results["runs"].append(bench_backbone(**job))
            print(json.dumps(results["runs"][-1]), file=sys.stderr, flush=True)
    results["machine"] = machine_info()
    return results


def run_child(jobs: list[dict], env: dict[str, str]) -> dict:
    """Run ``child_main`` in a fresh interpreter with ``env`` added (oneDNN is read at TF import)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json") as out:
        cmd = [sys.executable, __file__, "--child", json.dumps({"jobs": jobs}), "--out", out.name]
        subprocess.run(cmd, env={**os.environ, **env}, check=True)
        return json.loads(Path(out.name).read_text())


def _with_peak(runs: list[dict], peak: float) -> list[dict]:
    for r in runs:
        for kind in ("forward", "train"):
            if f"{kind}_gflops_per_s" in r:
                r[f"{kind}_fraction_of_peak"] = round(r[f"{kind}_gflops_per_s"] / peak, 3)
    return runs


def _fused_markdown(fused: list[dict]) -> list[str]:
    """The fused-model comparison as Markdown: a sentence and one table over every clip size."""
    if not fused:
        return []
    first = fused[0]
    lines = [
        "",
        f"Fused model of the fusion stage at test time against one video classifier pass "
        f"({first['backbone']}, batch {first['batch']}, {first['timing']}; random weights):",
        "",
        "| model | clip | GMACs/clip | clips/s | time / video pass | target | met |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for f in fused:
        clip = "x".join(str(d) for d in f["clip"][:3])
        for name, label in FUSED_LABELS.items():
            ratio = f["ratio_to_video"].get(name, 1.0)
            target = f["target"].get(name)
            met = "-" if target is None else ("yes" if f["meets_target"][name] else "**no**")
            lines.append(
                f"| {label} | {clip} | {f['gmacs_per_clip'][name]} | {f['clips_per_s'][name]} | "
                f"{ratio:.2f}x | {'-' if target is None else f'<= {target}x'} | {met} |"
            )
    return lines


def markdown(results: dict) -> str:
    """The results as Markdown tables (what the README quotes)."""
    m = results["machine"]
    lines = [
        f"CPU: {m['cpu_model']} ({m['simd']}, {m['cpus']} threads)"
        + (f", imitating {results['imitate'].upper()}" if results.get("imitate") else "")
        + f"; oneDNN {'on' if m.get('onednn') else 'off'}; "
        f"peak float32 matmul {results['peak_gflops']} GFLOP/s (NumPy "
        f"{results['matmul_gflops']['numpy']}, Keras backend {results['matmul_gflops']['keras']}).",
    ]
    if results["backbones"]:
        lines += [
            "",
            "| backbone | clip | GMACs/clip | forward clips/s | train clips/s | train GFLOP/s "
            "| of peak |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
    for r in results["backbones"]:
        clip = "x".join(str(d) for d in r["clip"][:3])
        lines.append(
            f"| {r['backbone']} | {clip} | {r['gmacs_per_clip']} | {r['forward_clips_per_s']} | "
            f"{r.get('train_clips_per_s', '-')} | {r.get('train_gflops_per_s', '-')} | "
            f"{r.get('train_fraction_of_peak', 0):.1%} |"
        )
    od = results.get("onednn_speedup")
    if od:
        lines += [
            "",
            f"I3D training step at {'x'.join(map(str, od['clip'][:3]))}, batch {od['batch']}: "
            f"{od['step_s_onednn_off']} s with oneDNN off (TensorFlow's default without AVX-512 "
            f"VNNI), {od['step_s_onednn_on']} s on (this toolkit's default): "
            f"{od['speedup']}x faster.",
        ]
    lines += _fused_markdown(results.get("fused", []))
    ratios = results.get("light_vs_i3d")
    if ratios:
        lines += ["", "Training clips/s relative to I3D at the same clip:"]
        for key, value in ratios.items():
            lines.append(f"- {key}: {value}x")
    prep = results.get("preparation")
    if prep:
        w = max(int(k.split("workers")[1].split("_")[0]) for k in prep if k.startswith("process"))
        lines += [
            "",
            f"Preparation ({prep['videos']} clips, {prep['source']} -> {prep['num_frames']}x"
            f"{prep['size']}): {prep[f'prepare_videos_workers{w}_videos_per_s']} videos/s with "
            f"{w} workers against {prep['baseline_sequential_decode_all_videos_per_s']} videos/s "
            f"for a plain decode of every frame ({prep['speedup_vs_baseline']}x).",
        ]
    for loader in results.get("loader", []):
        lines.append(
            f"Loader at {'x'.join(map(str, loader['clip'][:3]))}: {loader['loader_clips_per_s']} "
            f"clips/s, {loader.get('times_fastest_train_step', '-')}x the fastest training step."
        )
    if results.get("export"):
        from bench import export as export_bench

        lines += export_bench.markdown_lines(results["export"])
    if results.get("predict"):
        lines += ["", _predict_bench().markdown(results["predict"]).rstrip()]
    if results.get("serve"):
        lines += _bench_serve().markdown(results["serve"])
    if results.get("distribute"):
        from bench import distribute as distribute_bench

        lines += distribute_bench.markdown(results["distribute"])
    return "\n".join(lines) + "\n"


def _bench_serve():
    """bench/serve.py (loaded by path: the repository's serve.py has the same module name)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "bench_serve", Path(__file__).with_name("serve.py")
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results.json")
    parser.add_argument(
        "--videos", type=int, default=48, help="synthetic clips (spawn start-up needs ~30)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per backbone measurement")
    # x3d_s is x3d_xs's network (the two differ only in the published clip), so at one clip size
    # it costs exactly the same; pass --backbones to time it anyway
    parser.add_argument("--backbones", default="i3d,x3d_xs,r2plus1d_18")
    parser.add_argument("--sizes", default="56,112", help="crop sizes of the model measurements")
    parser.add_argument("--frames", type=int, default=16, help="frames per clip (models, loader)")
    parser.add_argument(
        "--fused_backbone", default="i3d", help="video backbone of the fused-model comparison"
    )
    parser.add_argument(
        "--reps", type=int, default=15, help="timed calls per model, fused comparison (median)"
    )
    parser.add_argument(
        "--export_backbones", default="x3d_xs,i3d", help="fused models timed after export"
    )
    parser.add_argument("--imitate", choices=("avx2",), default=None)
    parser.add_argument("--skip", default="", help=f"comma-separated: {', '.join(SKIPS)}")
    parser.add_argument("--serve_run", help="fusion run served (default: a demo run made for it)")
    parser.add_argument("--serve_clients", type=int, default=20, help="live WebSocket clients")
    parser.add_argument("--serve_seconds", type=float, default=60, help="live load duration")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    out = Path(args.out)
    if args.child:
        out.write_text(json.dumps(child_main(json.loads(args.child))))
        return 0

    skip = {s for s in args.skip.split(",") if s}
    if skip - set(SKIPS):
        parser.error(f"--skip takes {', '.join(SKIPS)}; got {', '.join(sorted(skip - set(SKIPS)))}")
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    env = {"TF_CPP_MIN_LOG_LEVEL": "3"}
    if args.imitate == "avx2":
        env.update(ONEDNN_MAX_CPU_ISA="AVX2", OPENBLAS_CORETYPE="Haswell")
    sizes = [int(s) for s in args.sizes.split(",")]
    jobs: list[dict] = []
    if "backbones" not in skip:
        base = dict(frames=args.frames, steps=args.steps, train=True)
        jobs += [
            base | dict(name=name, size=size, batch=8 if size <= 64 else 4)
            for size in sizes
            for name in args.backbones.split(",")
        ]
    if "fused" not in skip:
        fused = dict(kind="fused", backbone=args.fused_backbone, frames=args.frames, batch=8)
        jobs += [fused | {"size": size, "reps": args.reps} for size in sizes]
    child = run_child(jobs, {**env, "TF_ENABLE_ONEDNN_OPTS": "1"})
    results: dict = {
        "python": platform.python_version(),
        "imitate": args.imitate,
        "machine": child["machine"],
        "peak_gflops": child["peak_gflops"],
        "matmul_gflops": child["matmul_gflops"],
        "backbones": _with_peak(child["runs"], child["peak_gflops"]),
    }
    if child["fused"]:
        results["fused"] = child["fused"]
    i3d = {tuple(r["clip"]): r for r in results["backbones"] if r["backbone"] == "i3d"}
    results["light_vs_i3d"] = {
        f"{r['backbone']} at {'x'.join(map(str, r['clip'][:3]))}": round(
            r["train_clips_per_s"] / i3d[tuple(r["clip"])]["train_clips_per_s"], 2
        )
        for r in results["backbones"]
        if r["backbone"] != "i3d" and tuple(r["clip"]) in i3d
    }
    if "onednn" not in skip and i3d:
        clip = min(i3d, key=lambda c: c[1])
        off = run_child(
            [dict(name="i3d", frames=clip[0], size=clip[1], batch=8, steps=args.steps, train=True)],
            {**env, "TF_ENABLE_ONEDNN_OPTS": "0"},
        )["runs"][0]
        on_s = i3d[clip]["train_step_s"]
        results["onednn_speedup"] = {
            "clip": list(clip),
            "batch": 8,
            "step_s_onednn_off": off["train_step_s"],
            "step_s_onednn_on": on_s,
            "speedup": round(off["train_step_s"] / on_s, 2),
        }
    if "prep" not in skip:
        results["preparation"] = bench_preparation(
            args.videos, args.workers, num_frames=32, size=128
        )
    if "loader" not in skip:
        results["loader"] = []
        for size in sizes:
            entry = bench_loader(args.frames, size, batch_size=8 if size <= 64 else 4)
            rates = [r["train_clips_per_s"] for r in results["backbones"] if r["clip"][1] == size]
            if rates:
                entry["times_fastest_train_step"] = round(
                    entry["loader_clips_per_s"] / max(rates), 1
                )
            results["loader"].append(entry)
    if "export" not in skip:
        from bench import export as export_bench

        results["export"] = export_bench.bench_export(
            tuple(args.export_backbones.split(",")), args.frames, min(sizes), args.reps
        )
    if "predict" not in skip:
        results["predict"] = _predict_bench().bench_predict(reps=3)
    if "serve" not in skip:
        with tempfile.TemporaryDirectory() as tmp:
            results["serve"] = _bench_serve().serve_benchmark(
                Path(tmp),
                write_videos(Path(tmp), 1)[0],
                args.serve_run,
                clients=args.serve_clients,
                seconds=args.serve_seconds,
            )
    if "distribute" not in skip:
        from bench import distribute as distribute_bench

        results["distribute"] = distribute_bench.bench_distribute(steps=args.steps + 5)
    out.parent.mkdir(parents=True, exist_ok=True)
    from vsfusion.data.io import atomic_write_text

    atomic_write_text(out, json.dumps(results, indent=2) + "\n")
    atomic_write_text(out.with_suffix(".md"), markdown(results))
    print(markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
