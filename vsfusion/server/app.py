"""The served page's application: a clip upload and a live webcam stream, top-5 classes each.

:func:`create_app` wraps a :class:`vsfusion.inference.Predictor` in a FastAPI application:

* ``GET /`` (and ``/page.js``): the page, plain HTML and JavaScript (no build step);
* ``GET /api/info``: the classes, the live window, the limits and the sensor recording given at
  start, which the page reads first;
* ``POST /api/predict``: a multipart form with a ``video`` file (:data:`VIDEO_TYPES`: a video the
  run's reader takes, or a cached clip ``.npy``) and optionally a ``sensor`` file
  (``.csv``/``.npy``); answers
  ``{"results": {"video": [[class, p], ...], "video+sensor": ...}, "seconds": ...}`` (top 5 each;
  ``video+sensor`` when a sensor recording was uploaded or given at start) or ``{"error": "..."}``
  with status 400 (unreadable input), 413 (over ``max_upload_mb``, from the ``Content-Length``
  header or counted while the body streams in) or 500 (a bug; logged with its traceback);
* ``WS /ws/live``: a webcam stream, see :class:`LiveStream`.

Model calls never run on the event loop: each deployable model has its own one-thread executor
(:class:`ModelRunner`), so one model computes one prediction at a time while the loop keeps
answering; frames are decoded in worker threads too. A live stream keeps only its last ``window``
frames and has at most one prediction in flight: frames that arrive meanwhile replace older ones
instead of queueing, so a slow model makes the answers rarer, never the memory grow.

Example:
    >>> from vsfusion.inference import Predictor  # doctest: +SKIP
    >>> app = create_app(Predictor.load("checkpoints/demo/fusion/latest"))  # doctest: +SKIP
    >>> import uvicorn; uvicorn.run(app, host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import contextlib
import functools
import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from vsfusion.data.errors import DataError
from vsfusion.data.video import VIDEO_EXTENSIONS

__all__ = [
    "FRAME_TYPES",
    "MAX_FRAME_BYTES",
    "MAX_FRAME_SIDE",
    "SENSOR_TYPES",
    "TOP_K",
    "VIDEO_TYPES",
    "LiveStream",
    "ModelRunner",
    "create_app",
    "decode_frame",
    "window_length",
]

logger = logging.getLogger(__name__)

TOP_K = 5
"""Classes shown per model."""
MAX_FRAME_BYTES = 4 * 1024 * 1024
"""Largest encoded webcam frame accepted."""
MAX_FRAME_SIDE = 1920
"""Largest side (pixels) of a webcam frame."""
MIN_FRAME_SIDE = 16
#: Magic bytes of the encoded frames the live stream takes.
FRAME_TYPES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}
VIDEO, SENSOR, WITH_SENSOR = "video", "sensor", "video+sensor"
#: Uploads taken: the containers the adapters read (and the browser's recording format), a cached
#: clip; a sensor recording as the readers take it.
VIDEO_TYPES = (*VIDEO_EXTENSIONS, ".webm", ".npy")
SENSOR_TYPES = (".csv", ".npy")
_PAGE_FILES = {"/": ("page.html", "text/html"), "/page.js": ("page.js", "text/javascript")}
_FRAME_HINT = (
    "send each frame as JPEG or PNG bytes (a binary message) or as JSON "
    '{"type": "frame", "image": "<base64 JPEG/PNG or data: URL>"}'
)


def window_length(predictor: Any) -> int:
    """Frames of the live window: as many as the run's reader keeps of a video (the clip length).

    The training cache sampled ``num_frames`` frames of each video; a window of that many webcam
    frames is read as a video of that length would be (every frame kept). Runs whose clips came
    ready-made record no reader; then the model's own input length is used.

    Example:
        >>> class P: info = {"inputs": {"video": {"load": {"num_frames": 8}, "stream": {
        ...     "attrs": {"reader": {"kwargs": {"num_frames": 12}}}}}}}
        >>> window_length(P())
        12
    """
    entry = predictor.info.get("inputs", {}).get(VIDEO, {})
    reader = (entry.get("stream", {}).get("attrs", {}) or {}).get("reader") or {}
    n = (reader.get("kwargs") or {}).get("num_frames") or entry.get("load", {}).get("num_frames")
    if not n:
        from vsfusion.data.video import CACHE_FRAMES

        n = CACHE_FRAMES
    return int(n)


class ModelRunner:
    """Calls of one model, one at a time, in a thread of their own (off the event loop).

    Example:
        >>> runner = ModelRunner("video")
        >>> asyncio.run(runner.run(sum, [1, 2]))
        3
        >>> runner.close()
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"model-{name}")

    async def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fn(*args, **kwargs)`` in this model's thread, after the calls already submitted."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def decode_frame(data: bytes, index: int = 0) -> np.ndarray:
    """One encoded webcam frame (JPEG or PNG bytes) as RGB uint8 ``(H, W, 3)``.

    Raises:
        DataError: Not JPEG/PNG, corrupt, too large, or a side outside 16..1920 pixels.

    Example:
        >>> import cv2
        >>> ok, png = cv2.imencode(".png", np.zeros((24, 32, 3), np.uint8))
        >>> decode_frame(png.tobytes()).shape
        (24, 32, 3)
    """
    import cv2

    from vsfusion.data.video import bgr_to_rgb

    where = f"frame {index}"
    if len(data) > MAX_FRAME_BYTES:
        raise DataError(
            f"{where}: {len(data) / 2**20:.1f} MB, over the {MAX_FRAME_BYTES // 2**20} MB a frame "
            "may take; send smaller frames (e.g. 320x240 JPEG)"
        )
    kind = next((name for magic, name in FRAME_TYPES.items() if data.startswith(magic)), None)
    if kind is None:
        raise DataError(f"{where}: not a JPEG or PNG image ({len(data)} bytes); {_FRAME_HINT}")
    frame = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if frame is None:
        raise DataError(f"{where}: a corrupt {kind} image ({len(data)} bytes); {_FRAME_HINT}")
    h, w = frame.shape[:2]
    if not (MIN_FRAME_SIDE <= min(h, w) and max(h, w) <= MAX_FRAME_SIDE):
        raise DataError(
            f"{where}: {w}x{h} pixels; frames must be {MIN_FRAME_SIDE} to {MAX_FRAME_SIDE} pixels "
            "a side (e.g. 320x240)"
        )
    return bgr_to_rgb(frame)


def _frame_bytes(message: dict[str, Any], index: int) -> bytes | None:
    """The encoded frame of one WebSocket message; None for a ``reset`` message."""
    if message.get("bytes") is not None:
        return message["bytes"]
    text = message.get("text") or ""
    try:
        data = json.loads(text)
    except ValueError:
        raise DataError(
            f"message {index}: not valid JSON ({text[:40]!r}); {_FRAME_HINT}, or "
            '{"type": "reset"} to empty the window'
        ) from None
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "reset":
        return None
    if kind != "frame" or not isinstance(data.get("image"), str):
        raise DataError(
            f"message {index}: a JSON message must be "
            '{"type": "frame", "image": "<base64>"} or {"type": "reset"}'
        )
    image = data["image"]
    if image.startswith("data:"):
        image = image.partition(",")[2]
    try:
        return base64.b64decode(image, validate=True)
    except (binascii.Error, ValueError):
        raise DataError(f"message {index}: the image is not valid base64; {_FRAME_HINT}") from None


class _Snapshot:
    """The live window as it is when the first model's thread reads it (the other model of the
    same prediction gets the same frames), and when that was."""

    def __init__(self, read: Callable[[], tuple[list[np.ndarray], int]]) -> None:
        self._read = read
        self._lock = threading.Lock()
        self.frames: list[np.ndarray] | None = None
        self.index = 0
        self.time = 0.0

    def __call__(self) -> list[np.ndarray]:
        with self._lock:
            if self.frames is None:
                self.frames, self.index = self._read()
                self.time = time.perf_counter()
            return self.frames


class LiveStream:
    """One webcam stream: a sliding window of its last frames and its predictions.

    Every decoded frame joins the window (the oldest leaves once it holds ``window`` frames).
    When the window is full, at least ``every`` frames arrived since the last prediction started
    and none is in flight, a prediction starts. It reads the window only when its model's thread
    is free, so the answer is of the newest frames even when other streams keep the model busy;
    frames arriving meanwhile only move the window on (dropped, not queued).

    Messages sent to the client (JSON): ``{"type": "hello", ...}`` once; ``{"type":
    "prediction", "frame": n, "results": {...}, "seconds": s, "waited": w}`` (``n``: messages
    received when the window was read; ``s``: from then to the answer; ``w``: the wait for a
    free model before); ``{"type": "error", "message": "..."}`` for a malformed message (the
    stream goes on).
    """

    def __init__(self, server: _Server, ws: WebSocket) -> None:
        self.server = server
        self.ws = ws
        self.frames: collections.deque[np.ndarray] = collections.deque(maxlen=server.window)
        self.received = 0
        self.since = 0
        self.task: asyncio.Task | None = None
        self._send_lock = asyncio.Lock()
        self._frames_lock = threading.Lock()  # the models' threads read the window

    def _window(self) -> tuple[list[np.ndarray], int]:
        with self._frames_lock:
            return list(self.frames), self.received

    async def send(self, message: dict[str, Any]) -> None:
        async with self._send_lock:
            await self.ws.send_json(message)

    async def serve(self) -> None:
        """Receive frames until the client leaves."""
        s = self.server
        await self.send(
            {"type": "hello", "window": s.window, "every": s.every, "classes": s.classes}
            | {"sensor": s.sensor_name}
        )
        while True:
            message = await self.ws.receive()
            if message["type"] == "websocket.disconnect":
                return
            self.received += 1
            try:
                data = _frame_bytes(message, self.received)
                if data is None:
                    with self._frames_lock:
                        self.frames.clear()
                    self.since = 0
                    continue
                frame = await run_in_threadpool(decode_frame, data, self.received)
                if self.frames and frame.shape != self.frames[-1].shape:
                    h, w = self.frames[-1].shape[:2]
                    raise DataError(
                        f"frame {self.received}: {frame.shape[1]}x{frame.shape[0]} pixels, this "
                        f"stream's frames are {w}x{h}; send every frame at one size (or "
                        '{"type": "reset"} first)'
                    )
            except DataError as exc:
                await self.send({"type": "error", "message": str(exc)})
                continue
            with self._frames_lock:
                self.frames.append(frame)
            self.since += 1
            busy = self.task is not None and not self.task.done()
            if len(self.frames) == s.window and self.since >= s.every and not busy:
                self.since = 0
                self.task = asyncio.create_task(self._predict())

    async def _predict(self) -> None:
        start = time.perf_counter()
        window = _Snapshot(self._window)
        try:
            results = await self.server.predict(window, self.server.sensor)
            message = {"type": "prediction", "frame": window.index, "results": results}
        except DataError as exc:
            message = {"type": "error", "message": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a bug: logged, the stream goes on
            logger.exception("live prediction failed")
            message = {"type": "error", "message": f"internal error ({type(exc).__name__})"}
        read = window.time or start
        message["seconds"] = round(time.perf_counter() - read, 4)
        message["waited"] = round(read - start, 4)
        try:
            await self.send(message)
        except (WebSocketDisconnect, RuntimeError, OSError):  # the client left meanwhile
            pass

    async def close(self) -> None:
        if self.task is not None:
            try:
                await self.task
            except Exception:  # noqa: BLE001 - already reported to the client or logged
                pass


class _Server:
    """State behind the routes: the predictor, its model runners, the limits."""

    def __init__(
        self,
        predictor: Any,
        sensor: Path | None,
        max_upload_mb: float,
        every: int,
        window: int | None,
        max_streams: int,
    ) -> None:
        self.predictor = predictor
        self.classes = list(predictor.classes)
        self.sensor = Path(sensor) if sensor is not None else None
        self.sensor_name = self.sensor.name if self.sensor is not None else None
        self.max_upload_mb = float(max_upload_mb)
        self.max_upload = int(self.max_upload_mb * 2**20)
        self.every = max(1, int(every))
        self.window = int(window) if window else window_length(predictor)
        self.max_streams = int(max_streams)
        self.streams = 0
        self.runners = {VIDEO: ModelRunner(VIDEO)}
        if predictor.has_sensor_model():
            self.runners[WITH_SENSOR] = ModelRunner(WITH_SENSOR)

    def info(self) -> dict[str, Any]:
        return {
            "classes": self.classes,
            "top_k": TOP_K,
            "window": self.window,
            "every": self.every,
            "max_upload_mb": self.max_upload_mb,
            "sensor": self.sensor_name,
            "sensor_model": WITH_SENSOR in self.runners,
            "run": Path(getattr(self.predictor, "run", "")).name,
            "max_frame_side": MAX_FRAME_SIDE,
            "video_types": list(VIDEO_TYPES),
            "sensor_types": list(SENSOR_TYPES),
        }

    def _predict_video(self, video: Any, sensor: Any) -> np.ndarray:
        """In a model's thread: the prediction of a video (a live :class:`_Snapshot` is read
        now)."""
        frames = video() if isinstance(video, _Snapshot) else video
        return self.predictor.predict_video(frames, sensor=sensor)

    async def predict(self, video: Any, sensor: Any = None) -> dict[str, list]:
        """Top-5 of the video model, and of the video + sensor model when ``sensor`` is given,
        each in its model's runner (the two models run side by side)."""
        if sensor is not None and WITH_SENSOR not in self.runners:
            self.predictor.model_file(True)  # raises the DataError saying why it is absent
        calls = {VIDEO: self.runners[VIDEO].run(self._predict_video, video, None)}
        if sensor is not None:
            runner = self.runners[WITH_SENSOR]
            calls[WITH_SENSOR] = runner.run(self._predict_video, video, sensor)
        probs = await asyncio.gather(*calls.values())
        return {
            key: [[name, round(float(p), 6)] for name, p in self.predictor.top_k(pr, TOP_K)]
            for key, pr in zip(calls, probs, strict=True)
        }

    def close(self) -> None:
        for runner in self.runners.values():
            runner.close()


class UploadTooLarge(Exception):
    """The request body passed ``max_upload_mb`` while streaming in."""


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split())}, status_code=status)


def _suffix(filename: str) -> str:
    """The upload's extension if it is a plain one (readers go by it), else none."""
    suffix = Path(filename or "").suffix.lower()
    return suffix if re.fullmatch(r"\.[a-z0-9]{1,8}", suffix) else ""


async def _save(
    upload: UploadFile, folder: Path, stem: str, allowed: tuple[str, ...]
) -> tuple[Path, str]:
    """An uploaded file written to ``folder`` (readers take paths); ``(path, its name)``.

    Raises:
        DataError: A file type not in ``allowed`` (FFmpeg would even play a ``.txt`` file as a
            video of its text), or an empty file.
    """
    name = Path(upload.filename or stem).name or stem
    suffix = _suffix(name)
    if suffix not in allowed:
        raise DataError(
            f"{name}: not a {stem} file ({suffix or 'no extension'}); choose a "
            f"{', '.join(allowed)} file"
        )
    path = folder / f"{stem}{suffix}"
    with open(path, "wb") as out:
        await run_in_threadpool(shutil.copyfileobj, upload.file, out, 1 << 20)
    if path.stat().st_size == 0:
        raise DataError(f"{name}: an empty file; choose the {stem} file again")
    return path, name


def create_app(
    predictor: Any,
    *,
    sensor: str | os.PathLike | None = None,
    max_upload_mb: float = 50.0,
    every: int = 4,
    window: int | None = None,
    max_streams: int = 32,
) -> FastAPI:
    """The page's application around a predictor.

    Args:
        predictor: A :class:`vsfusion.inference.Predictor` (anything with its ``classes``,
            ``info``, ``predict_video``, ``top_k``, ``has_sensor_model`` and ``model_file``).
        sensor: A sensor recording used with every clip and the live stream unless an upload
            brings its own; then the video + sensor model's top 5 are shown too.
        max_upload_mb: Largest request body of ``/api/predict`` (video and sensor together).
        every: Live stream: predict every this many frames (when the model keeps up).
        window: Live stream: frames per prediction; default :func:`window_length`.
        max_streams: Live streams served at once; more are refused with an error message.

    Returns:
        The FastAPI application (serve it with uvicorn).
    """
    state = _Server(predictor, sensor, max_upload_mb, every, window, max_streams)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        state.close()

    app = FastAPI(
        title="vsfusion", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan
    )
    app.state.server = state
    static = resources.files("vsfusion.server")

    def page(path: str) -> Callable[[], Response]:
        name, media = _PAGE_FILES[path]

        async def handler() -> Response:
            return Response(static.joinpath(name).read_text(encoding="utf-8"), media_type=media)

        return handler

    for path in _PAGE_FILES:
        app.add_api_route(path, page(path), methods=["GET"], response_class=HTMLResponse)

    @app.get("/favicon.ico")
    async def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/api/info")
    async def info() -> dict[str, Any]:
        return state.info()

    @app.post("/api/predict")
    async def predict(request: Request) -> Response:
        limit = state.max_upload
        too_large = (
            f"upload over the {state.max_upload_mb:g} MB limit of this server; send a shorter "
            "or smaller clip (or start serve.py with a larger --max_upload_mb)"
        )
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > limit:
            return _error(413, f"{int(length) / 2**20:.1f} MB: {too_large}")
        seen = 0

        async def receive() -> dict[str, Any]:
            nonlocal seen
            message = await request.receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise UploadTooLarge
            return message

        start = time.perf_counter()
        try:
            form = await Request(request.scope, receive).form(max_files=2, max_fields=4)
        except UploadTooLarge:
            return _error(413, f"more than {state.max_upload_mb:g} MB: {too_large}")
        except Exception as exc:  # noqa: BLE001 - a malformed form (starlette's message)
            detail = getattr(exc, "detail", None) or str(exc) or type(exc).__name__
            return _error(400, f"not a clip upload ({detail}); send a multipart form with a video")
        names: dict[str, str] = {}
        with tempfile.TemporaryDirectory(prefix="vsfusion-serve-") as tmp:
            try:
                video, sensor_file = form.get("video"), form.get("sensor")
                if not isinstance(video, UploadFile) or not video.filename:
                    return _error(400, "no video in the upload; choose a video file first")
                path, names["video"] = await _save(video, Path(tmp), VIDEO, VIDEO_TYPES)
                sensor_path = state.sensor
                if isinstance(sensor_file, UploadFile) and sensor_file.filename:
                    saved = await _save(sensor_file, Path(tmp), SENSOR, SENSOR_TYPES)
                    sensor_path, names[SENSOR] = saved
                results = await state.predict(path, sensor_path)
            except DataError as exc:  # name the uploaded files, not the temporary copies
                message = str(exc)
                for key, name in names.items():
                    message = re.sub(re.escape(str(Path(tmp) / key)) + r"(\.\w+)?", name, message)
                return _error(400, message)
            except Exception as exc:  # noqa: BLE001 - a bug: logged, the server goes on
                logger.exception("prediction of an upload failed")
                return _error(500, f"internal error ({type(exc).__name__}); see the server log")
            finally:
                await form.close()
        return JSONResponse(
            {
                "video": names["video"],
                "sensor": names.get(SENSOR) or state.sensor_name,
                "results": results,
                "seconds": round(time.perf_counter() - start, 4),
            }
        )

    @app.websocket("/ws/live")
    async def live(ws: WebSocket) -> None:
        await ws.accept()
        if state.streams >= state.max_streams:
            message = f"{state.streams} live streams already; try again later"
            await ws.send_json({"type": "error", "message": message})
            await ws.close(code=1013)
            return
        state.streams += 1
        stream = LiveStream(state, ws)
        try:
            await stream.serve()
        except WebSocketDisconnect:
            pass
        finally:
            state.streams -= 1
            await stream.close()

    return app
