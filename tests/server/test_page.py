"""serve.py end to end: a tiny trained fusion run served on 127.0.0.1, driven by headless Chromium
(Debian's /usr/bin/chromium through Playwright) and by a Python WebSocket client."""

import json
import os
import re
import shutil
import socket
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import websockets.sync.client as ws_client

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import serve  # noqa: E402
from tests.inference import test_predict  # noqa: E402
from vsfusion.data.video import decode_frames  # noqa: E402
from vsfusion.inference import Predictor  # noqa: E402
from vsfusion.server.client import ServerProcess, encode_frame, post_clip  # noqa: E402

#: The fixture ``run``: a tiny fusion run of mp4 videos + sensor CSVs, its cache reading 12 frames
#: of 40 px (``(data root, fusion run folder)``), as predict.py's tests train it.
run = test_predict.run

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
#: Without the background-networking flags Chromium's own connections (updates, sync) are refused
#: on a machine without a network and slow every page down.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # a synthetic camera, and permission granted without a prompt: the live page's webcam path
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
]
LIMIT_MB = 0.2


def _test_videos(root: Path) -> list[Path]:
    return sorted((root / "test").rglob("*.mp4"))


def _start_sensor(root: Path) -> Path:
    """The recording given at start (--sensor): a test video's."""
    return _test_videos(root)[6].with_suffix(".csv")


@pytest.fixture(scope="module")
def server(run):
    root, fusion = run
    args = ["--max_upload_mb", str(LIMIT_MB), "--every", "2", "--sensor", _start_sensor(root)]
    with ServerProcess([fusion, *args]) as served:
        yield served
    assert served.proc.returncode is not None


@pytest.fixture(scope="module")
def predictor(run):
    return Predictor.load(run[1])


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(
            f"no Chromium at {CHROMIUM}: apt-get install -y chromium (make test does it where "
            "apt-get can run)"
        )
    sync_api = pytest.importorskip(
        "playwright.sync_api",
        reason="playwright not installed: pip install -r requirements-dev.txt",
    )
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(server.url + "/")
    page.wait_for_function("document.getElementById('about').textContent.startsWith('Run ')")
    yield page
    context.close()


def _upload(page, video: Path, sensor: Path | None = None) -> None:
    page.set_input_files("#video-file", str(video))
    page.set_input_files("#sensor-file", [] if sensor is None else str(sensor))
    page.click("#upload-button")
    page.wait_for_function(  # the answer: bars or an error, and the button back
        "!document.getElementById('upload-button').disabled && "
        "(document.querySelector('#upload-results .model') || "
        "!document.getElementById('upload-error').hidden)"
    )


def _shown(page, where: str) -> dict[str, list[tuple[str, float]]]:
    """The bars a results box shows: model -> [(class, percent)]."""
    return page.eval_on_selector_all(
        f"{where} .model",
        """boxes => Object.fromEntries(boxes.map(b => [b.dataset.model,
            [...b.querySelectorAll('.row')].map(r => [r.dataset.class,
             parseFloat(r.querySelector('.p').textContent)])]))""",
    )


def test_an_uploaded_clip_shows_the_offline_top1(page, run, predictor):
    root, _ = run
    videos = _test_videos(root)
    start = _start_sensor(root)
    for video in videos[::4]:  # one of each class
        want = {
            "video": predictor.top_k(predictor.predict_video(video), 5),
            "video+sensor": predictor.top_k(predictor.predict_video(video, sensor=start), 5),
        }
        _upload(page, video)
        assert page.is_hidden("#upload-error")
        # video alone, and with the recording given at start (--sensor)
        shown = _shown(page, "#upload-results")
        assert list(shown) == ["video", "video+sensor"]
        top1 = page.get_attribute("#upload-results .model[data-model='video']", "data-top1")
        assert top1 == want["video"][0][0]
        for key, ranked in want.items():  # the 3 classes in order, percentages to 0.1
            assert [c for c, _ in shown[key]] == [c for c, _ in ranked]
            for (_, got), (_, p) in zip(shown[key], ranked, strict=True):
                assert got == pytest.approx(100 * p, abs=0.051)
        assert video.name in page.inner_text("#upload-status")
        assert f"({start.name})" in page.inner_text("#upload-results")
    # a sensor recording uploaded beside the clip replaces the one given at start
    video = videos[2]
    want = predictor.top_k(predictor.predict_video(video, sensor=video.with_suffix(".csv")), 5)
    _upload(page, video, video.with_suffix(".csv"))
    shown = _shown(page, "#upload-results")
    assert shown["video+sensor"][0][0] == want[0][0]
    assert shown["video+sensor"][0][1] == pytest.approx(100 * want[0][1], abs=0.051)
    assert f"({video.with_suffix('.csv').name})" in page.inner_text("#upload-results")


def test_oversized_and_non_video_uploads_show_an_error_and_the_page_goes_on(
    page, run, predictor, tmp_path
):
    root, _ = run
    video = _test_videos(root)[0]
    big = tmp_path / "big.mp4"
    big.write_bytes(os.urandom(int(LIMIT_MB * 2**20) + 1000))
    _upload(page, big)
    error = page.inner_text("#upload-error")
    assert "big.mp4" in error and f"over the {LIMIT_MB} MB upload limit" in error
    assert page.eval_on_selector_all("#upload-results .model", "b => b.length") == 0
    text = tmp_path / "notes.txt"
    text.write_text("a shopping list, not a video\n" * 20)
    _upload(page, text)
    assert page.inner_text("#upload-error").startswith("notes.txt: not a video file (.txt)")
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"not a video at all" * 20)
    _upload(page, fake)  # a video's name, but no video: the reader cannot decode it
    assert page.inner_text("#upload-error").startswith("fake.mp4: cannot open video")
    assert page.eval_on_selector_all("#upload-results .model", "b => b.length") == 0
    want = predictor.top_k(predictor.predict_video(video), 1)[0][0]
    _upload(page, video)  # the next valid upload works, and clears the error
    assert page.is_hidden("#upload-error")
    assert page.get_attribute("#upload-results .model", "data-top1") == want


def test_the_server_refuses_oversized_bodies_itself(server, run):
    root, _ = run
    big = ("big.mp4", b"\0" * (int(LIMIT_MB * 2**20) + 1))
    status, body = post_clip(server.url, big)
    assert status == 413 and f"over the {LIMIT_MB:g} MB limit" in body["error"]
    status, body = post_clip(server.url, big, chunked=True)
    assert status == 413 and f"more than {LIMIT_MB:g} MB" in body["error"]
    assert post_clip(server.url, _test_videos(root)[0])[0] == 200


def _frames(path: Path) -> list[np.ndarray]:
    return decode_frames(path)


def _clip_length(predictor) -> int:
    """Frames the training cache kept of each video (12 in the run fixture)."""
    reader = predictor.info["inputs"]["video"]["stream"]["attrs"]["reader"]
    return reader["kwargs"]["num_frames"]


def _next(ws, kind: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message["type"] == kind:
            return message


def test_websocket_frames_get_the_windows_prediction_and_bad_frames_an_error(
    server, run, predictor
):
    root, _ = run
    ws_url = server.url.replace("http://", "ws://") + "/ws/live"
    with ws_client.connect(ws_url) as ws:
        hello = _next(ws, "hello")
        window = hello["window"]
        assert window == _clip_length(predictor) and hello["classes"] == predictor.classes
        frames = _frames(_test_videos(root)[4])
        frames = (frames * 2)[:window]
        for f in frames:
            ws.send(encode_frame(f, ".png"))  # lossless: the same pixels as offline
        got = _next(ws, "prediction")
        want = predictor.top_k(predictor.predict_video(frames), 5)
        assert [c for c, _ in got["results"]["video"]] == [c for c, _ in want]
        for (_, p), (_, q) in zip(got["results"]["video"], want, strict=True):
            assert p == pytest.approx(q, abs=1e-5)
        ws.send(b"this is not an image")
        assert "not a JPEG or PNG image" in _next(ws, "error")["message"]
        ws.send("{broken json")
        assert "not valid JSON" in _next(ws, "error")["message"]
        ws.send(encode_frame(np.zeros((40, 40, 3), np.uint8)))
        assert "this stream's frames are" in _next(ws, "error")["message"]
        for f in frames[:2]:  # the connection goes on: two more frames, the next prediction
            ws.send(encode_frame(f))
        assert _next(ws, "prediction")["frame"] == window + 5
    assert post_clip(server.url, _test_videos(root)[0])[0] == 200


def test_the_fake_webcam_streams_and_the_page_shows_live_predictions(page, predictor):
    page.click("#live-start")
    page.wait_for_selector("#live-results .model[data-model='video']", timeout=90_000)
    assert page.is_hidden("#live-error")
    shown = _shown(page, "#live-results")
    assert [c for c, _ in shown["video"]] and {c for c, _ in shown["video"]} <= set(
        predictor.classes
    )
    assert sum(p for _, p in shown["video"]) == pytest.approx(100, abs=0.2)
    status = page.inner_text("#live-status")
    window = _clip_length(predictor)
    assert re.search(rf"window {window}/{window}\), [1-9]\d* predictions", status), status
    page.click("#live-stop")
    assert page.is_enabled("#live-start")


def _main(argv, capsys) -> tuple[int, list[str]]:
    code = serve.main([str(a) for a in argv])
    return code, capsys.readouterr().err.strip().splitlines()


def test_bad_start_is_one_error_line(run, tmp_path, capsys):
    root, fusion = run
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    wrong = tmp_path / "wrong.npy"
    np.save(wrong, np.zeros((40, 5), np.float32))
    no_sensor_model = tmp_path / "folder" / "fusion" / "old"
    shutil.copytree(fusion, no_sensor_model)
    info = json.loads((no_sensor_model / "predictor.json").read_text())
    del info["models"]["video+sensor"]
    (no_sensor_model / "predictor.json").write_text(json.dumps(info))
    csv = _test_videos(root)[0].with_suffix(".csv")
    cases = {
        "no run": ([], "no run; pass a fusion run"),
        "not a run": ([tmp_path / "nothing"], "nothing: model not found"),
        "port taken": ([fusion, "--port", port], f"--port {port}: already in use"),
        "bad limit": ([fusion, "--max_upload_mb", "0"], "--max_upload_mb 0.0: must be positive"),
        "no sensor": ([fusion, "--sensor", tmp_path / "x.csv"], "x.csv: sensor file not found"),
        "bad sensor": ([fusion, "--sensor", wrong], "wrong.npy: sensor has 5 channels"),
        "sensor model": ([no_sensor_model, "--sensor", csv], "no video + real-sensor model"),
    }
    try:
        for case, (argv, message) in cases.items():
            code, err = _main(argv, capsys)
            assert code == 2, case
            assert len(err) == 1 and err[0].startswith("error:") and message in err[0], (case, err)
    finally:
        taken.close()


def _bench_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_serve", REPO / "bench" / "serve.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_serve_benchmark_runs_short_against_the_served_run(server, run, predictor):
    """bench/serve.py for 5 s with 3 clients (here, beside the served run, not in tests/bench:
    one tiny fusion run trained for both)."""
    bench = _bench_module()
    root, _ = run
    video = _test_videos(root)[0]
    result = bench.bench_serve(
        None, {"test clip": video}, uploads=2, clients=3, seconds=5, url=server.url, pid=server.pid
    )
    [upload] = result["upload"]
    assert upload["name"] == "test clip" and upload["uploads"] == 2
    assert 0 < upload["min_s"] <= upload["median_s"] <= upload["max_s"]
    assert upload["models"] == ["video", "video+sensor"]  # the --sensor given at start
    live = result["live"]
    assert live["clients"] == 3 and live["dropped"] == 0 and live["errors"] == 0
    assert live["frames_sent"] == 3 * 5 * 10
    assert live["min_predictions_per_client"] >= 1
    assert live["predictions"] <= live["frames_sent"] // result["every"]
    assert live["window"] == result["window"] == _clip_length(predictor)
    assert 0 < live["rss_mb"]["start"] <= live["rss_mb"]["peak"]
    assert live["rss_growth"] == pytest.approx(
        live["rss_mb"]["end"] / live["rss_mb"]["start"], 1e-2
    )
    assert (
        set(result["meets"]) == {"upload_s", "dropped", "rss_growth"} and result["meets"]["dropped"]
    )
    text = "\n".join(bench.markdown(result))
    assert "| test clip (" in text and "3 WebSocket clients x 10 frames/s" in text
    with pytest.raises(ValueError, match="127.0.0.1 only"):
        bench.bench_serve(None, {}, url="http://example.org:80")
