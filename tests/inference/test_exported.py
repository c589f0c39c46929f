"""find_export: which export folder beside a model is its float32 ONNX export (no model is run)."""

import json
import os

from vsfusion.inference.exported import EXPORT_RECORD, find_export


def _export(folder, name, *, fmt="onnx", quantize="none", source="deploy.keras", artifact=True):
    out = folder / "export" / name
    out.mkdir(parents=True)
    file = {"onnx": "model.onnx", "litert": "model.tflite"}[fmt]
    record = {"format": fmt, "quantize": quantize, "artifact": file, "source": f"/x/{source}"}
    (out / EXPORT_RECORD).write_text(json.dumps(record))
    if artifact:
        (out / file).write_bytes(b"onnx")
    return out / file


def test_only_an_unquantised_export_of_the_same_file_in_the_format_asked_is_found(tmp_path):
    model = tmp_path / "deploy.keras"
    assert find_export(model) is None  # no export folder at all
    _export(tmp_path, "litert", fmt="litert")
    _export(tmp_path, "other_onnx", source="deploy_sensor.keras")
    _export(tmp_path, "gone", artifact=False)
    (tmp_path / "export" / "broken").mkdir()
    (tmp_path / "export" / "broken" / EXPORT_RECORD).write_text("{not json")
    assert find_export(model) is None
    want = _export(tmp_path, "onnx")
    assert find_export(model) == want
    assert find_export(tmp_path / "deploy_sensor.keras").parent.name == "other_onnx"
    assert find_export(model, "litert").parent.name == "litert"


def test_the_newest_of_two_exports_wins(tmp_path):
    old, new = _export(tmp_path, "onnx"), _export(tmp_path, "deploy_onnx")
    os.utime(old.parent / EXPORT_RECORD, (1_000, 1_000))
    assert find_export(tmp_path / "deploy.keras") == new
    os.utime(new.parent / EXPORT_RECORD, (500, 500))
    assert find_export(tmp_path / "deploy.keras") == old
