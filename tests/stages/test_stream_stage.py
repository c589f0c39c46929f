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
