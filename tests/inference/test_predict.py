"""predict.py on a finished fusion run of source videos: the cache's preprocessing, every input."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import export  # noqa: E402
import predict  # noqa: E402
import train_sensor  # noqa: E402
import train_video  # noqa: E402
import training_generator  # noqa: E402
import valid_generator  # noqa: E402
from tests.conftest import build_once  # noqa: E402
from tests.stages.conftest import write_tiny_video_dataset  # noqa: E402
from vsfusion.data import folder as folder_adapter  # noqa: E402
from vsfusion.data.video import decode_frames  # noqa: E402
from vsfusion.inference import Predictor  # noqa: E402
from vsfusion.stages.fusion import load_predictions  # noqa: E402

pytestmark = pytest.mark.slow

#: The cache parameters of the training run: not folder's defaults, so a prediction that matches
#: proves they were recorded and read back.
CACHE = {"CACHE_FRAMES": 12, "CACHE_SIZE": 40, "SENSOR_STEPS": 32}


def _train_run(folder: Path) -> None:
    """A fusion run of the tiny samples as mp4 videos + sensor CSVs (``--dataset folder``)."""
    root = write_tiny_video_dataset(folder / "videos")
    ck = folder / "ck"
    args = ["--dataset", "folder", "--data_root", str(root), "--checkpoints", str(ck)]
    args += ["--cache_dir", str(ck / "cache"), "--verbose", "0", "--prep_workers", "1"]
    with pytest.MonkeyPatch.context() as mp:
        for name, value in CACHE.items():
            mp.setattr(folder_adapter, name, value)
        sensor = ["--epoch", "2", "--depth", "3", "--filters", "8", "--run_name", "s"]
        assert train_sensor.main([*args, *sensor]) == 0
        video = ["--epoch", "1", "--num_frames", "8", "--crop_size", "32", "--batch_size", "4"]
        assert train_video.main([*args, *video, "--run_name", "v"]) == 0
        generator = ["--epoch", "1", "--hidden", "16", "--no-control"]
        assert training_generator.main([*args, *generator]) == 0
        assert valid_generator.main([*args, "--mlp_epochs", "2", "--run_name", "f"]) == 0


@pytest.fixture(scope="module")
def run(shared_tmp):
    """``(data root, fusion run)``: trained once per test session (the served page's tests use it
    too); tests that change it work on a copy."""
    folder = build_once(shared_tmp / "predict_fusion_run", _train_run)
    return folder / "videos", folder / "ck" / "folder" / "fusion" / "f"


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    """A copy of the fusion run with ONNX exports of both deployable models (export.py)."""
    root, fusion = run
    copy = tmp_path_factory.mktemp("exported") / "folder" / "fusion" / "f"
    shutil.copytree(fusion, copy)
    assert export.main([str(copy), "--format", "onnx", "--verbose", "0"]) == 0
    sensor_model = copy / "deploy_sensor.keras"
    assert export.main([str(sensor_model), "--format", "onnx", "--verbose", "0"]) == 0
    return root, copy


def _source(root: Path, sample_id: str, ext: str) -> Path:
    return root / f"{sample_id}{ext}"  # folder ids are <split>/<label>/<stem>


def test_predicting_a_source_video_gives_the_runs_own_test_prediction(run):
    root, fusion = run
    info = json.loads((fusion / "predictor.json").read_text())
    reader = info["inputs"]["video"]["stream"]["attrs"]["reader"]
    assert reader["name"] == "read_clip"
    assert reader["kwargs"] | {"num_frames": 12, "size": 40} == reader["kwargs"]  # recorded
    assert info["classes"] == ["left", "right", "still"]
    _, probs = load_predictions(fusion)
    with np.load(fusion / "predictions.npz") as data:
        ids = [str(i) for i in data["ids"]]
    assert len(ids) == 9
    predictor = Predictor.load(fusion)
    for k, sample_id in enumerate(ids):
        got = predictor.predict_video(_source(root, sample_id, ".mp4"))
        np.testing.assert_allclose(got, probs["fusion_best"][k], atol=1e-5, err_msg=sample_id)
        assert got.sum() == pytest.approx(1.0, abs=1e-5)


def test_a_sensor_file_predicts_with_the_real_sensor_fusion_chosen_on_validation(run):
    root, fusion = run
    results = json.loads((fusion / "results.json").read_text())
    with_sensor = results["extra"]["deploy"]["with_sensor"]
    assert with_sensor["file"] == "deploy_sensor.keras"
    assert with_sensor["inputs"] == {"video": [8, 32, 32, 3], "sensor": [32, 6]}
    assert (
        with_sensor["rule"] == results["extra"]["missing_modality"]["video + real sensor"]["rule"]
    )
    _, probs = load_predictions(fusion)
    with np.load(fusion / "predictions.npz") as data:
        ids = [str(i) for i in data["ids"]]
    predictor = Predictor.load(fusion / "deploy.keras")
    for k in (0, 4, 8):
        video, sensor = (_source(root, ids[k], ext) for ext in (".mp4", ".csv"))
        got = predictor.predict_video(video, sensor=sensor)
        np.testing.assert_allclose(got, probs["oracle_fusion"][k], atol=1e-5, err_msg=ids[k])
        # an in-memory recording (evenly spaced, as the CSV's times are) gives the same
        table = np.loadtxt(sensor, delimiter=",", skiprows=1)[:, 1:]
        np.testing.assert_allclose(predictor.predict_video(video, sensor=table), got, atol=1e-6)


def test_frames_and_the_cached_clip_give_the_prediction_of_the_file(run):
    root, fusion = run
    with np.load(fusion / "predictions.npz") as data:
        sample_id = str(data["ids"][2])
    path = _source(root, sample_id, ".mp4")
    predictor = Predictor.load(fusion)
    want = predictor.predict_video(path)
    frames = decode_frames(path)
    np.testing.assert_allclose(predictor.predict_video(frames), want, atol=1e-6)
    np.testing.assert_allclose(predictor.predict_video(np.stack(frames)), want, atol=1e-6)
    cached = next((fusion.parents[2] / "cache").rglob(f"video/{sample_id}.npy"))
    np.testing.assert_allclose(predictor.predict_video(cached), want, atol=1e-6)


def _main(argv, capsys):
    code = predict.main([str(a) for a in argv])
    out = capsys.readouterr()
    return code, out.out, out.err.strip().splitlines()


def test_cli_folder_mode_prints_class_names_and_writes_json_and_csv(run, tmp_path, capsys):
    root, fusion = run
    outs = f"{tmp_path / 'p.json'},{tmp_path / 'p.csv'}"
    latest = fusion.parent  # the fusion folder: its latest run
    code, out, _ = _main([root / "test", "--model", latest, "--top_k", "2", "--out", outs], capsys)
    assert code == 0
    report = json.loads((tmp_path / "p.json").read_text())
    assert report["model"] == str(fusion.resolve())
    assert len(report["predictions"]) == 9
    _, probs = load_predictions(fusion)
    with np.load(fusion / "predictions.npz") as data:
        by_input = {str(_source(root, str(i), ".mp4")): k for k, i in enumerate(data["ids"])}
    for pred in report["predictions"]:
        assert pred["model"] == "deploy.keras" and pred["sensor"] is None
        p = probs["fusion_best"][by_input[pred["input"]]]
        best = ["left", "right", "still"][int(np.argmax(p))]
        assert pred["top_k"][0]["class"] == best and len(pred["top_k"]) == 2
        assert pred["top_k"][0]["probability"] == pytest.approx(float(p.max()), abs=1e-5)
        assert pred["top_k"][0]["probability"] >= pred["top_k"][1]["probability"]
        assert f"1. {best}" in out
    with open(tmp_path / "p.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 18 and {r["rank"] for r in rows} == {"1", "2"}
    assert {r["class"] for r in rows} <= {"left", "right", "still"}


def test_cli_webcam_index_reads_a_clip_from_the_capture(run, tmp_path, capsys, monkeypatch):
    root, fusion = run
    with np.load(fusion / "predictions.npz") as data:
        sample_id = str(data["ids"][5])
    path = _source(root, sample_id, ".mp4")
    opened = []
    real = cv2.VideoCapture

    class FakeCapture:
        """A camera at 5 frames/s showing the source video (its 10 frames, BGR)."""

        def __init__(self, index):
            opened.append(index)
            self.cap = real(str(path))

        def isOpened(self):
            return True

        def get(self, prop):
            return 5.0 if prop == cv2.CAP_PROP_FPS else 0.0

        def read(self):
            return self.cap.read()

        def release(self):
            self.cap.release()

    monkeypatch.setattr(cv2, "VideoCapture", FakeCapture)
    out_json = tmp_path / "cam.json"
    code, out, _ = _main(["1", "--model", fusion, "--seconds", "2", "--out", out_json], capsys)
    assert code == 0 and opened == [1]
    monkeypatch.undo()
    pred = json.loads(out_json.read_text())["predictions"][0]
    assert pred["input"] == "webcam 1" and out.startswith("webcam 1 (deploy.keras)")
    want = Predictor.load(fusion).predict_video(path)  # 2 s at 5 frames/s: the whole video
    got = [pred["probabilities"][c] for c in ["left", "right", "still"]]
    np.testing.assert_allclose(got, want, atol=1e-5)


def test_cli_sensor_path_uses_the_video_and_real_sensor_model(run, tmp_path, capsys):
    root, fusion = run
    with np.load(fusion / "predictions.npz") as data:
        k, sample_id = 3, str(data["ids"][3])
    _, probs = load_predictions(fusion)
    video, sensor = (_source(root, sample_id, ext) for ext in (".mp4", ".csv"))
    out_json = tmp_path / "s.json"
    argv = [video, "--sensor", sensor, "--model", fusion / "deploy.keras", "--out", out_json]
    code, out, _ = _main(argv, capsys)
    assert code == 0 and "(deploy_sensor.keras)" in out
    pred = json.loads(out_json.read_text())["predictions"][0]
    got = [pred["probabilities"][c] for c in ["left", "right", "still"]]
    np.testing.assert_allclose(got, probs["oracle_fusion"][k], atol=1e-5)


def _bad_inputs(root: Path, fusion: Path, tmp: Path) -> dict[str, tuple[list, str]]:
    video = next((root / "test").rglob("*.mp4"))
    corrupt = tmp / "corrupt.mp4"
    corrupt.write_bytes(b"not a video at all" * 20)
    empty = tmp / "empty"
    (empty / "sub").mkdir(parents=True)
    (empty / "sub" / "notes.txt").write_text("no videos here")
    wrong = tmp / "wrong.npy"
    np.save(wrong, np.zeros((40, 5), np.float32))
    nan = tmp / "nan.csv"
    nan.write_text(
        "a,b,c,d,e,f\n" + "\n".join("1,2,3,4,5,6" for _ in range(9)) + "\nnan,1,1,1,1,1\n"
    )
    flat = tmp / "flat.npy"
    np.save(flat, np.zeros(40, np.float32))
    model = ["--model", fusion]
    return {
        "missing video": ([tmp / "nope.mp4", *model], "nope.mp4: no such video file or folder"),
        "corrupt video": ([corrupt, *model], "corrupt.mp4: cannot open video"),
        "empty folder": ([empty, *model], "empty: no videos"),
        "sensor channels": ([video, "--sensor", wrong, *model], "wrong.npy: sensor has 5 channels"),
        "sensor nan": ([video, "--sensor", nan, *model], "nan.csv: sensor has NaN/inf values"),
        "sensor shape": ([video, "--sensor", flat, *model], "flat.npy: sensor must be 2-D"),
        "missing sensor": ([video, "--sensor", tmp / "no.csv", *model], "no.csv: sensor file not"),
        "not a run": ([video, "--model", fusion.parent.parent / "video" / "v"], "not a fusion run"),
        "not a model": ([video, "--model", tmp / "nothing"], "nothing: model not found"),
        "other keras": ([video, "--model", fusion / "fused.keras"], "not a deployable model"),
        "bad out": ([video, *model, "--out", tmp / "p.txt"], "p.txt: unknown format '.txt'"),
        "bad top_k": ([video, *model, "--top_k", "0"], "--top_k 0: must be at least 1"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing video",
        "corrupt video",
        "empty folder",
        "sensor channels",
        "sensor nan",
        "sensor shape",
        "missing sensor",
        "not a run",
        "not a model",
        "other keras",
        "bad out",
        "bad top_k",
    ],
)
def test_bad_input_is_one_error_line_and_writes_nothing(case, run, tmp_path, capsys):
    root, fusion = run
    argv, message = _bad_inputs(root, fusion, tmp_path)[case]
    out = tmp_path / "out.json"
    if "--out" not in argv:
        argv = [*argv, "--out", out]
    code, _, err = _main(argv, capsys)
    assert code == 2
    assert len(err) == 1 and err[0].startswith("error:") and message in err[0], err
    assert not out.exists()
    assert not list(tmp_path.glob("*.tmp"))


def test_a_run_without_a_sensor_model_or_predictor_says_which_command_writes_it(
    run, tmp_path, capsys
):
    import shutil

    root, fusion = run
    video = next((root / "test").rglob("*.mp4"))
    copy = tmp_path / "folder" / "fusion" / "old"
    shutil.copytree(fusion, copy)
    info = json.loads((copy / "predictor.json").read_text())
    del info["models"]["video+sensor"]
    info["missing"] = {"video+sensor": "the validation split has no sensor recordings"}
    (copy / "predictor.json").write_text(json.dumps(info))
    code, _, err = _main([video, "--sensor", video.with_suffix(".csv"), "--model", copy], capsys)
    assert code == 2 and "has no video + real-sensor model (the validation split" in err[-1]
    assert "python valid_generator.py --dataset folder --model_path" in err[-1]
    (copy / "predictor.json").unlink()
    code, _, err = _main([video, "--model", copy], capsys)
    assert code == 2 and "has no predictor.json" in err[-1]
    assert "python valid_generator.py --dataset folder --model_path" in err[-1]


def test_the_onnx_export_predicts_what_keras_predicts(exported):
    root, fusion = exported
    _, probs = load_predictions(fusion)
    with np.load(fusion / "predictions.npz") as data:
        ids = [str(i) for i in data["ids"]]
    onnx, keras_ = Predictor.load(fusion), Predictor.load(fusion, engine="keras")
    assert onnx.runner_file().relative_to(fusion).as_posix() == "export/onnx/model.onnx"
    assert onnx.runner_file(True).relative_to(fusion).as_posix() == (
        "export/deploy_sensor_onnx/model.onnx"
    )
    assert keras_.runner_file(True).name == "deploy_sensor.keras"
    for k in (0, 4, 8):
        video, sensor = (_source(root, ids[k], ext) for ext in (".mp4", ".csv"))
        got = onnx.predict_video(video)
        np.testing.assert_allclose(got, keras_.predict_video(video), atol=1e-4)
        np.testing.assert_allclose(got, probs["fusion_best"][k], atol=1e-4)
        both = onnx.predict_video(video, sensor=sensor)
        np.testing.assert_allclose(both, probs["oracle_fusion"][k], atol=1e-4)


def test_predict_py_on_an_onnx_export_never_imports_a_deep_learning_framework(exported, tmp_path):
    root, fusion = exported
    video = next((root / "test").rglob("*.mp4"))
    out = tmp_path / "p.json"
    argv = [str(video), "--model", str(fusion), "--out", str(out), "--verbose", "0"]
    script = (
        "import json, sys, predict\n"
        f"code = predict.main({argv!r})\n"
        "loaded = [m for m in ('tensorflow', 'keras', 'jax', 'torch') if m in sys.modules]\n"
        "print(json.dumps([code, loaded]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [0, []]
    pred = json.loads(out.read_text())["predictions"][0]
    assert pred["model"] == "export/onnx/model.onnx"
    want = Predictor.load(fusion, engine="keras").predict_video(video)
    got = [pred["probabilities"][c] for c in ["left", "right", "still"]]
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_engine_onnx_without_an_export_or_with_a_corrupt_one_is_one_error_line(
    run, exported, tmp_path, capsys
):
    root, fusion = run
    video = next((root / "test").rglob("*.mp4"))
    code, _, err = _main([video, "--model", fusion, "--engine", "onnx"], capsys)
    assert code == 2 and len(err) == 1, err
    assert "deploy.keras: no ONNX export beside it" in err[0]
    assert f"python export.py {fusion / 'deploy.keras'} --format onnx" in err[0]
    copy = tmp_path / "folder" / "fusion" / "f"
    shutil.copytree(exported[1], copy)
    (copy / "export" / "onnx" / "model.onnx").write_bytes(b"not an onnx model" * 10)
    out = tmp_path / "p.json"
    code, _, err = _main([video, "--model", copy, "--out", out], capsys)
    assert code == 2 and len(err) == 1, err
    assert "model.onnx: ONNX Runtime cannot open it" in err[0] and "--engine keras" in err[0]
    assert not out.exists()
