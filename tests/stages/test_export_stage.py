"""export.py: runs and .keras files exported, checked against Keras, written atomically; bad input
is one line and leaves nothing behind."""

import json
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import export  # noqa: E402
import train_sensor  # noqa: E402
from tests.stages.stage_cli import common  # noqa: E402
from tests.test_export import Determinant  # noqa: E402,F401  (registers the layer for loading)


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("error: ")
    return err[0]


def _files(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def sensor_run(tiny_dataset, tmp_path_factory) -> Path:
    """A tiny InceptionTime sensor run (its inputs pass through a Normalization layer)."""
    ck = tmp_path_factory.mktemp("ck")
    argv = [*common(tiny_dataset, ck), "--epoch", "2", "--depth", "2", "--filters", "8"]
    assert train_sensor.main([*argv, "--run_name", "s", "--no-tensorboard"]) == 0
    return ck / "VSL" / "sensor" / "s"


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert", "savedmodel"])
def test_a_sensor_run_exports_and_matches_keras_on_its_validation_clips(sensor_run, fmt):
    assert export.main([str(sensor_run), "--format", fmt, "--verbose", "0"]) == 0
    out = sensor_run / "export" / fmt
    record = json.loads((out / "export.json").read_text())
    assert (out / record["artifact"]).exists()
    assert record["format"] == fmt and record["quantize"] == "none"
    assert record["source"] == str(sensor_run / "best.keras")
    assert record["classes"] == ["left", "right", "still"]
    assert record["inputs"] == {"sensor": [None, 40, 6]} and record["output_shape"] == [None, 3]
    check = record["check"]
    assert check["inputs"] == "validation split of VSL (9 samples)" and check["n"] == 9
    assert check["max_abs_diff"] <= 1e-4 and check["top1_agreement"] == 1.0
    assert check["export_accuracy"] == check["keras_accuracy"]
    assert not [p for p in (sensor_run / "export").iterdir() if p.name.startswith(".")]


@pytest.mark.slow
def test_int8_litert_calibrates_on_the_training_split(sensor_run):
    argv = [str(sensor_run), "--format", "litert", "--quantize", "int8", "--verbose", "0"]
    assert export.main(argv) == 0
    record = json.loads((sensor_run / "export" / "litert_int8" / "export.json").read_text())
    assert record["quantize"] == "int8"
    assert record["calibration"] == "training split of VSL (18 samples)"
    assert record["check"]["tolerance"] is None
    assert 0.0 <= record["check"]["top1_agreement"] <= 1.0


@pytest.mark.slow
def test_an_export_is_replaced_only_with_force(sensor_run, tmp_path, capsys):
    out = tmp_path / "onnx"
    argv = [str(sensor_run / "best.keras"), "--format", "onnx", "--out", str(out), "--verbose", "0"]
    assert export.main(argv) == 0
    before = (out / "model.onnx").stat().st_mtime_ns
    assert export.main(argv) == 2
    assert "already exists; pass --force" in _error(capsys)
    assert (out / "model.onnx").stat().st_mtime_ns == before
    assert export.main([*argv, "--force"]) == 0
    assert (out / "model.onnx").stat().st_mtime_ns != before
    assert _files(tmp_path) == ["onnx", "onnx/export.json", "onnx/model.onnx"]


def test_bad_run_format_or_option_is_one_line_and_writes_nothing(tmp_path, capsys):
    from vsfusion.models import build_inception_time

    build_inception_time((20, 6), 3, depth=1, filters=4).save(tmp_path / "s.keras")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    cases = [
        ([str(tmp_path / "empty")], "is not a finished run folder"),
        ([str(tmp_path / "missing")], "does not exist"),
        ([str(tmp_path / "missing.keras")], "does not exist"),
        ([str(tmp_path / "notes.txt")], "is not a run folder or a .keras file"),
        ([], "no RUN given"),
        ([str(tmp_path / "s.keras"), "--quantize", "dynamic"], "applies to --format litert only"),
    ]
    for argv, message in cases:
        assert export.main([*argv, "--verbose", "0"]) == 2, argv
        assert message in _error(capsys), argv
    with pytest.raises(SystemExit) as exit_:  # argparse itself: one line, code 2
        export.main([str(tmp_path / "s.keras"), "--format", "tflite"])
    assert exit_.value.code == 2
    assert "invalid choice: 'tflite'" in _error(capsys)
    assert _files(tmp_path) == ["empty", "notes.txt", "s.keras"]


def test_an_unconvertible_model_is_one_line_and_leaves_no_folder(tmp_path, capsys):
    inputs = keras.Input((6,), name="sensor")
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(Determinant()(inputs)))
    model.save(tmp_path / "det.keras")
    assert export.main([str(tmp_path / "det.keras"), "--format", "litert", "--verbose", "0"]) == 2
    assert "cannot be exported to litert" in _error(capsys)
    assert _files(tmp_path) == ["det.keras"]


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_an_stgcn_keras_file_outside_a_run_is_checked_on_random_inputs(tmp_path, fmt):
    """The ST-GCN graph layers convert; without a run there is no data, so the check says it
    used random inputs; the export goes beside the file."""
    from vsfusion.models.stgcn import build_stgcn

    model = build_stgcn((12, 20, 3), "kinect-v1", num_classes=3, channels=(8, 16))
    model.save(tmp_path / "stgcn.keras")
    argv = [str(tmp_path / "stgcn.keras"), "--format", fmt, "--samples", "4", "--verbose", "0"]
    assert export.main(argv) == 0
    record = json.loads((tmp_path / "export" / f"stgcn_{fmt}" / "export.json").read_text())
    assert record["run"] is None and record["classes"] is None
    assert record["check"]["inputs"] == "random (no run folder)" and record["check"]["n"] == 4
    assert record["check"]["max_abs_diff"] <= 1e-4


def test_int8_needs_the_runs_training_split(tmp_path, capsys):
    from vsfusion.models import build_inception_time

    build_inception_time((20, 6), 3, depth=1, filters=4).save(tmp_path / "s.keras")
    argv = [str(tmp_path / "s.keras"), "--format", "litert", "--quantize", "int8", "--verbose", "0"]
    assert export.main(argv) == 2
    assert "calibrates on the run's training split" in _error(capsys)
    assert _files(tmp_path) == ["s.keras"]


@pytest.fixture(scope="module")
def fusion_run(tiny_dataset, tmp_path_factory) -> Path:
    """A fusion run on a tiny I3D video run (8x32x32 clips) and sensor run."""
    import train_video
    import training_generator
    import valid_generator

    ck = tmp_path_factory.mktemp("ck_fusion")
    args = [*common(tiny_dataset, ck), "--subjects", "train=s1,s2 val=s3 test=s4"]
    run = [*args, "--run_name", "r"]
    assert train_sensor.main([*run, "--epoch", "2", "--depth", "2", "--filters", "8"]) == 0
    video = ["--epoch", "1", "--num_frames", "8", "--crop_size", "32", "--batch_size", "4"]
    assert train_video.main([*run, *video, "--no-tensorboard"]) == 0
    runs = ck / "VSL"
    generator = ["--epoch", "1", "--hidden", "16", "--no-control", "--no-tensorboard"]
    generator += ["--model_path", str(runs / "sensor" / "r"), "--video_model_path"]
    assert training_generator.main([*run, *generator, str(runs / "video" / "r")]) == 0
    fusion = ["--model_path", str(runs / "generator" / "r"), "--mlp_epochs", "2"]
    assert valid_generator.main([*run, *fusion]) == 0
    return runs / "fusion" / "r"


@pytest.fixture(scope="module")
def deploy_exports(fusion_run) -> dict[str, Path]:
    """The fusion run's deploy.keras exported to ONNX and LiteRT (float32)."""
    for fmt in ("onnx", "litert"):
        assert export.main([str(fusion_run), "--format", fmt, "--verbose", "0"]) == 0
    return {fmt: fusion_run / "export" / fmt for fmt in ("onnx", "litert")}


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_the_fused_i3d_model_matches_keras_on_validation_clips(fusion_run, deploy_exports, fmt):
    """deploy.keras (I3D trunk, generator head, sensor head, fusion rule in the graph): ONNX, and
    LiteRT with I3D's 3-D pooling rewritten, within 1e-4 of Keras on the validation clips."""
    record = json.loads((deploy_exports[fmt] / "export.json").read_text())
    assert record["source"] == str(fusion_run / "deploy.keras")
    assert record["inputs"] == {"video": [None, 8, 32, 32, 3]}
    assert record["check"]["inputs"] == "validation split of VSL (9 samples)"
    assert record["check"]["max_abs_diff"] <= 1e-4
    assert record["check"]["top1_agreement"] == 1.0
    assert bool(record["rewritten_layers"]) == (fmt == "litert")


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_the_fused_i3d_model_matches_keras_on_a_real_video(
    fusion_run, deploy_exports, fmt, shared_data
):
    """A real video decoded as the cache decodes (uniform frames, shorter side, centre crop)."""
    from vsfusion.data.video import read_clip
    from vsfusion.export import ARTIFACTS, keras_predict, load_exported
    from vsfusion.stages.common import load_model

    clip = read_clip(str(shared_data / "video-samples" / "short_clip_340x256.mp4"), 8, 32)
    x = {"video": clip[None].astype(np.float32)}
    want = keras_predict(load_model(fusion_run / "deploy.keras"), x)
    got = load_exported(deploy_exports[fmt] / ARTIFACTS[fmt], fmt)(x)
    assert np.abs(got - want).max() <= 1e-4
