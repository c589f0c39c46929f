"""I3D trunk: topology, names, training, saving, and loading Keras-2-style weight files."""

from pathlib import Path

import h5py
import keras
import numpy as np
import pytest

from vsfusion.models import build_i3d, load_i3d_weights, split_classifier
from vsfusion.models.i3d import EMBED_DIM, MIXED_FILTERS

pytestmark = pytest.mark.backend

SHAPE3 = (8, 32, 32, 3)
SHAPE1 = (8, 32, 32, 1)


def _clips(shape, batch=2, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (batch, *shape)).astype("float32")


def _predict(model, x):
    return keras.ops.convert_to_numpy(model({"video": x}, training=False))


def _weighted_layers(model):
    return {layer.name: layer for layer in model.layers if layer.weights}


def _write_keras2_weights(path, layers_to_arrays, extra=None):
    """Writes the Keras 2 `save_weights` HDF5 layout: layer_names / weight_names attributes."""
    entries = dict(layers_to_arrays)
    entries.update(extra or {})
    with h5py.File(path, "w") as f:
        f.attrs["layer_names"] = [name.encode("utf8") for name in [*entries, "Mixed_5c"]]
        f.attrs["backend"] = b"tensorflow"
        f.attrs["keras_version"] = b"2.1.5"
        for name, arrays in entries.items():
            group = f.create_group(name)
            kinds = ["kernel", "bias"]
            if name.endswith("_bn"):
                kinds = ["beta", "moving_mean", "moving_variance"]
            weight_names = [f"{name}/{kind}:0" for kind in kinds[: len(arrays)]]
            group.attrs["weight_names"] = [w.encode("utf8") for w in weight_names]
            for weight_name, array in zip(weight_names, arrays, strict=True):
                group.create_dataset(weight_name, data=array)
        f.create_group("Mixed_5c").attrs["weight_names"] = np.array([], dtype="S1")


@pytest.fixture(scope="module")
def trunk3():
    keras.utils.set_random_seed(1)
    return build_i3d(input_shape=SHAPE3)


@pytest.fixture(scope="module")
def pretrained(trunk3, tmp_path_factory):
    """A weight file holding trunk3's weights with randomised BatchNorm statistics."""
    rng = np.random.default_rng(3)
    for layer in trunk3.layers:
        if layer.name.endswith("_bn"):
            beta, mean, var = layer.weights
            beta.assign(rng.normal(0, 0.1, beta.shape).astype("float32"))
            mean.assign(rng.normal(0, 0.1, mean.shape).astype("float32"))
            var.assign(rng.uniform(0.5, 1.5, var.shape).astype("float32"))
    arrays = {
        name: [keras.ops.convert_to_numpy(w) for w in layer.weights]
        for name, layer in _weighted_layers(trunk3).items()
    }
    logits = {
        "Conv3d_6a_1x1_conv": [
            np.zeros((1, 1, 1, EMBED_DIM, 400), "float32"),
            np.zeros((400,), "float32"),
        ]
    }
    path = tmp_path_factory.mktemp("weights") / "rgb_inception_i3d_notop.h5"
    _write_keras2_weights(path, arrays, extra=logits)
    return path, arrays


@pytest.mark.parametrize("shape", [SHAPE3, SHAPE1, (9, 40, 33, 3)])
def test_trunk_output_shape(shape, trunk3):
    model = trunk3 if shape == SHAPE3 else build_i3d(input_shape=shape)
    assert model.name == "i3d"
    assert model.output_shape == (None, EMBED_DIM)
    out = _predict(model, _clips(shape))
    assert out.shape == (2, EMBED_DIM)
    assert np.all(np.isfinite(out))


def test_classifier_output_and_parts():
    model = build_i3d(input_shape=SHAPE1, num_classes=5, dropout=0.2, name="depth")
    assert model.name == "depth"
    assert model.output_shape == (None, 5)
    trunk, head = split_classifier(model)
    assert trunk is model.get_layer("depth_trunk") and head is model.get_layer("depth_head")
    assert trunk.output_shape == (None, EMBED_DIM)
    assert head.get_layer("dropout").rate == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((7, 32, 32, 3), "at least 8 frames"),
        ((8, 31, 32, 3), "32x32"),
        ((8, 32, 16, 3), "32x32"),
        ((8, 32, 32, 2), "1 \\(depth\\) or 3 \\(RGB\\) channels"),
        ((32, 32, 3), "\\(frames, height, width, channels\\)"),
        ((None, 32, 32, 3), "only integers"),
    ],
)
def test_rejects_bad_input_shape(shape, message):
    with pytest.raises(ValueError, match=message):
        build_i3d(input_shape=shape)


def test_layer_names_and_filters(trunk3):
    names = {layer.name for layer in trunk3.layers}
    expected = {
        "video",
        "Conv3d_1a_7x7_conv",
        "Conv3d_1a_7x7_bn",
        "Conv3d_1a_7x7",
        "MaxPool2d_2a_3x3",
        "Conv3d_2b_1x1_conv",
        "Conv3d_2c_3x3_conv",
        "MaxPool2d_3a_3x3",
        "MaxPool2d_4a_3x3",
        "MaxPool2d_5a_2x2",
        "Conv3d_3b_0a_1x1_conv",
        "Conv3d_3b_1a_1x1_bn",
        "Conv3d_3b_1b_3x3",
        "Conv3d_3b_2a_1x1_conv",
        "Conv3d_3b_2b_3x3_conv",
        "MaxPool2d_3b_3a_3x3",
        "Conv3d_3b_3b_1x1_conv",
        "global_avg_pool",
        "embedding",
    }
    expected |= {f"Mixed_{block}" for block in MIXED_FILTERS}
    assert expected <= names
    stem = trunk3.get_layer("Conv3d_1a_7x7_conv")
    assert stem.kernel.shape == (7, 7, 7, 3, 64) and stem.strides == (2, 2, 2)
    assert not stem.use_bias
    assert not trunk3.get_layer("Conv3d_1a_7x7_bn").scale
    assert trunk3.get_layer("Conv3d_4b_1b_3x3_conv").kernel.shape == (3, 3, 3, 96, 208)
    for block, filters in MIXED_FILTERS.items():
        f0, _, f1b, _, f2b, f3b = filters
        assert trunk3.get_layer(f"Mixed_{block}").output.shape[-1] == f0 + f1b + f2b + f3b
    assert trunk3.get_layer("Mixed_5c").output.shape[-1] == EMBED_DIM
    # 114 convolution + BN weights of the published file, and the I3D parameter count.
    assert len(trunk3.trainable_weights) == 114
    assert trunk3.count_params() == build_i3d().count_params() == 12_294_544


def test_every_trainable_weight_gets_gradient():
    model = build_i3d(input_shape=SHAPE1, num_classes=3, dropout=0.0)
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0), loss="sparse_categorical_crossentropy"
    )
    before = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    model.train_on_batch({"video": _clips(SHAPE1)}, np.array([0, 2]))
    after = [keras.ops.convert_to_numpy(v) for v in model.trainable_variables]
    unchanged = [
        v.path
        for v, b, a in zip(model.trainable_variables, before, after, strict=True)
        if np.array_equal(b, a)
    ]
    assert len(before) == 114 + 2
    assert unchanged == []


def test_save_load_identical(trunk3, tmp_path):
    x = _clips(SHAPE3)
    expected = _predict(trunk3, x)
    trunk3.save(tmp_path / "i3d.keras")
    loaded = keras.models.load_model(tmp_path / "i3d.keras")
    np.testing.assert_allclose(_predict(loaded, x), expected, rtol=1e-5, atol=1e-5)
    other = build_i3d(input_shape=SHAPE3)
    trunk3.save_weights(tmp_path / "i3d.weights.h5")
    other.load_weights(tmp_path / "i3d.weights.h5")
    np.testing.assert_allclose(_predict(other, x), expected, rtol=1e-5, atol=1e-5)


def test_load_pretrained_weights(pretrained, trunk3):
    path, arrays = pretrained
    x = _clips(SHAPE3)
    expected = _predict(trunk3, x)

    keras.utils.set_random_seed(7)
    fresh = build_i3d(input_shape=SHAPE3)
    before = _predict(fresh, x)
    loaded = load_i3d_weights(fresh, path)
    assert set(loaded) == set(arrays) and "Conv3d_6a_1x1_conv" not in loaded
    after = _predict(fresh, x)
    assert not np.allclose(before, after)
    np.testing.assert_allclose(after, expected, rtol=1e-4, atol=1e-5)

    # Nested in a classifier: the trunk gets the same weights as a second model loaded alike.
    classifier = build_i3d(input_shape=SHAPE3, num_classes=4)
    load_i3d_weights(classifier, path)
    trunk, _ = split_classifier(classifier)
    np.testing.assert_allclose(_predict(trunk, x), after, rtol=1e-4, atol=1e-5)


def test_load_rgb_weights_into_depth_model(pretrained, trunk3):
    path, arrays = pretrained
    depth = build_i3d(input_shape=SHAPE1)
    load_i3d_weights(depth, path)
    kernel = keras.ops.convert_to_numpy(depth.get_layer("Conv3d_1a_7x7_conv").kernel)
    np.testing.assert_allclose(
        kernel, arrays["Conv3d_1a_7x7_conv"][0].sum(axis=3, keepdims=True), rtol=1e-6
    )
    # Summing the RGB kernel: a depth clip gives what the RGB model gives for it replicated.
    x = _clips(SHAPE1)
    np.testing.assert_allclose(
        _predict(depth, x), _predict(trunk3, np.repeat(x, 3, axis=-1)), rtol=1e-3, atol=1e-4
    )


def test_mismatched_file_names_the_layer(pretrained, tmp_path):
    path, arrays = pretrained
    model = build_i3d(input_shape=SHAPE3)
    bad = dict(arrays)
    bad["Conv3d_4c_1b_3x3_conv"] = [np.zeros((3, 3, 3, 112, 99), "float32")]
    bad_path = tmp_path / "bad.h5"
    _write_keras2_weights(bad_path, bad)
    kernel_before = keras.ops.convert_to_numpy(model.get_layer("Conv3d_1a_7x7_conv").kernel)
    with pytest.raises(ValueError, match="Conv3d_4c_1b_3x3_conv") as info:
        load_i3d_weights(model, bad_path)
    assert "bad.h5" in str(info.value) and "(3, 3, 3, 112, 99)" in str(info.value)
    # nothing was assigned
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(model.get_layer("Conv3d_1a_7x7_conv").kernel), kernel_before
    )

    missing = {k: v for k, v in arrays.items() if k != "Conv3d_5c_3b_1x1_bn"}
    missing["Conv3d_9z_conv"] = [np.zeros((1, 1, 1, 4, 4), "float32")]
    missing_path = tmp_path / "missing.h5"
    _write_keras2_weights(missing_path, missing)
    with pytest.raises(ValueError, match="missing.h5") as info:
        load_i3d_weights(model, missing_path)
    assert "Conv3d_5c_3b_1x1_bn" in str(info.value) and "Conv3d_9z_conv" in str(info.value)


def test_rejects_non_keras2_file(trunk3, tmp_path):
    path = Path(tmp_path) / "corrupt.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("junk", data=np.zeros(3))
    with pytest.raises(ValueError, match="corrupt.h5.*layer_names"):
        load_i3d_weights(trunk3, path)
    with pytest.raises(ValueError, match="no I3D trunk"):
        load_i3d_weights(keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)]), path)
