#!/usr/bin/env python
"""Input-pipeline benchmarks: is data preparation fast, and is the loader never the bottleneck?

1. Preparation throughput (videos/s): ``vsfusion.data.video.process_folder`` (sequential grab,
   retrieve only the kept frames, parallel worker processes) against a plain baseline that decodes
   every frame with ``cv2.VideoCapture.read`` in one process and then samples.
2. Loader throughput (clips/s): ``ClipLoader`` with training augmentation against the I3D training
   step rate at the same clip shape (clips/s of ``train_on_batch``).

Videos are synthesised (deterministic, 640x480 mp4, 3 s at 30 fps) so the benchmark needs no data.
Writes a JSON file (default bench/results.json) and prints it.

Usage: python bench/run.py [--out bench/results.json] [--videos 48] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cv2  # noqa: E402
import numpy as np  # noqa: E402


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
    from vsfusion.data.video import process_folder

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        paths = write_videos(src, n_videos)
        base_s = baseline_decode_all(paths, num_frames, size)
        out = {}
        for w in sorted({1, workers}):
            dst = Path(tmp) / f"dst{w}"
            start = time.perf_counter()
            result = process_folder(src, dst, num_frames=num_frames, size=size, workers=w)
            seconds = time.perf_counter() - start
            assert not result.failed, result.failed
            out[f"process_folder_workers{w}_videos_per_s"] = round(n_videos / seconds, 2)
        out["baseline_sequential_decode_all_videos_per_s"] = round(n_videos / base_s, 2)
        out["speedup_vs_baseline"] = round(
            out[f"process_folder_workers{workers}_videos_per_s"]
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


def bench_loader(num_frames: int, crop: int, batch_size: int, steps: int) -> dict:
    import keras

    from vsfusion.data import ClipLoader
    from vsfusion.data.demo import load
    from vsfusion.models import build_i3d

    with tempfile.TemporaryDirectory() as tmp:
        manifest = load(Path(tmp) / "demo", seed=0)
        rows = manifest.split("train")
        loader = ClipLoader(
            rows,
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
        loader_rate = n / (time.perf_counter() - start)

        keras.utils.set_random_seed(0)
        model = build_i3d((num_frames, crop, crop, 3), num_classes=len(manifest.classes))
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        x, y = loader[0]
        batch = {"video": x["video"]}
        model.train_on_batch(batch, y)  # tracing
        start = time.perf_counter()
        for _ in range(steps):
            model.train_on_batch(batch, y)
        step_rate = steps * len(y) / (time.perf_counter() - start)
    return {
        "loader_clips_per_s": round(loader_rate, 1),
        "i3d_train_clips_per_s": round(step_rate, 2),
        "loader_to_train_ratio": round(loader_rate / step_rate, 1),
        "clip_shape": [num_frames, crop, crop, 3],
        "batch_size": batch_size,
        "backend": keras.backend.backend(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench/results.json")
    parser.add_argument(
        "--videos",
        type=int,
        default=48,
        help="synthetic clips (spawn start-up needs ~30 to amortise)",
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5, help="I3D training steps timed")
    args = parser.parse_args(argv)
    results = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "preparation": bench_preparation(args.videos, args.workers, num_frames=32, size=128),
        "loader_demo_16x56": bench_loader(16, 56, batch_size=8, steps=args.steps),
        "loader_demo_16x112": bench_loader(16, 112, batch_size=4, steps=args.steps),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=2) + "\n")
    tmp.replace(out)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
