"""vsfusion.export: the LiteRT pooling rewrite, the exporters and the runtimes that run their files."""

import keras
import numpy as np
import pytest

from vsfusion.export import (
    ExportUnsupported,
    SeparablePooling3D,
    compare_outputs,
    export_model,
    keras_predict,
    litert_compatible,
    load_exported,
)

POOLS = [
    ((3, 3, 3), (1, 1, 1), "same"),
    ((1, 3, 3), (1, 2, 2), "same"),
    ((2, 2, 2), (2, 2, 2), "same"),
    ((2, 2, 2), (2, 2, 2), "valid"),
    ((3, 1, 1), (2, 1, 1), "valid"),
    ((2, 5, 7), (1, 1, 1), "valid"),
]


@pytest.mark.parametrize("kind", ["max", "average"])
@pytest.mark.parametrize(("pool", "strides", "padding"), POOLS)
def test_separable_pooling_is_the_3d_pooling(kind, pool, strides, padding):
    """Odd sizes, so that "same" pads unevenly; a mean leaves the padded cells out."""
    x = np.random.default_rng(0).normal(size=(2, 5, 7, 9, 3)).astype("float32")
    cls = keras.layers.MaxPooling3D if kind == "max" else keras.layers.AveragePooling3D
    want = keras.ops.convert_to_numpy(cls(pool, strides, padding)(x))
    layer = SeparablePooling3D(kind, pool, strides, padding)
    got = keras.ops.convert_to_numpy(layer(x))
    assert got.shape == want.shape == layer.compute_output_shape(x.shape)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def _pooled_model(outputs: int = 1) -> keras.Model:
    """A tiny clip classifier: Conv3D, max and average 3-D pooling inside a nested trunk."""
    clip = keras.Input((4, 8, 8, 3), name="video")
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(clip)
    x = keras.layers.Conv3D(4, 3, padding="same", activation="relu", name="conv")(x)
    x = keras.layers.MaxPooling3D((1, 3, 3), (1, 2, 2), padding="same", name="max_pool")(x)
    x = keras.layers.AveragePooling3D((2, 2, 2), name="avg_pool")(x)
    trunk = keras.Model(clip, keras.layers.Flatten()(x), name="trunk")
    inputs = keras.Input((4, 8, 8, 3), name="video")
    h = trunk(inputs)
    probs = [
        keras.layers.Dense(3, activation="softmax", name=f"probs{i}")(h) for i in range(outputs)
    ]
    return keras.Model(inputs, probs[0] if outputs == 1 else probs, name="tiny_clip")


def _clips(n: int = 5) -> dict[str, np.ndarray]:
    return {"video": np.random.default_rng(1).uniform(0, 255, (n, 4, 8, 8, 3)).astype("float32")}


def test_litert_compatible_rewrites_nested_pooling_and_shares_the_other_layers():
    model = _pooled_model()
    friendly, replaced = litert_compatible(model)
    assert sorted(replaced) == ["avg_pool", "max_pool"]
    layers = {type(layer).__name__ for layer in friendly._flatten_layers()}
    assert "SeparablePooling3D" in layers
    assert not layers & {"MaxPooling3D", "AveragePooling3D"}
    conv = next(layer for layer in friendly._flatten_layers() if layer.name == "conv")
    assert conv is next(layer for layer in model._flatten_layers() if layer.name == "conv")
    assert [t.name for t in friendly.inputs] == ["video"]
    x = _clips()
    np.testing.assert_allclose(keras_predict(friendly, x), keras_predict(model, x), atol=1e-6)
    sensor = keras.Sequential([keras.Input((10, 2)), keras.layers.Dense(2)])
    assert litert_compatible(sensor) == (sensor, [])


def test_compare_outputs_counts_agreement_and_accuracy():
    keras_p = np.array([[0.7, 0.3], [0.4, 0.6], [0.2, 0.8]])
    export_p = np.array([[0.6, 0.4], [0.55, 0.45], [0.2, 0.8]])
    out = compare_outputs(keras_p, export_p, labels=np.array([0, 1, 0]))
    assert out["n"] == 3
    assert out["max_abs_diff"] == pytest.approx(0.15)
    assert out["top1_agreement"] == pytest.approx(2 / 3)
    assert out["keras_accuracy"] == pytest.approx(2 / 3)
    assert out["export_accuracy"] == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="output shapes differ"):
        compare_outputs(keras_p, export_p[:2])


def test_bad_formats_options_and_models_are_refused(tmp_path):
    model = _pooled_model()
    with pytest.raises(ExportUnsupported, match="unknown format 'tflite'"):
        export_model(model, tmp_path / "m", "tflite")
    with pytest.raises(ExportUnsupported, match="applies to litert exports only"):
        export_model(model, tmp_path / "m.onnx", "onnx", quantize="dynamic")
    with pytest.raises(ExportUnsupported, match="needs representative"):
        export_model(model, tmp_path / "m.tflite", "litert", quantize="int8")
    with pytest.raises(ExportUnsupported, match="has 2 outputs"):
        export_model(_pooled_model(outputs=2), tmp_path / "m.onnx", "onnx")
    assert not list(tmp_path.iterdir())


@keras.saving.register_keras_serializable(package="vsfusion_tests")
class Determinant(keras.layers.Layer):
    """No LiteRT built-in operator computes a determinant."""

    def call(self, x):
        square = keras.ops.reshape(x[:, :4], (-1, 2, 2))
        return keras.ops.expand_dims(keras.ops.linalg.det(square), -1)


def test_an_operator_litert_lacks_is_one_line(tmp_path):
    inputs = keras.Input((6,), name="sensor")
    model = keras.Model(inputs, keras.layers.Activation("sigmoid")(Determinant()(inputs)))
    with pytest.raises(ExportUnsupported) as err:
        export_model(model, tmp_path / "m.tflite", "litert")
    assert "cannot be exported to litert" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("fmt", ["onnx", "litert", "savedmodel"])
def test_float32_exports_match_keras(tmp_path, fmt):
    """The tiny clip model (Conv3D, 3-D pooling rewritten for LiteRT) in each format: the same
    probabilities as Keras to 1e-5, batch and input names kept."""
    model = _pooled_model()
    path = tmp_path / {"onnx": "m.onnx", "litert": "m.tflite", "savedmodel": "sm"}[fmt]
    info = export_model(model, path, fmt)
    assert sorted(info["rewrites"]) == (["avg_pool", "max_pool"] if fmt == "litert" else [])
    runner = load_exported(path, fmt)
    assert runner.input_names == ["video"]
    x = _clips()
    got = runner(x)
    assert got.shape == (5, 3) and got.dtype == np.float32
    assert np.abs(got - keras_predict(model, x)).max() <= 1e-5


def test_quantised_litert_keeps_most_decisions(tmp_path):
    """Dynamic (weights) and int8 (weights and activations, calibrated) on a small sensor model
    (LiteRT leaves weight tensors under 1024 values unquantised: the convolution has 2560):
    float32 in and out, smaller file, probabilities near Keras'."""
    rng = np.random.default_rng(0)
    inputs = keras.Input((20, 8), name="sensor")
    x = keras.layers.Conv1D(64, 5, activation="relu")(inputs)
    x = keras.layers.GlobalAveragePooling1D()(x)
    model = keras.Model(inputs, keras.layers.Dense(4, activation="softmax")(x))
    data = {"sensor": rng.normal(size=(40, 20, 8)).astype("float32")}
    reference = keras_predict(model, data)
    export_model(model, tmp_path / "f.tflite", "litert")
    float_size = (tmp_path / "f.tflite").stat().st_size
    for mode in ("dynamic", "int8"):
        path = tmp_path / f"{mode}.tflite"
        export_model(
            model,
            path,
            "litert",
            quantize=mode,
            representative=lambda: ({"sensor": data["sensor"][i : i + 1]} for i in range(20)),
        )
        assert path.stat().st_size < float_size
        check = compare_outputs(reference, load_exported(path, "litert")(data))
        assert check["max_abs_diff"] < 0.05, mode
        assert check["top1_agreement"] >= 0.8, mode


@pytest.mark.parametrize("fmt", ["onnx", "litert"])
def test_every_in_graph_fusion_rule_exports(tmp_path, fmt):
    """WeightedProbabilityFusion (the fixed rules of deploy.keras) under each rule, side by side
    in one model: the exported file gives Keras' fused probabilities."""
    from vsfusion.models.fusion_layers import FUSION_LAYER_RULES, WeightedProbabilityFusion

    video = keras.Input((4,), name="video")
    sensor = keras.Input((4,), name="sensor")
    streams = {
        "video": keras.layers.Softmax()(video),
        "sensor": keras.layers.Softmax()(sensor),
    }
    weights = {"video": 0.7, "sensor": 0.3}
    fused = [WeightedProbabilityFusion(weights, rule=r)(streams) for r in FUSION_LAYER_RULES]
    model = keras.Model(
        {"video": video, "sensor": sensor}, keras.layers.Concatenate()(fused), name="rules"
    )
    rng = np.random.default_rng(0)
    x = {k: rng.normal(size=(6, 4)).astype("float32") * 3 for k in ("video", "sensor")}
    path = tmp_path / ("m.onnx" if fmt == "onnx" else "m.tflite")
    export_model(model, path, fmt)
    runner = load_exported(path, fmt)
    assert runner.input_names == ["sensor", "video"]
    assert np.abs(runner(x) - keras_predict(model, x)).max() <= 1e-5
