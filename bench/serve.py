"""Benchmark of serve.py's page, against 127.0.0.1 only (``bench/run.py``, ``--skip serve``).

1. Upload: wall time for ``POST /api/predict`` (the page's upload) to answer a clip, median of
   ``uploads`` requests after one warm-up, for each clip given (the demo's own clip, and a 3 s
   640x480 camera-like clip); target under 3 s.
2. Live load: ``clients`` WebSocket clients stream JPEG frames (``frame_side`` px, cycling through
   a clip's frames) at ``fps`` each for ``seconds``, as the page does. Reported: connections
   dropped (target 0), frames sent, predictions and errors answered, the times the server
   reports per prediction (window read to answer, and the wait for a free model before the
   window is read), ``GET /api/info`` round trips
   probed once a second meanwhile (the event loop's responsiveness), and the server's resident
   memory before the load, at its end and its peak (target: end at most 1.5x the start).

The server is ``python serve.py RUN --port 0`` in a child process
(:class:`vsfusion.server.client.ServerProcess`), unless ``url`` and ``pid`` name one already
running. :func:`train_demo_run` makes a run to serve when none is given: the demo dataset, one
epoch per stage (the weights do not matter for timing), the demo's clip (16x56x56, I3D).

Example:
    >>> result = bench_serve("checkpoints/demo/fusion/latest", {"demo": "clip.mp4"},
    ...                      clients=3, seconds=5)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import json
import statistics
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vsfusion.server.client import (  # noqa: E402
    ServerProcess,
    encode_frame,
    memory_mb,
    post_clip,
)

#: The targets of the task: upload answer (s), dropped connections, memory growth (end/start).
TARGETS = {"upload_s": 3.0, "dropped": 0, "rss_growth": 1.5}


def train_demo_run(folder: Path, seed: int = 0) -> Path:
    """A fusion run of the demo dataset to serve: one epoch per stage, the demo's clip size.

    Returns:
        The fusion run folder (``<folder>/checkpoints/demo/fusion/serve``).
    """
    import train_sensor
    import train_video
    import training_generator
    import valid_generator

    ck = folder / "checkpoints"
    args = ["--dataset", "demo", "--data_root", str(folder / "demo"), "--checkpoints", str(ck)]
    args += ["--seed", str(seed), "--verbose", "0", "--run_name", "serve"]
    steps = [
        (train_sensor, ["--epoch", "1"]),
        (train_video, ["--epoch", "1", "--num_frames", "16", "--crop_size", "56"]),
        (training_generator, ["--epoch", "1"]),
        (valid_generator, ["--mlp_epochs", "2"]),
    ]
    for module, extra in steps:
        if module.main([*args, *extra]) != 0:
            raise RuntimeError(f"{module.__name__} failed while making the demo run to serve")
    return ck / "demo" / "fusion" / "serve"


def write_demo_clip(run_data: Path, out: Path, fps: int = 8) -> Path:
    """The first test clip of the demo dataset (``run_data``: its folder) as an mp4."""
    import pandas as pd

    row = pd.read_csv(run_data / "test.csv").iloc[0]
    clip = np.load(run_data / "video" / row["file"])
    writer = cv2.VideoWriter(str(out), cv2.VideoWriter_fourcc(*"mp4v"), fps, clip.shape[1:3][::-1])
    for frame in clip:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    return out


def _frames(path: Path, side: int) -> list[bytes]:
    """The clip's frames as JPEGs with the longer side ``side`` (what the page sends)."""
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        h, w = frame.shape[:2]
        scale = side / max(h, w)
        small = cv2.resize(
            frame, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA
        )
        frames.append(encode_frame(cv2.cvtColor(small, cv2.COLOR_BGR2RGB)))
    cap.release()
    if not frames:
        raise RuntimeError(f"{path}: no frames")
    return frames


def _stats(values: list[float], digits: int = 3) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "median": round(statistics.median(ordered), digits),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], digits),
        "max": round(ordered[-1], digits),
    }


def bench_upload(url: str, clip: Path, uploads: int) -> dict[str, Any]:
    """Wall time of the upload endpoint for one clip: one warm-up, then ``uploads`` timed."""
    status, body = post_clip(url, clip)
    if status != 200:
        raise RuntimeError(f"upload of {clip} failed: {status} {body}")
    wall, server = [], []
    for _ in range(uploads):
        start = time.perf_counter()
        status, body = post_clip(url, clip)
        wall.append(time.perf_counter() - start)
        if status != 200:
            raise RuntimeError(f"upload of {clip} failed: {status} {body}")
        server.append(body["seconds"])
    return {
        "clip": clip.name,
        "bytes": clip.stat().st_size,
        "uploads": uploads,
        "median_s": round(statistics.median(wall), 3),
        "min_s": round(min(wall), 3),
        "max_s": round(max(wall), 3),
        "server_median_s": round(statistics.median(server), 3),
        "models": sorted(body["results"]),
    }


async def _client(url: str, frames: list[bytes], seconds: float, fps: float) -> dict[str, Any]:
    """One live client: frames at ``fps`` for ``seconds``, answers counted."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    out: dict[str, Any] = {"sent": 0, "predictions": 0, "errors": 0, "latency": [], "waited": []}
    out["dropped"] = None
    try:
        async with connect(url, max_size=2**24, open_timeout=30) as ws:
            hello = json.loads(await ws.recv())
            out["window"] = hello.get("window")

            async def receive() -> None:
                async for text in ws:
                    message = json.loads(text)
                    if message["type"] == "prediction":
                        out["predictions"] += 1
                        out["latency"].append(message["seconds"])
                        out["waited"].append(message["waited"])
                    elif message["type"] == "error":
                        out["errors"] += 1
                        out.setdefault("error", message["message"])

            reader = asyncio.create_task(receive())
            start = time.monotonic()
            for i in range(int(seconds * fps)):
                await ws.send(frames[i % len(frames)])
                out["sent"] += 1
                await asyncio.sleep(max(0.0, start + (i + 1) / fps - time.monotonic()))
            await asyncio.sleep(1.0)  # answers still in flight
            reader.cancel()
    except (ConnectionClosed, OSError, TimeoutError) as exc:
        out["dropped"] = f"{type(exc).__name__}: {exc}"
    return out


def _probe(url: str, stop: threading.Event, out: list[float], server: Any, mem: list) -> None:
    """``GET /api/info`` round trips and the server's memory, once a second until ``stop``."""
    while not stop.wait(1.0):
        start = time.perf_counter()
        try:
            with urllib.request.urlopen(url + "/api/info", timeout=30) as response:
                response.read()
            out.append(time.perf_counter() - start)
        except OSError:
            out.append(float("inf"))
        if server is not None:
            mem.append(server())


def bench_live(
    url: str,
    frames: list[bytes],
    *,
    clients: int,
    seconds: float,
    fps: float,
    memory: Any = None,
) -> dict[str, Any]:
    """``clients`` concurrent live streams for ``seconds``; ``memory()``: the server's MB."""
    ws_url = url.replace("http://", "ws://") + "/ws/live"
    probes: list[float] = []
    samples: list[dict[str, float]] = []
    stop = threading.Event()
    start_mem = memory() if memory else {}
    prober = threading.Thread(target=_probe, args=(url, stop, probes, memory, samples))
    prober.start()

    async def main() -> list[dict[str, Any]]:
        return await asyncio.gather(
            *(_client(ws_url, frames, seconds, fps) for _ in range(clients))
        )

    start = time.perf_counter()
    try:  # in a thread of its own: the caller's thread may run an event loop already
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            results = pool.submit(asyncio.run, main()).result()
    finally:
        stop.set()
        prober.join()
    elapsed = time.perf_counter() - start
    time.sleep(1.0)  # the server lets the streams go
    end_mem = memory() if memory else {}
    latency = [x for r in results for x in r["latency"]]
    waited = [x for r in results for x in r["waited"]]
    predictions = sum(r["predictions"] for r in results)
    out: dict[str, Any] = {
        "clients": clients,
        "seconds": seconds,
        "fps_per_client": fps,
        "frame_bytes": round(statistics.mean(len(f) for f in frames)),
        "window": results[0].get("window") if results else None,
        "dropped": sum(r["dropped"] is not None for r in results),
        "drop_reasons": sorted({r["dropped"] for r in results if r["dropped"]}),
        "frames_sent": sum(r["sent"] for r in results),
        "predictions": predictions,
        "predictions_per_s": round(predictions / elapsed, 2),
        "min_predictions_per_client": min((r["predictions"] for r in results), default=0),
        "max_predictions_per_client": max((r["predictions"] for r in results), default=0),
        "errors": sum(r["errors"] for r in results),
        "prediction_latency_s": _stats(latency),
        "prediction_wait_s": _stats(waited),
        "info_round_trip_ms": {k: round(v * 1000, 1) for k, v in _stats(probes, 4).items()},
    }
    if memory:
        peak = max([start_mem, end_mem, *samples], key=lambda m: m.get("rss", 0))
        out["rss_mb"] = {
            "start": round(start_mem["rss"], 1),
            "end": round(end_mem["rss"], 1),
            "peak": round(peak["rss"], 1),
        }
        out["rss_growth"] = round(end_mem["rss"] / start_mem["rss"], 3)
    return out


def bench_serve(
    run: str | Path | None,
    clips: dict[str, Path],
    *,
    uploads: int = 7,
    clients: int = 20,
    seconds: float = 60.0,
    fps: float = 10.0,
    frame_side: int = 320,
    url: str | None = None,
    pid: int | None = None,
) -> dict[str, Any]:
    """Both measurements against a served run; a JSON-able dict.

    Args:
        run: The fusion run to serve (ignored when ``url`` is given).
        clips: Name -> video file, each timed through the upload endpoint; the last one also
            supplies the live stream's frames.
        uploads: Timed uploads per clip (after one warm-up).
        clients: Concurrent WebSocket clients of the live load.
        seconds: How long each client streams.
        fps: Frames per second each client sends.
        frame_side: Longer side of the sent frames (the page sends 320).
        url: A server already running on 127.0.0.1 (then ``pid`` for its memory), instead of
            starting one.
        pid: That server's process id.
    """
    from vsfusion.runtime import machine_info

    server = None
    if url is None:
        server = ServerProcess([str(run)])
        url, pid = server.url, server.pid
    if not url.startswith(("http://127.0.0.1:", "http://localhost:")):
        raise ValueError(f"{url}: this benchmark runs against 127.0.0.1 only")
    try:
        memory = functools.partial(memory_mb, pid) if pid is not None else None
        with urllib.request.urlopen(url + "/api/info", timeout=30) as response:
            info = json.loads(response.read())
        machine = machine_info()
        result: dict[str, Any] = {
            "cpu_model": machine["cpu_model"],
            "cpus": machine["cpus"],
            "run": info["run"],
            "window": info["window"],
            "every": info["every"],
            "sensor": info["sensor"],
            "upload": [bench_upload(url, Path(c), uploads) | {"name": n} for n, c in clips.items()],
        }
        frames = _frames(Path(list(clips.values())[-1]), frame_side)
        result["live"] = bench_live(
            url, frames, clients=clients, seconds=seconds, fps=fps, memory=memory
        )
    finally:
        if server is not None:
            server.stop()
    live = result["live"]
    result["targets"] = dict(TARGETS)
    result["meets"] = {
        "upload_s": all(u["median_s"] < TARGETS["upload_s"] for u in result["upload"]),
        "dropped": live["dropped"] <= TARGETS["dropped"],
    }
    if "rss_growth" in live:
        result["meets"]["rss_growth"] = live["rss_growth"] <= TARGETS["rss_growth"]
    return result


def markdown(result: dict[str, Any]) -> list[str]:
    """The serve benchmark as Markdown lines (bench/run.py's report)."""
    live = result["live"]
    lines = [
        "",
        f"serve.py on 127.0.0.1 (run {result['run']}, live window {result['window']} frames, a "
        f"prediction every {result['every']} frames; {result['cpu_model']}, {result['cpus']} "
        "threads):",
        "",
        "| upload | size | median answer | min | max | in the server | target | met |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for u in result["upload"]:
        met = "yes" if u["median_s"] < TARGETS["upload_s"] else "**no**"
        lines.append(
            f"| {u['name']} ({u['clip']}) | {u['bytes'] / 1024:.0f} kB | {u['median_s']} s | "
            f"{u['min_s']} s | {u['max_s']} s | {u['server_median_s']} s | "
            f"< {TARGETS['upload_s']:g} s | {met} |"
        )
    lat, wait = live["prediction_latency_s"], live["prediction_wait_s"]
    probe = live["info_round_trip_ms"]
    lines += [
        "",
        f"Live load: {live['clients']} WebSocket clients x {live['fps_per_client']:g} frames/s "
        f"({live['frame_bytes'] / 1024:.1f} kB JPEGs) for {live['seconds']:g} s: "
        f"{live['dropped']} connections dropped (target 0), {live['frames_sent']} frames sent, "
        f"{live['predictions']} predictions answered ({live['predictions_per_s']}/s; "
        f"{live['min_predictions_per_client']}-{live['max_predictions_per_client']} per client), "
        f"{live['errors']} errors; window read "
        f"to answer median {lat.get('median')} s (p95 {lat.get('p95')} s), after waiting for a "
        f"free model a median {wait.get('median')} s (p95 {wait.get('p95')} s); GET /api/info "
        f"meanwhile median {probe.get('median')} ms, max {probe.get('max')} ms.",
    ]
    if "rss_mb" in live:
        rss = live["rss_mb"]
        lines[-1] += (
            f" Server memory {rss['start']} MB before, {rss['end']} MB after (peak {rss['peak']} "
            f"MB): {live['rss_growth']}x (target <= {TARGETS['rss_growth']}x)."
        )
    return lines


def serve_benchmark(
    folder: Path,
    camera_clip: Path,
    run: str | Path | None = None,
    *,
    clients: int = 20,
    seconds: float = 60.0,
    uploads: int = 7,
) -> dict[str, Any]:
    """bench/run.py's entry: the demo data in ``folder`` (made here), ``run`` or a demo run
    trained for it (:func:`train_demo_run`), the demo's clip and ``camera_clip`` uploaded, the
    camera clip's frames streamed."""
    from vsfusion.data import demo

    if run is None:
        run = train_demo_run(folder)
    else:
        demo.load(folder / "demo", seed=0)
    clips = {"demo clip": write_demo_clip(folder / "demo", folder / "demo_clip.mp4")}
    clips["camera clip"] = Path(camera_clip)
    return bench_serve(run, clips, uploads=uploads, clients=clients, seconds=seconds)
