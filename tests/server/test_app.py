"""The page's application with a stand-in predictor (no training): uploads, limits, errors, the
live WebSocket protocol, one model call at a time, stale frames dropped."""

import asyncio
import contextlib
import json
import threading
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
import uvicorn
import websockets.sync.client as ws_client

from vsfusion.data.errors import DataError
from vsfusion.data.video import clip_from_frames, read_clip
from vsfusion.inference import top_k
from vsfusion.server import create_app, decode_frame, window_length
from vsfusion.server.client import encode_frame, post_clip
from vsfusion.stages.serve import bind

CLASSES = ["dark", "dim", "mid", "bright", "white", "none"]


class StubPredictor:
    """Predictor's interface: probabilities from a clip's brightness; records its calls."""

    info = {"inputs": {"video": {"load": {"num_frames": 4}, "stream": {"attrs": {}}}}}
    run = Path("runs/stub")

    def __init__(self, delay: float = 0.0, sensor_model: bool = True) -> None:
        self.classes = list(CLASSES)
        self.delay = delay
        self.sensor_model = sensor_model
        self.calls: list[tuple[str, str | None]] = []
        self.active = {False: 0, True: 0}
        self.most = {False: 0, True: 0}
        self._lock = threading.Lock()

    def has_sensor_model(self) -> bool:
        return self.sensor_model

    def model_file(self, sensor: bool = False) -> Path:
        if sensor and not self.sensor_model:
            raise DataError("runs/stub has no video + real-sensor model (no sensor in validation)")
        return Path("deploy.keras")

    @staticmethod
    def probs(clip: np.ndarray, sensor_shift: int = 0) -> np.ndarray:
        level = float(np.mean(clip)) / 255 * (len(CLASSES) - 1) + sensor_shift
        p = np.exp(-((np.arange(len(CLASSES)) - level) ** 2))
        return (p / p.sum()).astype(np.float32)

    def predict_video(self, video, sensor=None) -> np.ndarray:
        with self._lock:
            key = sensor is not None
            self.active[key] += 1
            self.most[key] = max(self.most[key], self.active[key])
        try:
            time.sleep(self.delay)
            if isinstance(video, str | Path):
                clip = read_clip(str(video), num_frames=4, size=16)
                kind = Path(video).suffix
            else:
                clip = clip_from_frames(video, 4, 16)
                kind = f"frames{len(video)}"
            self.calls.append((kind, None if sensor is None else Path(sensor).suffix))
            return self.probs(clip, 1 if sensor is not None else 0)
        finally:
            with self._lock:
                self.active[sensor is not None] -= 1

    def top_k(self, probs, k=5):
        return top_k(probs, self.classes, k)


@contextlib.contextmanager
def serving(app):
    """The app served by uvicorn in a thread on a free port of 127.0.0.1; yields its URL."""
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def write_clip(path: Path, level: int, frames: int = 6, size: int = 32) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 10, (size, size))
    for _ in range(frames):
        writer.write(np.full((size, size, 3), level, np.uint8))
    writer.release()
    return path


def expected(path: Path, shift: int = 0) -> list[list]:
    probs = StubPredictor.probs(read_clip(str(path), num_frames=4, size=16), shift)
    return [[c, pytest.approx(p, abs=1e-5)] for c, p in top_k(probs, CLASSES, 5)]


@pytest.fixture(scope="module")
def stub():
    return StubPredictor()


@pytest.fixture(scope="module")
def url(stub):
    with serving(create_app(stub, max_upload_mb=0.05, every=2)) as base:
        yield base


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return {level: write_clip(folder / f"clip{level}.mp4", level) for level in (30, 200)}


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_page_and_info(url):
    with urllib.request.urlopen(url + "/", timeout=10) as response:
        html = response.read().decode()
    assert 'id="video-file"' in html and 'src="/page.js"' in html
    with urllib.request.urlopen(url + "/page.js", timeout=10) as response:
        assert "WebSocket" in response.read().decode()
        assert response.headers["content-type"].startswith("text/javascript")
    info = get_json(url + "/api/info")
    assert info["classes"] == CLASSES and info["window"] == 4 and info["every"] == 2
    assert info["max_upload_mb"] == 0.05 and info["sensor"] is None and info["sensor_model"]


def test_window_is_the_readers_clip_length_else_the_models():
    assert window_length(StubPredictor()) == 4
    entry = {
        "load": {"num_frames": 8},
        "stream": {"attrs": {"reader": {"kwargs": {"num_frames": 12}}}},
    }
    assert window_length(type("P", (), {"info": {"inputs": {"video": entry}}})()) == 12


def test_upload_gives_the_predictors_top5_with_and_without_a_sensor(url, clips, tmp_path):
    status, body = post_clip(url, clips[200])
    assert status == 200, body
    assert body["video"] == "clip200.mp4" and body["sensor"] is None
    assert body["results"] == {"video": expected(clips[200])}
    sensor = tmp_path / "rec.csv"
    sensor.write_text("t,a\n0,1\n")
    status, body = post_clip(url, clips[30], ("rec.txt", b"1,2"))
    assert status == 400 and body["error"].startswith("rec.txt: not a sensor file (.txt)")
    status, body = post_clip(url, clips[30], sensor)
    assert status == 200, body
    assert body["sensor"] == "rec.csv"
    assert body["results"]["video"] == expected(clips[30])
    assert body["results"]["video+sensor"] == expected(clips[30], shift=1)


def test_oversized_uploads_are_refused_by_header_and_by_streamed_size(url, clips):
    big = ("big.mp4", b"\0" * 80_000)  # over the 0.05 MB (52 kB) limit
    status, body = post_clip(url, big)
    assert status == 413 and "over the 0.05 MB limit" in body["error"]
    assert "--max_upload_mb" in body["error"]
    status, body = post_clip(url, big, chunked=True)  # no Content-Length: counted while streaming
    assert status == 413 and "more than 0.05 MB" in body["error"]
    status, body = post_clip(url, clips[200])  # and the server goes on
    assert status == 200 and body["results"]["video"][0][0] == expected(clips[200])[0][0]


def test_a_file_that_is_not_a_video_is_a_clear_error_naming_it(url, clips):
    status, body = post_clip(url, ("notes.mp4", b"this is text, not a video"))
    assert status == 400
    assert body["error"].startswith("notes.mp4: cannot open video")
    assert "vsfusion-serve-" not in body["error"]  # the temporary copy is not named
    status, body = post_clip(url, ("notes.txt", b"FFmpeg plays text files as videos"))
    assert status == 400
    assert body["error"] == (
        "notes.txt: not a video file (.txt); choose a .mp4, .avi, .mov, .mkv, .webm, .npy file"
    )
    status, body = post_clip(url, ("empty.mp4", b""))
    assert (
        status == 400 and body["error"] == "empty.mp4: an empty file; choose the video file again"
    )
    req = urllib.request.Request(url + "/api/predict", data=b"{}", method="POST")
    req.add_header("Content-Type", "application/json")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=10)
    assert err.value.code == 400 and "no video" in json.loads(err.value.read())["error"]
    assert post_clip(url, clips[30])[0] == 200


def test_a_sensor_upload_to_a_run_without_the_sensor_model_says_why(clips, tmp_path):
    sensor = tmp_path / "rec.csv"
    sensor.write_text("t,a\n0,1\n")
    app = create_app(StubPredictor(sensor_model=False))
    with serving(app) as base:
        status, body = post_clip(base, clips[30], sensor)
        assert status == 400 and "no video + real-sensor model" in body["error"]
        assert get_json(base + "/api/info")["sensor_model"] is False
        assert post_clip(base, clips[30])[0] == 200
    runner = app.state.server.runners["video"]
    assert list(app.state.server.runners) == ["video"] and runner._pool._shutdown  # at shutdown


def frame(level: int, size=(24, 32)) -> np.ndarray:
    return np.full((*size, 3), level, np.uint8)


def receive(ws, kind: str, timeout: float = 10) -> dict:
    """The next message of type ``kind`` (others skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def ws_url(url: str) -> str:
    return url.replace("http://", "ws://") + "/ws/live"


def test_live_stream_predicts_the_window_and_survives_malformed_messages(url, stub):
    with ws_client.connect(ws_url(url)) as ws:
        hello = receive(ws, "hello")
        assert hello["window"] == 4 and hello["every"] == 2 and hello["classes"] == CLASSES
        frames = [frame(40 * k) for k in range(4)]
        for f in frames:
            ws.send(encode_frame(f, ".png"))
        got = receive(ws, "prediction")
        assert got["frame"] == 4
        want = top_k(StubPredictor.probs(clip_from_frames(frames, 4, 16)), CLASSES, 5)
        assert got["results"]["video"] == [[c, pytest.approx(p, abs=1e-5)] for c, p in want]
        bad = {
            b"GIF89a....": "not a JPEG or PNG image",
            b"\xff\xd8\xff\xe0garbage": "a corrupt JPEG image",
            "{not json": "not valid JSON",
            json.dumps({"type": "frame", "image": "@@@"}): "not valid base64",
            json.dumps({"type": "play"}): "a JSON message must be",
            encode_frame(frame(10, (8, 8)), ".png"): "8x8 pixels; frames must be 16 to 1920",
            encode_frame(frame(10, (48, 64))): "64x48 pixels, this stream's frames are 32x24",
        }
        for message, text in bad.items():
            ws.send(message)
            assert text in receive(ws, "error")["message"]
        # still usable: a base64 JSON frame, then a reset and frames of another size
        import base64

        image = base64.b64encode(encode_frame(frame(250))).decode()
        ws.send(json.dumps({"type": "frame", "image": "data:image/jpeg;base64," + image}))
        ws.send(encode_frame(frame(250)))
        assert receive(ws, "prediction")["frame"] == 4 + len(bad) + 2
        ws.send(json.dumps({"type": "reset"}))
        for _ in range(4):
            ws.send(encode_frame(frame(0, (48, 64))))
        assert receive(ws, "prediction")["results"]["video"][0][0] == "dark"
    assert post_clip(url, ("x.mp4", b"junk"))[0] == 400  # the server still serves


def test_live_streams_never_queue_one_model_call_at_a_time(clips):
    stub = StubPredictor(delay=0.15)
    with serving(create_app(stub, every=1, max_streams=2)) as base:
        sockets = [ws_client.connect(ws_url(base)) for _ in range(2)]
        try:
            for ws in sockets:
                receive(ws, "hello")
            start = time.monotonic()
            for k in range(30):  # 30 frames each, far faster than the model answers
                for ws in sockets:
                    ws.send(encode_frame(frame(8 * k)))
            t0 = time.monotonic()
            info = get_json(base + "/api/info")  # the event loop answers meanwhile
            assert info["window"] == 4 and time.monotonic() - t0 < 1.0
            answers = [0, 0]
            for i, ws in enumerate(sockets):
                with contextlib.suppress(TimeoutError):
                    while True:
                        answers[i] += receive(ws, "prediction", timeout=1.0)["frame"] > 0
            elapsed = time.monotonic() - start
            # at most one prediction per stream in flight: stale windows were dropped, not queued
            assert 1 <= max(answers) and sum(answers) <= elapsed / 0.15 + 2
            assert sum(answers) < 2 * 27
            assert stub.most[False] == 1  # one call of the model at a time
            third = ws_client.connect(ws_url(base))
            assert "2 live streams already" in receive(third, "error")["message"]
            third.close()
        finally:
            for ws in sockets:
                ws.close()


def test_decode_frame_reads_jpeg_and_png_as_rgb():
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[..., 0] = 200  # red
    for kind in (".png", ".jpg"):
        out = decode_frame(encode_frame(rgb, kind))
        assert out.shape == (20, 30, 3) and out[..., 0].mean() > 190 and out[..., 2].mean() < 10
    with pytest.raises(DataError, match="frame 3: not a JPEG or PNG"):
        decode_frame(b"hello", 3)


def test_model_runner_runs_off_the_loop_one_call_at_a_time():
    from vsfusion.server import ModelRunner

    runner = ModelRunner("m")
    active, most = [0], [0]

    def call(x):
        active[0] += 1
        most[0] = max(most[0], active[0])
        time.sleep(0.02)
        active[0] -= 1
        return threading.current_thread().name, x

    async def main():
        return await asyncio.gather(*(runner.run(call, i) for i in range(5)))

    out = asyncio.run(main())
    runner.close()
    assert [x for _, x in out] == list(range(5)) and most[0] == 1
    assert all(name.startswith("model-m") for name, _ in out)
