"""train_stream.py: a classifier for any sequence stream, named by column or by kind."""

import json

import pytest

import train_stream
from tests.stages.stage_cli import common


@pytest.fixture(scope="module")
def inertial_run(tiny_dataset, tmp_path_factory):
    ck = tmp_path_factory.mktemp("stream")
    argv = [*common(tiny_dataset, ck), "--stream", "inertial", "--epoch", "6", "--length", "20"]
    assert train_stream.main(argv) == 0
    return ck


def test_a_stream_named_by_its_kind_trains_into_its_column_folder(inertial_run):
    run = next((inertial_run / "VSL" / "sensor").glob("*_seed0"))
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["stream"] == "sensor" and metrics["kind"] == "inertial"
    assert metrics["trunk"] == "inception_time" and metrics["input_shape"] == [20, 6]
    assert metrics["augment"] == "SensorAugment"
    assert metrics["test"]["top1"] > 0.5  # three well-separated classes
    assert (run / "best.keras").is_file()


def test_unknown_stream_or_clip_stream_is_one_clear_error(tiny_dataset, tmp_path, capsys):
    assert train_stream.main([*common(tiny_dataset, tmp_path), "--stream", "depth"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0
    assert "no stream or kind 'depth'" in err and "video (rgb), sensor (inertial)" in err
    assert train_stream.main([*common(tiny_dataset, tmp_path), "--stream", "video"]) == 2
    assert "train it with train_video.py" in capsys.readouterr().err
    bad_trunk = ["--stream", "sensor", "--trunk", "lstm"]
    assert train_stream.main([*common(tiny_dataset, tmp_path), *bad_trunk]) == 2
    assert "known trunks: inception_time, stgcn" in capsys.readouterr().err
    assert not list(tmp_path.rglob("*.incomplete"))


def test_a_registered_toy_modality_trains_end_to_end(tmp_path):
    """A kind registered in this test, a folder of its arrays beside a processed dataset and a line
    in modalities.json: train_stream.py trains it with the kind's trunk, nothing else added."""
    import numpy as np

    from tests.data.test_modality import _Spectrogram
    from tests.stages.conftest import CLASSES, write_tiny_dataset
    from vsfusion.data.modality import MODALITIES, StreamInfo, register_modality, write_streams

    root = write_tiny_dataset(tmp_path / "vsl", reps=2)
    rng = np.random.default_rng(0)
    for clip in sorted((root / "video").rglob("*.npy")):
        label = CLASSES.index(clip.stem.rsplit("_", 1)[0])
        spec = rng.normal(0, 1, (16, 10)).astype(np.float32)
        spec[:, label] += 3.0  # one frequency band per class
        out = root / "spec" / clip.relative_to(root / "video")
        out.parent.mkdir(parents=True, exist_ok=True)
        np.save(out, spec)
    write_streams(root / "modalities.json", {"spec": StreamInfo(_Spectrogram.name)})
    register_modality(_Spectrogram())
    try:
        ck = tmp_path / "ck"
        argv = [*common(root, ck), "--stream", "spec", "--epoch", "8", "--length", "none"]
        assert train_stream.main(argv) == 0
    finally:
        MODALITIES.pop(_Spectrogram.name)
    metrics = json.loads(next((ck / "VSL" / "spec").glob("*_seed0/metrics.json")).read_text())
    assert metrics["kind"] == _Spectrogram.name and metrics["trunk"] == "inception_time"
    assert metrics["input_shape"] == [16, 10]
    assert metrics["test"]["top1"] > 0.6  # chance is 1/3
